"""Figures as pure functions: a DataFrame in, a plotly Figure out, styled by the one template."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.theme import ACCENT, MUTED, TEMPLATE


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"color": MUTED, "size": 18},
    )
    return fig


def kpi_trend_figure(df: pd.DataFrame, kpi: str) -> go.Figure:
    """Network average of one KPI per period: ``df`` has ``period_start``, ``value``, ``entities``."""
    if df.empty:
        return empty_figure(f"No samples of {kpi} in the last 7 days")
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.add_trace(
        go.Scatter(
            x=df["period_start"],
            y=df["value"],
            mode="lines+markers" if len(df) <= 50 else "lines",
            name=kpi,
            line={"color": ACCENT, "width": 2},
            customdata=df[["entities"]].to_numpy(),
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.4g}<br>over %{customdata[0]} entities"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{kpi}: network average per period (UTC)",
        xaxis_title=None,
        yaxis_title=None,
        hovermode="x unified",
        showlegend=False,
    )
    return fig

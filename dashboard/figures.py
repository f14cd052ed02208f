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


THRESHOLD_COLOURS = {"warning": "#f39c12", "critical": "#e74c3c"}


def kpi_trend_figure(
    df: pd.DataFrame, kpi: str, *, title: str | None = None, thresholds: dict[str, float] | None = None
) -> go.Figure:
    """Network average of one KPI per period: ``df`` has ``period_start``, ``value``, ``entities``.

    ``title`` names the KPI for people (label and unit); ``thresholds`` (warning, critical) are
    drawn as dashed lines so a reader sees at once how close the network is to them.
    """
    title = title or kpi
    if df.empty:
        return empty_figure(f"No samples of {title} in the last 7 days")
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
    for level, value in (thresholds or {}).items():
        fig.add_hline(
            y=value,
            line={"dash": "dash", "width": 1, "color": THRESHOLD_COLOURS.get(level, "#999999")},
            annotation_text=f"{level} {value:g}",
            annotation_position="top left",
        )
    fig.update_layout(
        title=f"{title}: network average per period (UTC)",
        xaxis_title=None,
        yaxis_title=None,
        hovermode="x unified",
        showlegend=False,
    )
    return fig

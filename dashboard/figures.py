"""Figures as pure functions: a DataFrame in, a plotly Figure out, styled by the one template."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.theme import ACCENT, GRID, MUTED, SERIES, SEVERITY_COLOURS, TEMPLATE, TEXT


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


# --- Incidents -----------------------------------------------------------------------------


def _label(resource: object, resource_id: object, alarm_id: object) -> str:
    name = resource if isinstance(resource, str) and resource else resource_id
    return f"{name or 'unknown resource'} · {alarm_id}"


def alarm_timeline_figure(df: pd.DataFrame, now: datetime) -> go.Figure:
    """One bar per alarm from raised to cleared (or ``now``), most recent at the bottom; the root named.

    ``df`` is ``read.alarm_timeline``: id, severity, raised_at, cleared_at, resource, resource_id, root.
    """
    if df.empty:
        return empty_figure("No alarms recorded for this incident")
    d = df.copy()
    d["raised_at"] = pd.to_datetime(d["raised_at"]).astype("datetime64[ns]")
    d["end"] = (
        pd.to_datetime(d["cleared_at"]).astype("datetime64[ns]").fillna(pd.Timestamp(now).as_unit("ns"))
    )
    d["duration_ms"] = ((d["end"] - d["raised_at"]).dt.total_seconds() * 1000).clip(lower=1000)
    d["label"] = [
        ("ROOT ▶ " if bool(root) else "") + _label(res, rid, aid)
        for res, rid, aid, root in zip(d["resource"], d["resource_id"], d["id"], d["root"], strict=True)
    ]
    d["status"] = ["active" if pd.isna(c) else "cleared" for c in d["cleared_at"]]
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.add_trace(
        go.Bar(
            y=d["label"],
            base=d["raised_at"],
            x=d["duration_ms"],
            orientation="h",
            marker={
                "color": [SEVERITY_COLOURS.get(s, MUTED) for s in d["severity"]],
                "line": {
                    "color": [TEXT if r else GRID for r in d["root"]],
                    "width": [3 if r else 1 for r in d["root"]],
                },
                "pattern": {"shape": ["" if s == "active" else "/" for s in d["status"]]},
            },
            customdata=d[["severity", "status"]].to_numpy(),
            hovertemplate="%{y}<br>%{customdata[0]}, %{customdata[1]}<br>raised %{base|%H:%M:%S} UTC"
            "<extra></extra>",
        )
    )
    fig.add_vline(x=pd.Timestamp(now), line={"dash": "dot", "width": 1, "color": MUTED})
    fig.update_layout(
        title="Alarms: raised to cleared (hatched) or now (solid), UTC",
        showlegend=False,
        height=max(220, 70 + 34 * len(d)),
        margin={"l": 20, "r": 20, "t": 50, "b": 40},
        bargap=0.35,
    )
    fig.update_xaxes(type="date")
    fig.update_yaxes(autorange="reversed", automargin=True, tickfont={"color": TEXT})
    return fig


def cells_map_figure(df: pd.DataFrame) -> go.Figure:
    """The affected sites on a plain longitude/latitude plane (no map tiles, nothing fetched).

    ``df`` is ``read.affected_cells``: cell_id, name, site_id, site, lat, lon, degraded_share, lines.
    One marker per site, coloured by its most degraded cell and sized by the lines it serves.
    """
    placed = df.dropna(subset=["lat", "lon"])
    missing = len(df) - len(placed)
    if placed.empty:
        return empty_figure("No affected cell has site coordinates" if len(df) else "No affected cells")
    sites = (
        placed.assign(cell=placed["name"].fillna(placed["cell_id"]))
        .groupby(["site_id", "lat", "lon"], dropna=False, as_index=False)
        .agg(
            site=("site", "first"),
            degraded=("degraded_share", "max"),
            lines=("lines", "sum"),
            cells=("cell", lambda c: ", ".join(sorted(map(str, c)))),
            n=("cell", "count"),
        )
    )
    size = 14 + 26 * (sites["lines"] / max(float(sites["lines"].max()), 1.0)) ** 0.5
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.add_trace(
        go.Scatter(
            x=sites["lon"],
            y=sites["lat"],
            mode="markers+text",
            text=sites["site"].fillna(sites["site_id"]),
            textposition="top center",
            textfont={"color": TEXT},
            marker={
                "size": size,
                "color": sites["degraded"],
                "cmin": 0.0,
                "cmax": 1.0,
                "colorscale": [[0.0, "#3498db"], [0.5, "#f39c12"], [1.0, "#e74c3c"]],
                "colorbar": {"title": {"text": "degraded"}, "tickformat": ".0%", "len": 0.8},
                "line": {"color": TEXT, "width": 1},
            },
            customdata=sites[["cells", "degraded", "lines", "n"]].to_numpy(),
            hovertemplate="%{text}<br>%{customdata[3]} cells: %{customdata[0]}<br>"
            "most degraded %{customdata[1]:.0%}<br>%{customdata[2]:,.0f} lines<extra></extra>",
        )
    )
    lat = float(sites["lat"].mean())
    pad = 0.01
    title = "Affected sites (colour: most degraded cell; size: lines)"
    if missing:
        title += f"; {missing} cell{'s' if missing != 1 else ''} without coordinates"
    fig.update_layout(title=title, showlegend=False, height=380, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    fig.update_xaxes(title="longitude", range=[sites["lon"].min() - pad, sites["lon"].max() + pad])
    fig.update_yaxes(
        title="latitude",
        range=[sites["lat"].min() - pad, sites["lat"].max() + pad],
        # A degree of longitude is cos(latitude) of a degree of latitude: keep distances true.
        scaleanchor="x",
        scaleratio=1 / max(math.cos(math.radians(lat)), 0.1),
    )
    return fig


def kpi_impact_figure(
    df: pd.DataFrame,
    opened_at: datetime,
    panels: list[tuple[str, str]],
    *,
    resolved_at: datetime | None = None,
) -> go.Figure:
    """Mean of each KPI over the affected cells per period, one panel per KPI, the incident marked.

    ``df`` is ``read.kpi_impact``: period_start, kpi, value; ``panels`` lists (kpi, title) in order.
    """
    if df.empty:
        return empty_figure("No KPI samples from the affected cells around this incident")
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[t for _, t in panels],
    )
    fig.update_layout(template=TEMPLATE)
    for row, (kpi, title) in enumerate(panels, start=1):
        part = df[df["kpi"] == kpi]
        fig.add_trace(
            go.Scatter(
                x=part["period_start"],
                y=part["value"],
                mode="lines+markers" if len(part) <= 60 else "lines",
                name=title,
                line={"color": SERIES[(row - 1) % len(SERIES)], "width": 2},
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.4g}<extra>" + title + "</extra>",
            ),
            row=row,
            col=1,
        )
    for when, colour in ((opened_at, SEVERITY_COLOURS["critical"]), (resolved_at, ACCENT)):
        if when is not None:
            fig.add_vline(
                x=pd.Timestamp(when), line={"dash": "dash", "width": 2, "color": colour}, row="all", col=1
            )
    fig.add_annotation(
        x=pd.Timestamp(opened_at), y=1.0, xref="x", yref="paper", text="incident opened", showarrow=False,
        xanchor="left", yanchor="bottom", font={"color": SEVERITY_COLOURS["critical"]},
    )  # fmt: skip
    fig.update_layout(
        title="KPIs over the affected cells (mean per period, UTC)",
        showlegend=False,
        margin={"t": 90},
        height=200 + 170 * len(panels),
        hovermode="x unified",
    )
    return fig

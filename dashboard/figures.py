"""Figures as pure functions: a DataFrame in, a plotly Figure out, styled by the one template."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.theme import ACCENT, GRID, MUTED, SERIES, SEVERITY_COLOURS, TEMPLATE, TEXT


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """The figure of ``data`` and ``layout``, built without plotly's per-property validation.

    Validation checks every property of every trace and of the template again on each build: about
    half of a detail panel's figure time, for figures whose properties this module alone writes.
    The tests build each figure validated as well and hold the two equal (tests/conftest.py), so a
    property plotly would refuse or change fails there, not in a browser.
    """
    return go.Figure(data=data, layout=layout, _validate=False)


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    note = {"text": message, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
            "font": {"color": MUTED, "size": 18}}  # fmt: skip
    layout = {
        "template": TEMPLATE,
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "annotations": [note],
    }
    return _figure([], layout)


THRESHOLD_COLOURS = {"warning": "#f39c12", "critical": "#e74c3c"}


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
    bar = {
        "type": "bar",
        "y": d["label"],
        "base": d["raised_at"],
        "x": d["duration_ms"],
        "orientation": "h",
        "marker": {
            "color": [SEVERITY_COLOURS.get(s, MUTED) for s in d["severity"]],
            "line": {
                "color": [TEXT if r else GRID for r in d["root"]],
                "width": [3 if r else 1 for r in d["root"]],
            },
            "pattern": {"shape": ["" if s == "active" else "/" for s in d["status"]]},
        },
        "customdata": d[["severity", "status"]].to_numpy(),
        "hovertemplate": "%{y}<br>%{customdata[0]}, %{customdata[1]}<br>raised %{base|%H:%M:%S} UTC"
        "<extra></extra>",
    }
    layout = {
        "template": TEMPLATE,
        "title": {"text": "Alarms: raised to cleared (hatched) or now (solid), UTC"},
        "showlegend": False,
        "height": max(220, 70 + 34 * len(d)),
        "margin": {"l": 20, "r": 20, "t": 50, "b": 40},
        "bargap": 0.35,
        "xaxis": {"type": "date"},
        "yaxis": {"autorange": "reversed", "automargin": True, "tickfont": {"color": TEXT}},
        "shapes": [_vline(now, "x", "y", {"dash": "dot", "width": 1, "color": MUTED})],
    }
    # Built in one pass: add_trace, update_layout and add_vline each re-validate the figure.
    return _figure([bar], layout)


def _vline(when: object, xa: str, ya: str, line: dict[str, object]) -> dict[str, object]:
    """A vertical line at ``when`` across the panel of axes ``xa``/``ya``, as add_vline draws it."""
    at = pd.Timestamp(when)
    return {"type": "line", "x0": at, "x1": at, "xref": xa, "y0": 0, "y1": 1, "yref": f"{ya} domain",
            "line": line}  # fmt: skip


#: Sites the map names beside their markers; a transport failure's hundreds are named on hover only.
MAP_LABELS = 25


def _sites(placed: pd.DataFrame) -> pd.DataFrame:
    """One row per site (site_id, lat, lon), in that order, a missing site_id last: its label (the
    site's first name, else its id), most degraded share, lines, cells (their names, else ids,
    sorted and joined) and how many.

    Summed in one pass over the rows: a 600-cell incident's few hundred sites, where a pandas
    aggregation with a joined-text column costs a Series per site.
    """
    groups: dict[tuple[Any, float, float], list[Any]] = {}
    names = placed["name"].tolist()
    for sid, lat, lon, site, share, lines, cell_id, name in zip(
        placed["site_id"].tolist(), placed["lat"].tolist(), placed["lon"].tolist(),
        placed["site"].tolist(), placed["degraded_share"].tolist(), placed["lines"].tolist(),
        placed["cell_id"].tolist(), names, strict=True,
    ):  # fmt: skip
        key = (sid if _present(sid) else None, float(lat), float(lon))
        g = groups.get(key)
        if g is None:
            g = groups[key] = [None, math.nan, 0.0, []]
        if g[0] is None and _present(site):
            g[0] = site
        if _present(share) and not share <= g[1]:  # NaN until the first share
            g[1] = float(share)
        if _present(lines):
            g[2] += float(lines)
        g[3].append(str(name if _present(name) else cell_id))
    keys = sorted(groups, key=lambda k: (k[0] is None, "" if k[0] is None else str(k[0]), k[1], k[2]))
    return pd.DataFrame(
        {
            "site_id": [k[0] for k in keys],
            "lat": [k[1] for k in keys],
            "lon": [k[2] for k in keys],
            "label": [groups[k][0] if groups[k][0] is not None else k[0] for k in keys],
            "degraded": [groups[k][1] for k in keys],
            "lines": [groups[k][2] for k in keys],
            "cells": [", ".join(sorted(groups[k][3])) for k in keys],
            "n": [len(groups[k][3]) for k in keys],
        }
    )


def _present(value: object) -> bool:
    """Not None, NaN, NaT or NA."""
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA


def cells_map_figure(df: pd.DataFrame) -> go.Figure:
    """The affected sites on a plain longitude/latitude plane (no map tiles, nothing fetched).

    ``df`` is ``read.affected_cells``: cell_id, name, site_id, site, lat, lon, degraded_share, lines.
    One marker per site, coloured by its most degraded cell and sized by the lines it serves.
    """
    placed = df.dropna(subset=["lat", "lon"])
    missing = len(df) - len(placed)
    if placed.empty:
        return empty_figure("No affected cell has site coordinates" if len(df) else "No affected cells")
    sites = _sites(placed)
    size = 14 + 26 * (sites["lines"] / max(float(sites["lines"].max()), 1.0)) ** 0.5
    markers = {
        "type": "scatter",
        "x": sites["lon"],
        "y": sites["lat"],
        # Names beside the markers while they stay readable; beyond, on hover only.
        "mode": "markers+text" if len(sites) <= MAP_LABELS else "markers",
        "text": sites["label"],
        "textposition": "top center",
        "textfont": {"color": TEXT},
        "marker": {
            "size": size,
            "color": sites["degraded"],
            "cmin": 0.0,
            "cmax": 1.0,
            "colorscale": [[0.0, "#3498db"], [0.5, "#f39c12"], [1.0, "#e74c3c"]],
            "colorbar": {"title": {"text": "degraded"}, "tickformat": ".0%", "len": 0.8},
            "line": {"color": TEXT, "width": 1},
        },
        "customdata": sites[["cells", "degraded", "lines", "n"]].to_numpy(),
        "hovertemplate": "%{text}<br>%{customdata[3]} cells: %{customdata[0]}<br>"
        "most degraded %{customdata[1]:.0%}<br>%{customdata[2]:,.0f} lines<extra></extra>",
    }
    lat = float(sites["lat"].mean())
    pad = 0.01
    title = "Affected sites (colour: most degraded cell; size: lines)"
    if missing:
        title += f"; {missing} cell{'s' if missing != 1 else ''} without coordinates"
    layout = {
        "template": TEMPLATE,
        "title": {"text": title},
        "showlegend": False,
        "height": 380,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "xaxis": {
            "title": {"text": "longitude"},
            "range": [sites["lon"].min() - pad, sites["lon"].max() + pad],
        },
        "yaxis": {
            "title": {"text": "latitude"},
            "range": [sites["lat"].min() - pad, sites["lat"].max() + pad],
            # A degree of longitude is cos(latitude) of a degree of latitude: keep distances true.
            "scaleanchor": "x",
            "scaleratio": 1 / max(math.cos(math.radians(lat)), 0.1),
        },
    }
    return _figure([markers], layout)


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
    # A panel without samples would draw an empty path (plotly logs an error): leave it out.
    panels = [(k, t) for k, t in panels if (df["kpi"] == k).any()] if not df.empty else []
    if not panels:
        return empty_figure("No KPI samples from the affected cells around this incident")
    n = len(panels)
    traces: list[dict[str, object]] = []
    shapes: list[dict[str, object]] = []
    notes: list[dict[str, object]] = []
    layout: dict[str, object] = {}
    # Laid out by hand, as make_subplots(shared_xaxes=True) would, in one pass.
    for i, ((kpi, title), (ax, bottom, top)) in enumerate(zip(panels, _stacked_axes(n, 0.12), strict=True)):
        xa, ya = f"x{ax}", f"y{ax}"
        last = f"x{n}" if n > 1 else "x"
        layout[f"xaxis{ax}"] = {"anchor": ya, "domain": [0.0, 1.0]} | (
            {} if i == n - 1 else {"matches": last, "showticklabels": False}
        )
        layout[f"yaxis{ax}"] = {"anchor": xa, "domain": [bottom, top]}
        part = df[df["kpi"] == kpi]
        traces.append(
            {
                "type": "scatter",
                "x": part["period_start"],
                "y": part["value"],
                "xaxis": xa,
                "yaxis": ya,
                "mode": "lines+markers" if len(part) <= 60 else "lines",
                "name": title,
                "line": {"color": SERIES[i % len(SERIES)], "width": 2},
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.4g}<extra>" + title + "</extra>",
            }
        )
        notes.append(_panel_title(title, top))
        for when, colour in ((opened_at, SEVERITY_COLOURS["critical"]), (resolved_at, ACCENT)):
            if when is not None:
                shapes.append(_vline(when, xa, ya, {"dash": "dash", "width": 2, "color": colour}))
    notes.append(
        {
            "x": pd.Timestamp(opened_at),
            "y": 1.0,
            "xref": "x",
            "yref": "paper",
            "text": "incident opened",
            "showarrow": False,
            "xanchor": "left",
            "yanchor": "bottom",
            "font": {"color": SEVERITY_COLOURS["critical"]},
        }
    )
    layout |= {
        "template": TEMPLATE,
        "title": {"text": "KPIs over the affected cells (mean per period, UTC)"},
        "showlegend": False,
        "margin": {"t": 90},
        "height": 200 + 170 * n,
        "hovermode": "x unified",
        "shapes": shapes,
        "annotations": notes,
    }
    return _figure(traces, layout)


# --- KPIs against their usual band -----------------------------------------------------------

#: The usual band: the accent, faint, so the value drawn over it stays the figure's subject.
BAND_FILL = "rgba(0, 188, 140, 0.18)"
OUTSIDE_COLOUR = SEVERITY_COLOURS["critical"]


def _band_range(rows: pd.DataFrame) -> list[float] | None:
    """The y range of a band panel: every value and usual value, and the band where it is typical.

    A slot learnt from few or disturbed values can have a band many times wider than the rest; drawn
    in full it would flatten the series, so the axis follows the band's 5th and 95th percentiles
    (the band is clipped there, the values never are). A KPI with no negative value is not drawn
    below 0.
    """
    value = rows["value"].to_numpy(dtype=float)
    expected = rows["expected"].to_numpy(dtype=float)
    low, high = rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float)
    seen = np.concatenate([value[np.isfinite(value)], expected[np.isfinite(expected)]])
    if not len(seen):
        return None
    lo, hi = float(seen.min()), float(seen.max())
    if np.isfinite(low).any():
        lo = min(lo, float(np.nanpercentile(low, 5)))
    if np.isfinite(high).any():
        hi = max(hi, float(np.nanpercentile(high, 95)))
    pad = (hi - lo) * 0.06 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    measured = value[np.isfinite(value)]
    if len(measured) and float(measured.min()) >= 0:
        lo = max(lo, -pad if float(measured.min()) == 0 else 0.0)
    return [lo, hi]


def band_figure(
    df: pd.DataFrame,
    panels: list[tuple[str, str]],
    *,
    title: str = "",
    panel_height: int = 150,
    empty_text: str = "No samples in this window",
) -> go.Figure:
    """One entity's KPIs against their usual band, one panel per KPI, stacked on one time axis.

    ``df`` is :func:`dashboard.kpi_eval.bands.band_panel` for one entity: kpi, period_start, value,
    expected, low, high, outside; ``panels`` lists (kpi, title) in order. The band is shaded, the
    usual value dashed, the value solid, and periods beyond the band in the rule's bad direction
    marked (a shape and a legend entry, not colour alone). Laid out by hand, as
    :func:`experienced_kpi_figure` is.
    """

    def has(kpi: str) -> bool:
        part = df[df["kpi"] == kpi]
        return bool(part["value"].notna().any() or part["expected"].notna().any())

    shown = [p for p in panels if has(p[0])] if not df.empty else []
    if not shown:
        return empty_figure(empty_text)
    n = len(shown)
    traces: list[dict[str, object]] = []
    notes: list[dict[str, object]] = []
    layout: dict[str, object] = {}
    times = pd.to_datetime(df["period_start"]).astype("datetime64[ns]")
    marked = False  # the "outside usual band" legend entry, once
    for i, ((kpi, label), (ax, bottom, top)) in enumerate(
        zip(shown, _stacked_axes(n, 0.28 / n if n > 1 else 0.0), strict=True)
    ):
        part = df["kpi"] == kpi
        x = times[part].to_numpy()
        rows = df[part]
        xa, ya = f"x{ax}", f"y{ax}"
        layout[f"xaxis{ax}"] = {"anchor": ya, "showticklabels": i == n - 1, "type": "date"} | (
            {"matches": "x"} if ax else {}
        )
        yaxis: dict[str, object] = {"anchor": xa, "domain": [bottom, top]}
        span = _band_range(rows)
        if span is not None:
            yaxis["range"] = span
        layout[f"yaxis{ax}"] = yaxis
        first = i == 0
        base: dict[str, object] = {"type": "scatter", "x": x, "xaxis": xa, "yaxis": ya, "mode": "lines"}
        value, expected = rows["value"].to_numpy(), rows["expected"].to_numpy()
        edge = {"line": {"width": 0}, "hoverinfo": "skip", "name": "usual band", "legendgroup": "band"}
        traces.append(base | edge | {"y": rows["low"].to_numpy(), "showlegend": False})
        traces.append(
            base
            | edge
            | {"y": rows["high"].to_numpy(), "fill": "tonexty", "fillcolor": BAND_FILL}
            | {"showlegend": first}
        )
        traces.append(
            base
            | {"y": expected, "name": "usual", "legendgroup": "usual", "showlegend": first}
            | {"line": {"color": MUTED, "width": 1.5, "dash": "dash"}}
            | {"hovertemplate": "usual %{y:.4g}<extra></extra>"}
        )
        name = plain_label(label)
        traces.append(
            base
            | {"y": value, "name": name, "showlegend": False, "line": {"color": SERIES[1], "width": 2}}
            | {"hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.4g}<extra>" + name + "</extra>"}
        )
        out = rows["outside"].astype(bool).to_numpy()
        if out.any():
            low_side = bool(np.nanmean(value[out]) < np.nanmean(expected[out]))
            mark = "triangle-down" if low_side else "triangle-up"
            traces.append(
                base
                | {"x": x[out], "y": value[out], "mode": "markers", "name": "outside usual band"}
                | {"legendgroup": "outside", "showlegend": not marked}
                | {"marker": {"color": OUTSIDE_COLOUR, "size": 8, "symbol": mark}}
                | {"hovertemplate": "outside usual band: %{y:.4g}<extra></extra>"}
            )
            marked = True
        notes.append(_panel_title(plain_label(label), top) | {"font": {"size": 14}})
    layout |= {
        "template": TEMPLATE,
        "title": {"text": plain_label(title), "font": {"size": 15}} if title else {"text": ""},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": -0.08 if n > 1 else -0.2, "yanchor": "top"},
        "height": 110 + (28 if title else 0) + panel_height * n,
        "margin": {"l": 55, "r": 15, "t": 60 if title else 35, "b": 40},
        "hovermode": "x unified",
        "annotations": notes,
    }
    return _figure(traces, layout)


# --- Subscriber 360 ------------------------------------------------------------------------

#: How each kind of story event is drawn on the timeline: row label, marker symbol, colour.
STORY_EVENT_STYLES: dict[str, tuple[str, str, str]] = {
    "activated": ("Line", "star", ACCENT),
    "incident": ("Incidents", "triangle-up", SEVERITY_COLOURS["critical"]),
    "incident_resolved": ("Incidents", "circle-open", ACCENT),
    "ticket": ("Tickets", "square", "#3498db"),
    "ticket_note": ("Tickets", "square-open", "#5dade2"),
    "ticket_resolved": ("Tickets", "circle-open", ACCENT),
    "bill": ("Bills", "diamond", MUTED),
    "offer": ("Offers & churn", "diamond-open", "#f39c12"),
    "churn": ("Offers & churn", "x", SEVERITY_COLOURS["critical"]),
    "action": ("Actions", "circle", "#6f42c1"),
}


def plain_label(value: object) -> str:
    """Text from the data as plotly shows it literally: plotly renders a few tags (``<b>``, ``<a>``...)
    in hover labels, legends and ticks, but decodes entities only after finding the tags."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _stacked_axes(n: int, gap: float) -> list[tuple[str, float, float]]:
    """Axis suffix ('', '2'...) and vertical domain of ``n`` panels stacked top to bottom."""
    height = (1.0 - gap * (n - 1)) / n
    # Rounding can put the lowest panel a hair below 0 (-7e-17 for 7 panels), which plotly refuses.
    return [
        (
            "" if i == 0 else str(i + 1),
            max(0.0, 1.0 - i * (height + gap) - height),
            min(1.0, 1.0 - i * (height + gap)),
        )
        for i in range(n)
    ]


def _panel_title(title: str, top: float) -> dict[str, object]:
    """A panel's title above it, as make_subplots would put it."""
    return {"text": title, "x": 0.5, "xref": "paper", "y": top, "yref": "paper", "xanchor": "center",
            "yanchor": "bottom", "showarrow": False, "font": {"size": 16}}  # fmt: skip


def experienced_kpi_figure(
    df: pd.DataFrame, panels: list[tuple[str, str, dict[str, float]]], *, step: str = "hour"
) -> go.Figure:
    """What one subscriber experienced: each KPI share-weighted over its cells, one panel per KPI.

    ``df`` has ``kpi``, ``period_start``, ``value``; ``panels`` lists (kpi, title, thresholds) in
    order, thresholds (warning, critical) drawn dashed in their colours on the KPI's own panel.
    Built in one pass (panels laid out by hand, not make_subplots and add_hline, which re-validate
    the whole figure on every call: ten times slower with six panels).
    """
    shown = [p for p in panels if (df["kpi"] == p[0]).any()] if not df.empty else []
    if not shown:
        return empty_figure("No KPI samples from this subscriber's cells in the window")
    n = len(shown)
    traces: list[dict[str, object]] = []
    shapes: list[dict[str, object]] = []
    notes: list[dict[str, object]] = []
    layout: dict[str, object] = {}
    times = pd.to_datetime(df["period_start"], utc=True).dt.tz_localize(None)  # naive UTC: a numeric array
    for i, ((kpi, title, thresholds), (ax, bottom, top)) in enumerate(
        zip(shown, _stacked_axes(n, 0.3 / n), strict=True)
    ):
        part = df["kpi"] == kpi
        xaxis: dict[str, object] = {"anchor": f"y{ax}", "showticklabels": i == n - 1, "type": "date"}
        layout[f"xaxis{ax}"] = xaxis | ({"matches": "x"} if ax else {})  # one zoom for every panel
        layout[f"yaxis{ax}"] = {"anchor": f"x{ax}", "domain": [bottom, top]}
        traces.append(
            {
                "type": "scatter",
                "x": times[part].to_numpy(),
                "y": df.loc[part, "value"].to_numpy(),
                "xaxis": f"x{ax}",
                "yaxis": f"y{ax}",
                "mode": "lines+markers" if int(part.sum()) <= 60 else "lines",
                "name": title,
                "line": {"color": SERIES[i % len(SERIES)], "width": 2},
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.4g}<extra>" + title + "</extra>",
            }
        )
        notes.append(_panel_title(title, top))
        for level, value in thresholds.items():
            colour = THRESHOLD_COLOURS.get(level, MUTED)
            shapes.append(
                {"type": "line", "xref": f"x{ax} domain", "x0": 0, "x1": 1, "yref": f"y{ax}", "y0": value,
                 "y1": value, "line": {"dash": "dash", "width": 1, "color": colour}}
            )  # fmt: skip
            notes.append(
                {"text": f"{level} {value:g}", "xref": f"x{ax} domain", "x": 0, "yref": f"y{ax}", "y": value,
                 "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"color": colour}}
            )  # fmt: skip
    layout |= {
        "template": TEMPLATE,
        "title": {
            "text": f"KPIs this subscriber experienced: its cells weighted by its traffic, per {step} (UTC)"
        },
        "showlegend": False,
        "height": 120 + 190 * n,
        "margin": {"t": 90},
        "hovermode": "x unified",
        "shapes": shapes,
        "annotations": notes,
    }
    return _figure(traces, layout)


def churn_drivers_figure(drivers: pd.DataFrame) -> go.Figure:
    """Why the churn risk is what it is: ``drivers`` has ``feature``, ``value``, ``impact``
    (risk points: how much lower the risk would be with that feature at a typical value)."""
    if drivers.empty:
        return empty_figure("No churn drivers scored for this subscriber")
    d = drivers.assign(impact=pd.to_numeric(drivers["impact"], errors="coerce").fillna(0.0))
    d = d.sort_values("impact")
    labels = [
        plain_label(f"{str(f).replace('_', ' ')}" + (f" = {v}" if v is not None and not pd.isna(v) else ""))
        for f, v in zip(d["feature"], d["value"], strict=True)
    ]
    bar = {
        "type": "bar",
        "x": (d["impact"] * 100.0).to_numpy(),
        "y": labels,
        "orientation": "h",
        "marker": {"color": [SEVERITY_COLOURS["critical"] if i > 0 else ACCENT for i in d["impact"]]},
        "text": [f"{i * 100:+.1f} pts" for i in d["impact"]],
        "textposition": "auto",
        "hovertemplate": "%{y}<br>%{x:+.1f} risk points<extra></extra>",
    }
    layout = {
        "template": TEMPLATE,
        "title": {"text": "Churn drivers: risk points each adds"},
        "showlegend": False,
        "height": max(220, 110 + 46 * len(d)),
        "margin": {"l": 20, "r": 20, "t": 50, "b": 40},
        "xaxis": {"title": {"text": "risk points"}, "zeroline": True},
        "yaxis": {"automargin": True, "tickfont": {"color": TEXT}},
    }
    return _figure([bar], layout)


def _month(values: pd.Series) -> list[str]:
    return [pd.Timestamp(v).strftime("%b %Y") for v in values]


def revenue_figure(bills: pd.DataFrame, usage: pd.DataFrame, currency: str) -> go.Figure:
    """The account's bills per period and the line's own usage charges per period and type.

    ``bills`` has ``period_start``, ``amount``; ``usage`` has ``period_start``, ``usage_type``,
    ``amount``, both oldest first (one panel each: an enterprise's bill dwarfs one line's charges).
    """
    amounts = pd.to_numeric(usage["amount"], errors="coerce").fillna(0.0) if not usage.empty else None
    has_usage = bool(amounts is not None and amounts.abs().sum() > 0)
    if bills.empty and not has_usage:
        return empty_figure("No bills or charged usage recorded")
    panels: list[tuple[str, list[dict[str, object]]]] = []
    if not bills.empty:
        bar = {"type": "bar", "x": _month(bills["period_start"]), "y": bills["amount"].to_numpy(),
               "name": "bill", "showlegend": False, "marker": {"color": ACCENT},
               "hovertemplate": "%{x}<br>%{y:,.2f} " + currency + "<extra>bill</extra>"}  # fmt: skip
        panels.append((f"Account bills ({currency})", [bar]))
    if has_usage and amounts is not None:
        charged = usage.assign(amount=amounts)
        bars: list[dict[str, object]] = [
            {"type": "bar", "x": _month(part["period_start"]), "y": part["amount"].to_numpy(),
             "name": plain_label(kind), "marker": {"color": SERIES[(i + 1) % len(SERIES)]},
             "hovertemplate": "%{x}<br>%{y:,.2f} " + currency + f"<extra>{plain_label(kind)}</extra>"}
            for i, (kind, part) in enumerate(charged.groupby("usage_type", sort=True))
        ]  # fmt: skip
        panels.append((f"This line's charges ({currency})", bars))
    traces: list[dict[str, object]] = []
    layout: dict[str, object] = {}
    notes: list[dict[str, object]] = []
    for (title, bars), (ax, bottom, top) in zip(panels, _stacked_axes(len(panels), 0.25), strict=True):
        traces += [b | {"xaxis": f"x{ax}", "yaxis": f"y{ax}"} for b in bars]
        layout[f"xaxis{ax}"] = {"anchor": f"y{ax}", "type": "category"}
        layout[f"yaxis{ax}"] = {"anchor": f"x{ax}", "domain": [bottom, top]}
        notes.append(_panel_title(title, top))
    layout |= {
        "template": TEMPLATE,
        "barmode": "stack",
        "height": 160 + 220 * len(panels),
        "showlegend": has_usage,
        "legend": {"orientation": "h", "y": -0.15},
        "margin": {"t": 70},
        "annotations": notes,
    }
    return _figure(traces, layout)


def story_timeline_figure(
    events: pd.DataFrame, *, start: datetime | None = None, end: datetime | None = None
) -> go.Figure:
    """One subscriber's events on one time axis, a row per kind, each with its own symbol.

    ``events`` has ``time``, ``kind``, ``title``, ``detail``; ``start``/``end`` set the range first
    shown (zoom out, or double-click, for the whole history). Titles and details are data (ticket
    subjects, notes): they go to plotly with entities, so any markup in them shows as text.
    """
    if events.empty:
        return empty_figure("Nothing recorded for this subscriber yet")
    d = events.assign(time=pd.to_datetime(events["time"], utc=True).dt.tz_localize(None))
    d["hover"] = [
        f"{plain_label(t or '')}<br>{plain_label(x or '')}"
        for t, x in zip(d["title"], d["detail"], strict=True)
    ]
    traces = []
    for kind, part in d.groupby("kind", sort=False):
        label, symbol, colour = STORY_EVENT_STYLES.get(str(kind), ("Other", "circle", MUTED))
        traces.append(
            {
                "type": "scatter",
                "x": part["time"].to_numpy(),
                "y": [label] * len(part),
                "mode": "markers",
                "name": str(kind).replace("_", " "),
                "marker": {
                    "symbol": symbol,
                    "size": 14,
                    "color": colour,
                    "line": {"color": colour, "width": 2},
                },
                "customdata": part["hover"].to_numpy(),
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{customdata}<extra></extra>",
            }
        )
    rows = list(dict.fromkeys(s[0] for s in STORY_EVENT_STYLES.values()))
    present = [r for r in rows if r in {STORY_EVENT_STYLES.get(str(k), ("Other",))[0] for k in d["kind"]}]
    xaxis: dict[str, object] = {"type": "date"}
    if start is not None and end is not None:
        xaxis["range"] = [pd.Timestamp(start), pd.Timestamp(end)]
    layout = {
        "template": TEMPLATE,
        "title": {"text": "Timeline (UTC): hover a mark for what happened"},
        "height": max(240, 120 + 48 * len(present)),
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.2},
        "margin": {"l": 20, "r": 20, "t": 50, "b": 40},
        "xaxis": xaxis,
        "yaxis": {"categoryorder": "array", "categoryarray": list(reversed(present)),
                  "tickfont": {"color": TEXT}, "automargin": True},
    }  # fmt: skip
    return _figure(traces, layout)

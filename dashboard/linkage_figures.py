"""Figures of the Linkage page: the driver tree, a link's evidence and lag profile, KPI sparklines.

Pure functions, data in and a figure (or an SVG data URI) out, styled by the one template. A link's
strength is shown by colour *and* line pattern *and* a word, never by colour alone.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

import pandas as pd
import plotly.graph_objects as go

from dashboard.figures import empty_figure
from dashboard.theme import ACCENT, GRID, MUTED, TEMPLATE, TEXT

#: strength -> (colour, dash pattern, width); colour-blind safe pairs, doubled by the pattern.
STRENGTH_STYLE: dict[str, tuple[str, str, float]] = {
    "strong": (ACCENT, "solid", 5.0),
    "moderate": ("#3498db", "solid", 3.0),
    "weak": ("#888888", "dash", 1.5),
    "contradicted": ("#e74c3c", "dot", 3.0),
    "no_data": ("#555555", "dot", 1.0),
}
STRENGTH_ORDER = ["strong", "moderate", "weak", "contradicted", "no_data"]


def link_key(driver: str, target: str) -> str:
    return f"{driver}->{target}"


def _layers(nodes: list[str], edges: list[tuple[str, str]], domain: dict[str, str]) -> dict[str, int]:
    """Column of each node: technical KPIs that nothing drives at 0, then by longest path."""
    depth = {n: 0 for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for a, b in edges:
            if depth[b] < depth[a] + 1:
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    # Business KPIs sit right of every technical one, so the tree reads network -> money.
    tech_max = max((d for n, d in depth.items() if domain.get(n) == "technical"), default=0)
    for n in nodes:
        if domain.get(n) == "business" and depth[n] <= tech_max:
            depth[n] = tech_max + 1
    return depth


NO_LINKS_TEXT = "No measured links yet: linkage runs once KPIs have 14 days of data"


def driver_tree_figure(
    links: pd.DataFrame,
    labels: dict[str, str],
    domain: dict[str, str],
    *,
    selected: str | None = None,
    empty_text: str = NO_LINKS_TEXT,
) -> go.Figure:
    """Technical KPIs on the left, business KPIs to the right, one edge per measured link.

    ``links`` has driver, target, strength, short (effect and interval as text), sentence, declared.
    Each edge's midpoint is a clickable marker whose customdata is the link key.
    """
    if links.empty:
        return empty_figure(empty_text)
    nodes = sorted(set(links["driver"]) | set(links["target"]), key=lambda n: (domain.get(n, ""), n))
    edges = list(zip(links["driver"], links["target"], strict=True))
    depth = _layers(nodes, edges, domain)
    columns: dict[int, list[str]] = {}
    for n in nodes:
        columns.setdefault(depth[n], []).append(n)
    # Technical layers sit close together on the left (labels to their left), business columns one
    # unit apart to the right, so the tree reads network -> money.
    tech_depths = sorted({depth[n] for n in nodes if domain.get(n) == "technical"}) or [0]
    xs = {d: 0.5 * i for i, d in enumerate(tech_depths)}
    biz_depths = sorted({depth[n] for n in nodes if domain.get(n) != "technical"})
    start = xs[tech_depths[-1]] + 1.0
    xs.update({d: start + i for i, d in enumerate(biz_depths)})
    pos: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        for i, n in enumerate(sorted(members, key=lambda m: labels.get(m, m))):
            pos[n] = (xs[col], 1.0 - (i + 1) / (len(members) + 1))
    fig = go.Figure(layout={"template": TEMPLATE})
    mid_x, mid_y, mid_key, mid_text, mid_colour, mid_symbol = [], [], [], [], [], []
    for row in links.itertuples(index=False):
        strength = str(row.strength)
        colour, dash, width = STRENGTH_STYLE.get(strength, STRENGTH_STYLE["no_data"])
        (x0, y0), (x1, y1) = pos[row.driver], pos[row.target]
        key = link_key(row.driver, row.target)
        if key == selected:
            width += 3
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                line={"color": colour, "dash": dash, "width": width},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        mid_x.append(x0 + (x1 - x0) * 0.55)
        mid_y.append(y0 + (y1 - y0) * 0.55)
        mid_key.append(key)
        mid_text.append(f"{row.sentence}")
        mid_colour.append(colour)
        mid_symbol.append("diamond" if bool(row.declared) else "circle-open")
    fig.add_trace(
        go.Scatter(
            x=mid_x,
            y=mid_y,
            mode="markers+text",
            marker={
                "size": 16,
                "color": mid_colour,
                "symbol": mid_symbol,
                "line": {"width": 2, "color": TEXT},
            },
            # Only the selected link's effect is written on the tree (hover tells every other one):
            # a dozen labels over crossing edges would be read by nobody.
            text=[str(t) if k == selected else "" for t, k in zip(links["short"], mid_key, strict=True)],
            textposition="top center",
            textfont={"size": 12, "color": TEXT},
            customdata=mid_key,
            hovertext=mid_text,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            name="links",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[pos[n][0] for n in nodes],
            y=[pos[n][1] for n in nodes],
            mode="markers+text",
            marker={
                "size": 26,
                "color": ["#3498db" if domain.get(n) == "technical" else "#f39c12" for n in nodes],
                "symbol": ["square" if domain.get(n) == "technical" else "hexagon" for n in nodes],
            },
            text=[labels.get(n, n) for n in nodes],
            textposition=["middle left" if domain.get(n) == "technical" else "bottom center" for n in nodes],
            textfont={"size": 14, "color": TEXT},
            hoverinfo="text",
            hovertext=[f"{labels.get(n, n)} ({domain.get(n, '?')})" for n in nodes],
            showlegend=False,
            name="kpis",
        )
    )
    # Legend entries: strength by colour, pattern and word.
    for strength in STRENGTH_ORDER:
        colour, dash, width = STRENGTH_STYLE[strength]
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                line={"color": colour, "dash": dash, "width": max(width, 2)},
                name=strength.replace("_", " "),
            )
        )
    right = max(x for x, _ in pos.values())
    fig.update_xaxes(visible=False, range=[-0.9, right + 0.5])
    fig.update_yaxes(visible=False, range=[-0.05, 1.05])
    fig.update_layout(
        title="Driver tree: network KPIs (squares) -> business KPIs (hexagons)",
        height=600,
        legend={"orientation": "h", "y": -0.02, "x": 0},
        margin={"l": 20, "r": 20, "t": 50, "b": 30},
        clickmode="event",
    )
    return fig


def evidence_figure(evidence: dict[str, Any] | None, x_label: str, y_label: str) -> go.Figure:
    """Binned scatter of the target against the driver (both net of controls) with the fitted line."""
    bins = pd.DataFrame((evidence or {}).get("binned") or [])
    if bins.empty:
        return empty_figure("No evidence for this link")
    fig = go.Figure(layout={"template": TEMPLATE})
    size = bins["n"] if "n" in bins else pd.Series([10] * len(bins))
    fig.add_trace(
        go.Scatter(
            x=bins["x"],
            y=bins["y"],
            mode="markers",
            marker={"size": [min(28.0, 6 + 3 * math.log1p(float(v))) for v in size], "color": "#3498db"},
            customdata=size,
            hovertemplate="driver %{x:.4g}<br>target %{y:.4g}<br>%{customdata:,} observations<extra></extra>",
            name="binned observations",
        )
    )
    fit = (evidence or {}).get("fit") or {}
    if fit.get("slope") is not None and fit.get("intercept") is not None:
        xs = [float(bins["x"].min()), float(bins["x"].max())]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[fit["intercept"] + fit["slope"] * x for x in xs],
                mode="lines",
                line={"color": ACCENT, "width": 3},
                name="fitted effect",
            )
        )
    fig.update_layout(
        title="Evidence (net of entity, period and control effects)",
        xaxis_title=x_label,
        yaxis_title=y_label,
        height=380,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def lag_profile_figure(
    evidence: dict[str, Any] | None, *, step_label: str, best_lag_s: float | None
) -> go.Figure:
    """Effect per step of the driver at each lag tried, with its 95% interval; the best lag marked."""
    prof = pd.DataFrame((evidence or {}).get("lag_profile") or [])
    if prof.empty:
        return empty_figure("No lag profile for this link")
    days = prof["lag_s"].astype(float) / 86400.0
    lo = prof["ci_low"].astype(float)
    hi = prof["ci_high"].astype(float)
    eff = prof["effect"].astype(float)
    best = [abs(float(s) - float(best_lag_s)) < 1 if best_lag_s is not None else False for s in prof["lag_s"]]
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.add_trace(
        go.Bar(
            x=days,
            y=eff,
            marker={
                "color": [ACCENT if b else "#3498db" for b in best],
                "pattern": {"shape": ["" if b else "/" for b in best]},
            },
            error_y={
                "type": "data",
                "symmetric": False,
                "array": hi - eff,
                "arrayminus": eff - lo,
                "color": MUTED,
            },
            hovertemplate="lag %{x:g} d<br>effect %{y:.4g}<extra></extra>",
            name="effect per lag",
        )
    )
    fig.add_hline(y=0, line={"color": GRID, "width": 1})
    fig.update_layout(
        title="Lag profile (best lag highlighted)",
        xaxis_title="lag, days",
        yaxis_title=f"effect per {step_label}",
        height=380,
        showlegend=False,
    )
    return fig


def series_figure(df: pd.DataFrame, *, title: str, unit: str) -> go.Figure:
    """One KPI over time (``period_start``, ``value``)."""
    if df.empty or df["value"].isna().all():
        return empty_figure(f"No data for {title} in this range")
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.add_trace(
        go.Scatter(
            x=df["period_start"],
            y=df["value"],
            mode="lines",
            line={"color": "#f39c12", "width": 2},
            fill="tozeroy",
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,.0f} " + unit + "<extra></extra>",
        )
    )
    fig.update_layout(title=title, yaxis_title=unit, height=320, showlegend=False)
    return fig


def sparkline_uri(
    values: list[float | None], *, colour: str = ACCENT, width: int = 160, height: int = 40
) -> str:
    """A tiny SVG line as a data URI (no plotly: a card row draws a dozen of them at once)."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if len(pts) < 2:
        return "data:image/svg+xml;utf8," + quote(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"/>'
        )
    lo = min(v for _, v in pts)
    hi = max(v for _, v in pts)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    path = " ".join(
        f"{'M' if k == 0 else 'L'}{2 + (width - 4) * i / n:.1f},{y:.1f}"
        for k, (i, v) in enumerate(pts)
        for y in [height - 3 - (height - 6) * (v - lo) / span]
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/></svg>'
    )
    return "data:image/svg+xml;utf8," + quote(svg)

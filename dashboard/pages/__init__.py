"""The Dash pages, one module each, and what they share: formatting, grid records, the store-error notice.

Pages find the serving app's store, settings, catalogue and clock through dashboard/context.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard.context import current_kpi
from dashboard.figures import band_figure
from dashboard.kpi_eval.bands import EntityBands, Verdict
from dashboard.store.rows import json_rows

#: Every page module, in navigation order; each defines ``layout(**query)`` and ``register_callbacks``.
PAGE_MODULES = (
    "wall", "incidents", "linkage", "linkage_summary", "subscribers", "subscriber", "actions",
    "sources", "audit", "access",
)  # fmt: skip


def kpi_title(name: str) -> str:
    """``Dropped call rate (%)`` for a catalogued KPI, its name otherwise."""
    kpi = current_kpi(name)
    return f"{kpi.label} ({kpi.unit})" if kpi is not None else name


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bool | list | dict) and bool(pd.isna(value)))


def fmt_time(value: Any, *, seconds: bool = False) -> str:
    """``2024-05-01 14:03 UTC`` or an em dash for nothing."""
    if _missing(value):
        return "—"
    dt: datetime = pd.Timestamp(value).to_pydatetime()
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def fmt_count(value: int | float) -> str:
    return f"{value:,.0f}"


def fmt_money(value: float, currency: str) -> str:
    return f"{value:,.0f} {currency}"


def store_error(err: Exception) -> dbc.Alert:
    """What a page shows instead of data when the store cannot be read."""
    return dbc.Alert(
        [html.Strong("The store could not be read. "), f"{type(err).__name__}; nothing shown is current."],
        color="danger",
        className="vt-store-error",
    )


def _cell(value: Any) -> Any:
    """One grid value: missing as None, a time as UTC text without the zone, a numpy scalar as its
    Python value."""
    if _missing(value):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts for a grid (times as UTC text without the zone, missing as None),
    a column at a time (:mod:`dashboard.store.rows`)."""
    return json_rows(df, time_format="%Y-%m-%d %H:%M:%S", other=_cell)


#: A verdict's mark, so its tone reads without colour (as the KPI statuses: ✓ ok, ◆ warning, ▲ critical).
VERDICT_MARK = {"bad": "▲", "warn": "◆", "ok": "✓", "muted": "·"}


def verdict_list(verdicts: Sequence[Verdict]) -> html.Ul:
    """Each series' verdict in words ("Downlink throughput 46% below usual since 17:40 UTC")."""
    items = []
    for v in verdicts:
        data: dict[str, Any] = {"data-kpi": v.kpi, "data-state": v.state}
        items.append(
            html.Li(
                [html.Span(VERDICT_MARK.get(v.tone, "·"), className="vt-verdict-mark"), v.text],
                className=f"vt-verdict vt-verdict-{v.tone}",
                **data,
            )
        )
    return html.Ul(items, className="vt-verdicts")


def band_block(bands: EntityBands, heading: Any, *, panel_height: int = 120) -> dbc.Card:
    """One cell or site against its usual bands: the verdicts in words over a small chart of the
    KPIs it shows, the last 24 hours (UTC)."""
    panels = [(v.kpi, kpi_title(v.kpi)) for v in bands.verdicts]
    figure = band_figure(
        bands.series, panels, panel_height=panel_height, empty_text="No samples in the last 24 h"
    )
    data: dict[str, Any] = {"data-entity": bands.entity_id}
    body = html.Div(
        [
            verdict_list(bands.verdicts),
            dcc.Graph(figure=figure, config={"displayModeBar": False}, className="vt-band-graph"),
        ],
        **data,
    )
    return dbc.Card([dbc.CardHeader(heading), dbc.CardBody(body)], className="vt-card vt-band-card h-100")

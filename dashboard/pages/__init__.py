"""The Dash pages, one module each, and what they share: formatting, grid records, the store-error notice.

Pages find the serving app's store, settings, catalogue and clock through dashboard/context.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dashboard.context import current_kpi

#: Every page module, in navigation order; each defines ``layout(**query)`` and ``register_callbacks``.
PAGE_MODULES = (
    "wall", "incidents", "linkage", "linkage_summary", "subscribers", "subscriber", "sources",
    "audit", "access",
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


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts for a grid (times as UTC text without the zone, missing as None)."""
    out: list[dict[str, Any]] = []
    for row in df.to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if _missing(value):
                clean[str(key)] = None
            elif isinstance(value, datetime | pd.Timestamp):
                clean[str(key)] = pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
            elif hasattr(value, "item"):  # numpy scalar
                clean[str(key)] = value.item()
            else:
                clean[str(key)] = value
        out.append(clean)
    return out

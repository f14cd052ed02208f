"""The Dash pages, one module each, and what they share: the serving app's store, settings and clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
import flask
import pandas as pd
from dash import html

from dashboard.config import Settings
from dashboard.kpis import Catalogue, KpiDefinition, Scoring
from dashboard.store.db import Store

STORE_KEY = "VANTAGE_STORE"
SETTINGS_KEY = "VANTAGE_SETTINGS"
REFRESH_KEY = "VANTAGE_REFRESH_MS"
CATALOGUE_KEY = "VANTAGE_KPI_CATALOGUE"

#: Every page module, in navigation order; each defines ``layout(**query)`` and ``register_callbacks``.
PAGE_MODULES = ("wall", "incidents", "linkage", "linkage_summary", "subscribers", "subscriber", "sources")
#: How often the strip and the live parts of pages re-read the store, by default.
REFRESH_MS = 15_000
#: The trusted request header naming the person acting (set by the authenticating proxy).


def current_store() -> Store:
    """The store of the app serving this request (pages cannot import a global app)."""
    return flask.current_app.config[STORE_KEY]


def current_settings() -> Settings:
    return flask.current_app.config[SETTINGS_KEY]


def current_kpi(name: str) -> KpiDefinition | None:
    """The catalogue's definition of a KPI (label, unit, thresholds), or None for one it lacks."""
    catalogue: Catalogue | None = flask.current_app.config.get(CATALOGUE_KEY)
    if catalogue is None:
        return None
    try:
        return catalogue.get(name)
    except KeyError:
        return None


def kpi_title(name: str) -> str:
    """``Dropped call rate (%)`` for a catalogued KPI, its name otherwise."""
    kpi = current_kpi(name)
    return f"{kpi.label} ({kpi.unit})" if kpi is not None else name


def current_scoring() -> Scoring:
    """The catalogue's scoring rules (weights, multipliers, impact KPIs) of the serving app."""
    catalogue: Catalogue = flask.current_app.config[CATALOGUE_KEY]
    return catalogue.scoring


def current_actor() -> str:
    """Who is acting, for the audit trail; dashboard/privacy.py decides (settings or a trusted header)."""
    from dashboard.privacy import current_principal

    return current_principal().user


def current_refresh_ms() -> int:
    """The refresh period of the app serving this request, in milliseconds."""
    return int(flask.current_app.config.get(REFRESH_KEY, REFRESH_MS))


def utcnow() -> datetime:
    """Naive UTC, as the store keeps times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bool | list | dict) and bool(pd.isna(value)))


def fmt_time(value: Any, *, seconds: bool = False) -> str:
    """``2024-05-01 14:03 UTC`` or an em dash for nothing."""
    if _missing(value):
        return "—"
    dt = pd.Timestamp(value).to_pydatetime()
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

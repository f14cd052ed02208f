"""JSON encoding of API values: times as ISO 8601 UTC with a ``Z``, no NaN, numpy scalars as numbers."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd

from dashboard.store.rows import json_rows

#: A JSON object as the API returns it.
JSONObject = dict[str, Any]


def jsonable(v: Any) -> Any:
    """One value as JSON can hold it."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | datetime):
        return pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 4)
    if hasattr(v, "item"):
        return jsonable(v.item())
    return v


def _real(v: float) -> float:
    return round(v, 4)


def records(df: pd.DataFrame, fields: tuple[str, ...] | None = None) -> list[JSONObject]:
    """The frame's rows as JSON objects with ``fields`` (the columns it has of them), in order; each
    value as :func:`jsonable` gives it, a column at a time (:mod:`dashboard.store.rows`)."""
    cols = [c for c in (fields or tuple(df.columns)) if c in df.columns]
    return json_rows(df[cols], time_format="%Y-%m-%dT%H:%M:%SZ", other=jsonable, real=_real)

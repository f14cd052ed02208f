"""A frame's rows as JSON-ready dicts, converted a column at a time.

The API and the pages send frames of thousands of rows (a large incident's accounts, a page of
subscribers): a Python call per value costs tens of milliseconds there, a column at a time a few.
Each caller says how a time is written and how a number is given; what a column's type cannot say
(objects, nullable integers, categories) goes value by value through the caller's ``other``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd


def json_value(value: Any) -> Any:
    """One value as JSON holds it, for ``other`` where a column's values are objects: missing as
    None, a time as ISO text, a numpy scalar as its Python value, anything else as it is."""
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return pd.Timestamp(value).isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _as_is(value: float) -> Any:
    return value


def column_values(
    col: pd.Series,
    *,
    time_format: str,
    other: Callable[[Any], Any],
    real: Callable[[float], Any] = _as_is,
) -> list[Any]:
    """Every value of ``col`` as JSON holds it: a time as ``time_format`` text (the clock time as
    stored, zone or not), a float through ``real``, missing as None, anything else through
    ``other``."""
    dtype = col.dtype
    # Nullable integers and booleans hold NA, and are objects to numpy: they go value by value.
    kind = dtype.kind if isinstance(dtype, np.dtype | pd.DatetimeTZDtype) else "O"
    if kind == "M":
        text = col.dt.strftime(time_format)
        return [None if t is None or t != t else t for t in text.tolist()]
    if kind in "iub":  # no missing value: tolist gives Python's own ints and bools
        return list(col.tolist())
    if kind == "f":
        return [None if v != v else real(v) for v in col.tolist()]
    if isinstance(dtype, pd.StringDtype):  # text, or NaN / None / NA where missing
        return [v if isinstance(v, str) else None for v in col.tolist()]
    return [other(v) for v in col.tolist()]


def json_rows(
    df: pd.DataFrame,
    *,
    time_format: str,
    other: Callable[[Any], Any],
    real: Callable[[float], Any] = _as_is,
) -> list[dict[str, Any]]:
    """The rows of ``df`` as dicts keyed by column name (as text), values by :func:`column_values`."""
    keys = [str(k) for k in df.columns]
    if not keys:
        return [{} for _ in range(len(df))]
    columns = [
        column_values(df.iloc[:, i], time_format=time_format, other=other, real=real)
        for i in range(len(keys))
    ]
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]

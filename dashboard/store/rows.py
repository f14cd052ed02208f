"""A frame's rows as JSON-ready dicts, converted a column at a time.

The API and the pages send frames of thousands of rows (a large incident's accounts, a page of
subscribers): a Python call per value costs tens of milliseconds there, a column at a time a few.
Each caller says how a time is written and how a number is given; what a column's type cannot say
(objects, nullable integers, categories) goes value by value through the caller's ``other``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


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

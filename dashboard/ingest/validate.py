"""Vectorised validation of canonical records against their table: good rows out, bad rows with reasons.

The rules come from the table itself (SQL type, nullability, length) and from column ``info``
(``enum``, ``lenient``, ``min``, ``max``) and table ``info`` (``order``: pairs of times that must not
run backwards), so the schema is the one place a field is described.

What the database would refuse never reaches it: text with NUL or unpaired surrogates, text longer
than its column, integers outside the column's range, non-finite numbers. A key, an id or a coded
value that breaks a rule rejects its record; a descriptive field (free text, a lenient code) is
cleaned and cut to fit instead, with a marker, and counted in ``Validated.adjusted``: a record is
never lost over its trivia. Times later than ``now`` plus the allowed skew, or earlier than
``earliest``, reject their record, so a source with a broken clock cannot move anything forward.
Validation works on a whole batch at once (pandas), which keeps the ingest path near the speed of
a plain bulk insert; each bad row still gets its own reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Float, Integer, String, Table, Text

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
#: What a descriptive text cut to fit its column ends with.
CUT_MARK = "…"
#: Integer ranges every backend stores (PostgreSQL's integer and bigint).
INT32 = 2**31 - 1
INT64 = 2**63 - 1


@dataclass(frozen=True)
class TimeGuard:
    """Which times a record may carry: none later than ``now`` plus ``max_future_s`` (a source's
    clock may be a little ahead, not days), none before ``earliest`` (epoch-zero sentinels)."""

    now: datetime
    max_future_s: float = 3600.0
    earliest: datetime = datetime(1990, 1, 1)


@dataclass
class Rejected:
    """A record that failed validation: the record as received and why."""

    raw: Any
    reason: str
    record_id: str | None = None
    #: Its position in the records given to :func:`validate`.
    index: int = -1


@dataclass
class Validated:
    """The valid rows (a frame with exactly the table's writable columns) and the rejected ones."""

    rows: pd.DataFrame
    rejected: list[Rejected] = field(default_factory=list)
    #: Descriptive fields cleaned or cut to fit, by column: how many records.
    adjusted: dict[str, int] = field(default_factory=dict)
    #: How many of the valid rows had any field cleaned or cut.
    adjusted_rows: int = 0


def writable_columns(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if not c.info.get("managed")]


def _frame(records: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        return records.reset_index(drop=True)
    if not len(records):
        return pd.DataFrame()
    # Object columns, built directly: values stay the Python objects the connector gave (no
    # round trip through Arrow strings), which is what the database driver wants in the end.
    keys = dict.fromkeys(chain.from_iterable(records))
    return pd.DataFrame({k: pd.Series([r.get(k) for r in records], dtype=object) for k in keys})


def _is_null(s: pd.Series) -> pd.Series:
    return s.isna()


def _fmt(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reasons:
    """Accumulates per-row reasons without a Python loop over good rows."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.msgs: dict[int, list[str]] = {}

    def add(self, mask: pd.Series | np.ndarray, message: Any) -> None:
        """Record ``message`` (a string, or a function of the offending value) for rows in mask."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        if not len(idx):
            return
        self.bad[idx] = True
        for i in idx:
            text = message(int(i)) if callable(message) else message
            self.msgs.setdefault(int(i), []).append(text)


def descriptive(col: Column[Any]) -> bool:
    """Free text or a lenient code: cleaned and cut to fit rather than a reason to lose the record.
    Keys, ids, personal identifiers (a number, an address) and strict codes are never changed."""
    return bool(
        col.nullable
        and not col.primary_key
        and not col.name.endswith("_id")
        and not col.info.get("personal")
        and not (col.info.get("enum") and not col.info.get("lenient"))
    )


def _unstorable(v: Any) -> bool:
    """Text no database takes: a NUL, or an unpaired surrogate (not valid UTF-8)."""
    if not isinstance(v, str):
        return False
    if "\x00" in v:
        return True
    if v.isascii():
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _storable(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    return v.replace("\x00", "").encode("utf-8", errors="replace").decode("utf-8")


def _plain_text(obj: pd.Series) -> bool:
    """Whether every text is ASCII without a NUL (the common case, which needs no cleaning), tested
    once per distinct value: ids and codes repeat (a batch of KPI samples names a few thousand cells
    and a handful of KPIs in a hundred thousand rows)."""
    return all(isinstance(v, str) and v.isascii() and "\x00" not in v for v in obj.dropna().unique())


def _longest(values: np.ndarray) -> int:
    """The length of the longest text among ``values`` (measured once per distinct value)."""
    return max(map(len, pd.unique(values)), default=0)


def _as_str(
    s: pd.Series,
    col: Column[Any],
    reasons: _Reasons,
    present: pd.Series,
    adjusted: dict[str, int],
    touched: np.ndarray,
) -> pd.Series:
    obj = s.astype(object)
    if pd.api.types.infer_dtype(obj, skipna=True) not in ("string", "empty"):
        # Ids and codes arrive as integers from some systems (TMF swagger types ids as integer).
        def conv(v: Any) -> Any:
            if v is None or isinstance(v, str):
                return v
            if isinstance(v, bool | np.bool_):
                return None
            if isinstance(v, int | np.integer):
                return str(int(v))
            if isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
                return str(int(v))
            return None

        converted = obj.map(conv)
        bad = present & converted.isna()
        reasons.add(bad, lambda i: f"{col.name}: expected text, got {_fmt(s.iloc[i])}")
        obj = converted
    soft = descriptive(col)
    if not _plain_text(obj):
        unstorable = obj.map(_unstorable).to_numpy(dtype=bool)
        if unstorable.any():
            if soft:
                obj = obj.where(~unstorable, obj.map(_storable))
                adjusted[col.name] = adjusted.get(col.name, 0) + int(unstorable.sum())
                touched |= unstorable
            else:
                reasons.add(
                    unstorable,
                    lambda i: f"{col.name}: holds characters no database stores (NUL or invalid UTF-8)",
                )
                obj = obj.where(~unstorable, None)  # the record is refused: nothing below sees it
    length = getattr(col.type, "length", None)
    if length and soft:
        long = obj.map(lambda v: isinstance(v, str) and len(v) > length).to_numpy(dtype=bool)
        if long.any():
            obj = obj.where(
                ~long, obj.map(lambda v: v[: length - len(CUT_MARK)] + CUT_MARK, na_action="ignore")
            )
            adjusted[col.name] = adjusted.get(col.name, 0) + int(long.sum())
            touched |= long
    elif length:
        if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
            # Arrow-backed text (pandas' default) measures lengths in C.
            too_long = (s.str.len() > length).to_numpy(dtype=bool, na_value=False)
        else:
            values = obj.to_numpy()
            mask = obj.notna().to_numpy()
            too_long = np.zeros(len(values), dtype=bool)
            if _longest(values[mask]) > length:
                too_long[mask] = (
                    np.fromiter(map(len, values[mask]), dtype=np.int64, count=int(mask.sum())) > length
                )
        reasons.add(too_long, lambda i: f"{col.name}: longer than {length} characters")
    enum = col.info.get("enum")
    if enum:
        canon = {e.replace("_", ""): e for e in enum}
        if obj.isin(enum).to_numpy()[present.to_numpy()].all():
            return obj  # the common case: already canonical
        lowered = (
            obj.str.strip().str.lower().str.replace(" ", "", regex=False).str.replace("_", "", regex=False)
        )
        known = lowered.isin(list(canon)).to_numpy()
        mapped = lowered.map(canon)
        if col.info.get("lenient"):
            # Real systems drift ("UNacknowledged", "Pending"): keep what they said, normalised
            # when it matches a known value, as given otherwise.
            obj = obj.where(~known, mapped)
        else:
            reasons.add(
                present.to_numpy() & ~known,
                lambda i: f"{col.name}: {_fmt(s.iloc[i])} is not one of {', '.join(enum)}",
            )
            obj = mapped.where(known, None)
    return obj


def _as_number(
    s: pd.Series, col: Column[Any], reasons: _Reasons, present: pd.Series, integer: bool
) -> pd.Series:
    if s.dtype == bool or (
        s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("boolean", "mixed")
    ):
        is_bool = s.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        reasons.add(is_bool, lambda i: f"{col.name}: expected a number, got {_fmt(s.iloc[i])}")
    num = pd.to_numeric(s, errors="coerce")
    num = num.astype("float64")
    failed = present & num.isna()
    reasons.add(failed, lambda i: f"{col.name}: expected a number, got {_fmt(s.iloc[i])}")
    arr = num.to_numpy()
    with np.errstate(invalid="ignore"):
        inf = np.isinf(arr)
    reasons.add(inf, lambda i: f"{col.name}: expected a finite number, got {_fmt(s.iloc[i])}")
    lo, hi = col.info.get("min"), col.info.get("max")
    with np.errstate(invalid="ignore"):
        if lo is not None:
            reasons.add(arr < lo, lambda i: f"{col.name}: {arr[i]:g} is below the minimum {lo:g}")
        if hi is not None:
            reasons.add(arr > hi, lambda i: f"{col.name}: {arr[i]:g} is above the maximum {hi:g}")
    if integer:
        with np.errstate(invalid="ignore"):
            frac = ~np.isnan(arr) & ~np.isinf(arr) & (np.floor(arr) != arr)
            limit = INT64 if isinstance(col.type, BigInteger) else INT32
            huge = np.isfinite(arr) & (np.abs(arr) > limit)
        reasons.add(frac, lambda i: f"{col.name}: expected a whole number, got {_fmt(s.iloc[i])}")
        reasons.add(huge, lambda i: f"{col.name}: {_fmt(s.iloc[i])} is outside the range a database stores")
        arr = np.where(huge, np.nan, arr)
        return pd.Series(np.where(np.isfinite(arr), arr, np.nan)).astype("Int64")
    return num


def _as_bool(s: pd.Series, col: Column[Any], reasons: _Reasons, present: pd.Series) -> pd.Series:
    if s.dtype == bool:
        return s.astype(object)
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "boolean":
        return s  # already True/False/None

    def conv(v: Any) -> Any:
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | np.integer) and v in (0, 1):
            return bool(v)
        if isinstance(v, str):
            t = v.strip().lower()
            if t in _TRUE:
                return True
            if t in _FALSE:
                return False
        return None

    out = s.astype(object).map(conv)
    reasons.add(present & out.isna(), lambda i: f"{col.name}: expected true or false, got {_fmt(s.iloc[i])}")
    return out


def _as_datetime(
    s: pd.Series,
    col: Column[Any],
    reasons: _Reasons,
    present: pd.Series,
    date_only: bool,
    guard: TimeGuard | None = None,
) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        dt = s
        if getattr(s.dt, "tz", None) is not None:
            dt = s.dt.tz_convert("UTC").dt.tz_localize(None)
    else:

        def conv(v: Any) -> Any:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return pd.NaT
            if isinstance(v, bool | int | float | np.integer | np.floating):
                return pd.NaT  # epoch numbers are ambiguous (s, ms, us); connectors convert them
            try:
                ts = pd.Timestamp(v)
            except (ValueError, TypeError, OverflowError):
                return pd.NaT
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            return ts

        obj = s.astype(object)
        if pd.api.types.infer_dtype(obj, skipna=True) == "string":
            # The common case, ISO 8601 text: parse the whole column at once, then retry the rest.
            dt = pd.to_datetime(obj, utc=True, format="ISO8601", errors="coerce").dt.tz_localize(None)
            retry = (present & dt.isna()).to_numpy()
            if retry.any():
                dt = dt.astype("datetime64[us]")
                dt[retry] = pd.to_datetime(obj[retry].map(conv), errors="coerce").astype("datetime64[us]")
        else:
            dt = pd.to_datetime(obj.map(conv), errors="coerce")
    dt = dt.astype("datetime64[us]")
    reasons.add(
        present & dt.isna(),
        lambda i: (
            f"{col.name}: expected an ISO 8601 {'date' if date_only else 'time'}, got {_fmt(s.iloc[i])}"
        ),
    )
    if date_only:
        return dt.dt.normalize()
    if guard is not None:
        latest = pd.Timestamp(guard.now + timedelta(seconds=guard.max_future_s))
        ahead = (dt > latest).to_numpy(dtype=bool, na_value=False)
        reasons.add(
            ahead,
            lambda i: (
                f"{col.name}: {dt.iloc[i]:%Y-%m-%dT%H:%M:%S} is in the future (more than "
                f"{guard.max_future_s:g} s ahead of {guard.now:%Y-%m-%dT%H:%M:%S}): "
                "the source's clock is wrong"
            ),
        )
        early = (dt < pd.Timestamp(guard.earliest)).to_numpy(dtype=bool, na_value=False)
        reasons.add(
            early,
            lambda i: f"{col.name}: {dt.iloc[i]:%Y-%m-%dT%H:%M:%S} is before {guard.earliest:%Y-%m-%d}",
        )
    return dt


def validate(
    table: Table,
    records: Sequence[Mapping[str, Any]] | pd.DataFrame,
    *,
    source: str,
    guard: TimeGuard | None = None,
) -> Validated:
    """Check records against ``table``; return typed valid rows and rejected records with reasons.

    ``guard`` bounds the times records may carry (none: any time is taken)."""
    df = _frame(records)
    n = len(df)
    cols = writable_columns(table)
    names = [c.name for c in cols]
    if n == 0:
        return Validated(rows=pd.DataFrame(columns=names))
    reasons = _Reasons(n)
    adjusted: dict[str, int] = {}
    touched = np.zeros(n, dtype=bool)

    unknown = [c for c in df.columns if c not in table.columns]
    if unknown:
        has_value = df[unknown].notna().any(axis=1).to_numpy()
        reasons.add(has_value, f"unknown field(s): {', '.join(map(str, unknown))}")

    if "source" not in df.columns:
        df["source"] = source
    else:
        df["source"] = df["source"].where(df["source"].notna(), source)

    out: dict[str, pd.Series] = {}
    for col in cols:
        if col.name in df.columns:
            s = df[col.name]
            if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
                # An empty string carries no value: treat it as missing, on every backend alike.
                s = s.astype(object)
                empty = s.isin(["", " "]).to_numpy()
                if empty.any():
                    s = s.where(~empty, None)
        else:
            s = pd.Series([None] * n, dtype=object)
        present = ~_is_null(s)
        default_arg = getattr(col.default, "arg", None)
        default = None if callable(default_arg) else default_arg
        if not col.nullable and default is None:
            reasons.add(~present, f"{col.name}: required field is missing")
        t = col.type
        if isinstance(t, Boolean):
            v = _as_bool(s, col, reasons, present)
        elif isinstance(t, Integer):
            v = _as_number(s, col, reasons, present, integer=True)
        elif isinstance(t, Float):
            v = _as_number(s, col, reasons, present, integer=False)
        elif isinstance(t, DateTime):
            v = _as_datetime(s, col, reasons, present, date_only=False, guard=guard)
        elif isinstance(t, Date):
            v = _as_datetime(s, col, reasons, present, date_only=True)
        elif isinstance(t, String | Text):
            v = _as_str(s, col, reasons, present, adjusted, touched)
        else:
            v = s
        if default is not None:
            v = v.where(present, default)
        out[col.name] = v

    # Times that must not run backwards within a record (raised before cleared, and so on).
    for before, after in table.info.get("order", ()):
        a, b = out[before], out[after]
        backwards = (a.notna() & b.notna() & (b < a)).to_numpy(dtype=bool)
        reasons.add(backwards, f"{after} is before {before}")

    rows = pd.DataFrame(out, columns=names)
    rejected: list[Rejected] = []
    if reasons.bad.any():
        bad_idx = np.flatnonzero(reasons.bad)
        raw_records = (
            records.iloc[bad_idx].to_dict("records")
            if isinstance(records, pd.DataFrame)
            else [records[int(i)] for i in bad_idx]
        )
        ids = df["id"] if "id" in df.columns else None
        for i, raw in zip(bad_idx, raw_records, strict=True):
            rid = ids.iloc[int(i)] if ids is not None else None
            rejected.append(
                Rejected(
                    raw=raw,
                    reason="; ".join(reasons.msgs[int(i)]),
                    record_id=None if rid is None or pd.isna(rid) else str(rid),
                    index=int(i),
                )
            )
        rows = rows.loc[~reasons.bad].reset_index(drop=True)
    return Validated(
        rows=rows, rejected=rejected, adjusted=adjusted, adjusted_rows=int((touched & ~reasons.bad).sum())
    )


def dedupe(table: Table, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per key: the newest by the table's version column, else the last one received."""
    key = [c.name for c in table.primary_key.columns]
    if rows.empty or not rows.duplicated(subset=key).any():
        return rows
    version = table.info.get("version_column")
    if version:
        rows = rows.sort_values(version, kind="stable")
    return rows.drop_duplicates(subset=key, keep="last").reset_index(drop=True)

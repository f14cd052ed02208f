"""CSV and Parquet files (``type: file``): glob a folder, map columns, convert units, each file once."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorOptions,
    FatalError,
    JSONDict,
    Reject,
    Stream,
    frame_rows,
)
from connectors.canonical import check_kind

#: Raw file content kept in quarantine for a broken file, at most this many bytes.
MAX_RAW_BYTES = 256 * 1024

# Unit -> factor to the dimension's base unit (seconds, bytes, bits per second, ratio).
_UNITS: dict[str, tuple[str, float]] = {
    "ns": ("time", 1e-9),
    "us": ("time", 1e-6),
    "ms": ("time", 1e-3),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "d": ("time", 86400.0),
    "bit": ("data", 0.125),
    "B": ("data", 1.0),
    "kB": ("data", 1e3),
    "MB": ("data", 1e6),
    "GB": ("data", 1e9),
    "TB": ("data", 1e12),
    "KiB": ("data", 1024.0),
    "MiB": ("data", 1024.0**2),
    "GiB": ("data", 1024.0**3),
    "bps": ("rate", 1.0),
    "kbps": ("rate", 1e3),
    "Mbps": ("rate", 1e6),
    "Gbps": ("rate", 1e9),
    "ratio": ("ratio", 1.0),
    "percent": ("ratio", 0.01),
    "%": ("ratio", 0.01),
}


# --- shared by the file-based connectors (files, pm_xml) ------------------------------------


def resolve_paths(pattern: str) -> list[Path]:
    """Files named by a folder (its direct children) or a glob (``**`` recurses), oldest first."""
    p = Path(pattern).expanduser()
    if p.is_dir():
        found = [c for c in p.iterdir() if c.is_file()]
    else:
        found = [Path(m) for m in glob.glob(str(p), recursive=True)]
        found = [f for f in found if f.is_file()]
    stamped = []
    for f in found:
        try:
            stamped.append((f.stat().st_mtime_ns, str(f), f))
        except OSError:  # removed between listing and stat
            continue
    return [f for _m, _n, f in sorted(stamped)]


def fingerprint(path: Path) -> str:
    """What identifies one version of a file: size and modification time (ns)."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class ProcessedFiles:
    """The files already processed, by path and fingerprint, kept in the stream state (bounded).

    At most ``limit`` files are remembered. Files are processed oldest first, so when one is
    forgotten its modification time becomes the ``horizon``: a file not remembered and not newer
    than the horizon counts as processed. (A file copied in later with an old preserved mtime,
    ``cp -p``, would be taken as processed once the bound has been reached: keep ``remember``
    above the number of files the folder keeps.) Entries of deleted files are dropped.
    """

    def __init__(self, state: Mapping[str, Any], limit: int) -> None:
        raw = state.get("processed") or {}
        self.seen: dict[str, str] = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        horizon = state.get("horizon_ns")
        self.horizon_ns: int = int(horizon) if isinstance(horizon, int) else 0
        self.limit = limit

    def is_new(self, path: Path, print_: str) -> bool:
        known = self.seen.get(str(path))
        if known is not None:
            return known != print_
        return _mtime_ns(print_) > self.horizon_ns

    def mark(self, path: Path, print_: str) -> None:
        key = str(path)
        self.seen.pop(key, None)
        self.seen[key] = print_
        while len(self.seen) > self.limit:
            oldest = next(iter(self.seen))
            self.horizon_ns = max(self.horizon_ns, _mtime_ns(self.seen.pop(oldest)))

    def prune(self, present: list[Path]) -> None:
        keep = {str(p) for p in present}
        self.seen = {k: v for k, v in self.seen.items() if k in keep}

    def state(self) -> JSONDict:
        return {"processed": dict(self.seen), "horizon_ns": self.horizon_ns}


def _mtime_ns(print_: str) -> int:
    try:
        return int(print_.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def read_raw(path: Path, limit: int = MAX_RAW_BYTES) -> str:
    """A file's content for quarantine, cut at ``limit`` bytes with a note saying so."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        return f"<unreadable: {err}>"
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n... [truncated at {limit} bytes]"
    return text


def iter_new_files(
    pattern: str, state: Mapping[str, Any], limit: int, min_age_s: float, now_s: float
) -> tuple[ProcessedFiles, list[tuple[Path, str]]]:
    """The remembered files and the new or changed files to process now, oldest first."""
    paths = resolve_paths(pattern)
    done = ProcessedFiles(state, limit)
    done.prune(paths)
    todo: list[tuple[Path, str]] = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        if min_age_s and now_s - st.st_mtime < min_age_s:
            continue  # possibly still being written
        fp = f"{st.st_size}:{st.st_mtime_ns}"
        if done.is_new(p, fp):
            todo.append((p, fp))
    return done, todo


# --- options -----------------------------------------------------------------------------------


class UnitConversion(BaseModel):
    """``{from: s, to: ms}`` or ``{factor: 1000}``: how to scale one numeric column."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    factor: float | None = None

    @model_validator(mode="after")
    def _check(self) -> UnitConversion:
        if self.factor is not None:
            if self.from_ or self.to:
                raise ValueError("give either factor or from/to, not both")
            return self
        if not (self.from_ and self.to):
            raise ValueError("give factor, or both from and to")
        for u in (self.from_, self.to):
            if u not in _UNITS:
                raise ValueError(f"unknown unit {u!r} (known: {', '.join(_UNITS)})")
        if _UNITS[self.from_][0] != _UNITS[self.to][0]:
            raise ValueError(f"cannot convert {self.from_} to {self.to}: different dimensions")
        return self

    @property
    def multiplier(self) -> float:
        if self.factor is not None:
            return self.factor
        assert self.from_ is not None and self.to is not None
        return _UNITS[self.from_][1] / _UNITS[self.to][1]


def convert_units(df: pd.DataFrame, units: Mapping[str, UnitConversion]) -> pd.DataFrame:
    """Scale numeric columns; a value that is not a number is left as is so validation names it."""
    for col, conv in units.items():
        if col not in df.columns:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        scaled = num * conv.multiplier
        df[col] = scaled.astype(object).where(num.notna(), df[col].astype(object))
    return df


def apply_mapping(df: pd.DataFrame, mapping: Mapping[str, str], defaults: Mapping[str, Any]) -> pd.DataFrame:
    """Canonical columns from source columns; unmapped source columns are dropped when mapping is set."""
    if mapping:
        missing = [src for src in mapping.values() if src not in df.columns]
        if missing:
            have = ", ".join(map(str, df.columns))
            raise KeyError(f"column(s) not found: {', '.join(missing)} (have: {have})")
        out = pd.DataFrame({canon: df[src].to_numpy() for canon, src in mapping.items()})
    else:
        out = df.copy()
    for col, value in defaults.items():
        if col in out.columns:
            out[col] = out[col].where(out[col].notna(), value)
        else:
            out[col] = value
    return out


class FileOptions(ConnectorOptions):
    """Options of ``type: file``."""

    #: A folder (its files) or a glob such as ``/data/kpi/**/*.csv``.
    path: str
    #: ``csv`` or ``parquet``; by default from each file's suffix.
    format: Literal["csv", "parquet"] | None = None
    #: The canonical kind the rows are (``kpi_samples``, ``alarms``, ``subscribers``...).
    kind: str
    #: ``{canonical_column: source_column}``; empty passes the file's columns through unchanged.
    mapping: dict[str, str] = Field(default_factory=dict)
    #: Values for canonical columns the file lacks (``entity_type: cell``).
    defaults: dict[str, Any] = Field(default_factory=dict)
    #: ``{canonical_column: {from: s, to: ms}}`` or ``{column: {factor: 1000}}``.
    units: dict[str, UnitConversion] = Field(default_factory=dict)
    delimiter: str = ","
    encoding: str = "utf-8"
    batch_size: int = Field(default=50_000, ge=1)
    #: Skip files modified less than this many seconds ago (they may still be being written).
    min_age_s: float = Field(default=0.0, ge=0)
    #: How many processed files the state remembers.
    remember: int = Field(default=10_000, ge=1)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return check_kind(v)


class FileConnector(Connector[FileOptions]):
    """Reads each new CSV/Parquet file once into one canonical kind."""

    type = "file"
    Options = FileOptions

    def streams(self) -> list[Stream]:
        return [
            Stream(
                "files",
                (self.options.kind,),
                cursor_field=None,
                description=f"{self.options.kind} rows from {self.options.path}",
            )
        ]

    def check(self) -> CheckResult:
        base = Path(self.options.path).expanduser()
        if not base.is_dir() and not base.parent.exists() and "*" not in self.options.path:
            return CheckResult(False, f"{self.options.path}: no such folder")
        files = resolve_paths(self.options.path)
        return CheckResult(True, f"{len(files)} file(s) match {self.options.path}")

    def _format(self, path: Path) -> str:
        if self.options.format:
            return self.options.format
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            return "parquet"
        if suffix in (".csv", ".txt", ".tsv"):
            return "csv"
        raise ValueError(f"cannot tell the format from the suffix {suffix!r}; set options.format")

    def _load(self, path: Path) -> pd.DataFrame:
        if self._format(path) == "parquet":
            return pd.read_parquet(path)
        # Text columns stay text (ids such as "007" keep their zeros); validation types the rest.
        return pd.read_csv(
            path,
            sep=self.options.delimiter,
            encoding=self.options.encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        done, todo = iter_new_files(
            self.options.path, state, self.options.remember, self.options.min_age_s, time.time()
        )
        kind = self.options.kind
        for path, fp in todo:
            try:
                source = self._load(path)
                df = apply_mapping(source, self.options.mapping, self.options.defaults)
                df = convert_units(df, self.options.units)
            except Exception as err:  # any unreadable file is quarantined whole, others go on
                done.mark(path, fp)
                yield Batch(
                    kind,
                    [],
                    [Reject(read_raw(path), f"{path.name}: {_why(err)}", path.name)],
                    state=done.state(),
                )
                continue
            df = df.astype(object).where(df.notna(), None)
            n = len(df)
            if n == 0:
                done.mark(path, fp)
                yield Batch(kind, [], [], state=done.state())
                continue
            for start in range(0, n, self.options.batch_size):
                end = start + self.options.batch_size
                chunk = df.iloc[start:end].reset_index(drop=True)
                last = end >= n
                if last:
                    done.mark(path, fp)
                # The state moves only after a file's last chunk: a run that dies mid-file
                # reads the file again, and the upsert makes that harmless.
                rows = frame_rows(source.iloc[start:end])  # the file's own columns, for quarantine
                yield Batch(kind, chunk, [], state=done.state() if last else None, sources=rows)


def _why(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    return text if len(text) < 500 else text[:497] + "..."


def env_value(name: str) -> str:
    """An environment variable that must be set, as a FatalError naming the variable otherwise."""
    value = os.environ.get(name)
    if value is None:
        raise FatalError(f"environment variable {name} is not set")
    return value

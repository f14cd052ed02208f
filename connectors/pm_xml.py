"""3GPP TS 32.435 PM files (``type: pm_xml``): ``measCollecFile`` XML counters into KPI samples.

Both encodings of a measurement block are read: ``measType p=".."`` with ``r p=".."`` and
``measTypes`` with ``measResults`` (space-separated). Element names are matched without their
namespace, so files with or without the 32.435 namespace (or a vendor prefix) parse alike.

Suspect values (``<suspect>true</suspect>`` on a ``measValue``) are never stored as good data:
by default each suspect ``measValue`` is quarantined with the reason ``suspect`` (visible on the
sources page); ``suspect: skip`` drops them silently instead.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from re import Pattern
from typing import IO, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from connectors.base import (
    Batch,
    CheckResult,
    Connector,
    ConnectorContext,
    ConnectorOptions,
    JSONDict,
    LazySources,
    Reject,
    Stream,
    VantageError,
)
from connectors.files import iter_new_files, read_raw, resolve_paths
from connectors.options import EntityRule

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_NO_VALUE = {"", "NIL", "nil", "null", "NULL", "-"}


def parse_iso_duration(text: str) -> timedelta:
    """``PT900S``, ``PT15M``, ``PT1H``, ``P1D`` (and combinations) as a timedelta."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groupdict().values()):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    g = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return timedelta(days=g["d"], hours=g["h"], minutes=g["m"], seconds=g["s"])


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with or without offset as naive UTC (no offset means UTC)."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


# --- options -------------------------------------------------------------------------------


class CounterRule(BaseModel):
    """One counter (by exact name or regex) -> one KPI, optionally scaled."""

    model_config = ConfigDict(extra="forbid")

    counter: str | None = None
    pattern: str | None = None
    kpi: str
    scale: float = 1.0

    _regex: Pattern[str] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one(self) -> CounterRule:
        if bool(self.counter) == bool(self.pattern):
            raise ValueError("give exactly one of counter (a name) or pattern (a regex)")
        if self.pattern:
            try:
                self._regex = re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {err}") from None
        return self

    def matches(self, name: str) -> bool:
        if self._regex is not None:
            return self._regex.fullmatch(name) is not None
        return name == self.counter


class PmXmlOptions(ConnectorOptions):
    """Options of ``type: pm_xml``."""

    #: A folder (its files) or a glob such as ``/data/pm/**/*.xml``.
    path: str
    #: Counter -> KPI rules, first match wins.
    counters: list[CounterRule] = Field(default_factory=list)
    #: What to do with counters no rule maps: ignore them, or keep them under their own name.
    unmapped: Literal["ignore", "keep"] = "ignore"
    #: ``measObjLdn`` -> entity rules, first match wins.
    entities: list[EntityRule] = Field(default_factory=list)
    default_entity_type: str = "cell"
    #: An LDN no entity rule matches: keep the whole LDN as the id, or quarantine its values.
    unmatched_ldn: Literal["keep", "quarantine"] = "keep"
    #: Suspect values: quarantine them (default, visible to operators) or drop them silently.
    suspect: Literal["quarantine", "skip"] = "quarantine"
    batch_size: int = Field(default=100_000, ge=1)
    #: Work bounded per file: a file larger than this, one whose parse takes longer, or one in which
    #: no element ends for ``max_token_bytes`` (a 100 MB comment) is quarantined with the reason and
    #: marked read, never parsed again and again.
    max_file_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    max_parse_s: float = Field(default=300.0, gt=0)
    max_token_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    min_age_s: float = Field(default=0.0, ge=0)
    remember: int = Field(default=10_000, ge=1)


# --- parsing -------------------------------------------------------------------------------


#: Bytes handed to the XML parser at a time (parse time and the token bound are checked between).
PARSE_CHUNK = 1024 * 1024


class PmFileError(VantageError, ValueError):
    """A file that is not a readable 32.435 measCollecFile."""


@dataclass
class ParsedFile:
    """What one file held: samples as columns (cheap to frame) and the values kept out."""

    entity_type: list[str] = field(default_factory=list)
    entity_id: list[str] = field(default_factory=list)
    kpi: list[str] = field(default_factory=list)
    period_start: list[datetime] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    #: Per sample, for quarantine: the measValue it came from (an index into ``measvalues``), its
    #: counter and its text. Flat lists, not a tuple per sample: millions of small containers
    #: would make every garbage collection during ingest walk them.
    measvalues: list[dict[str, Any]] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    counter: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    suspect_skipped: int = 0

    def sources(self, start: int, end: int) -> LazySources:
        """What the file said for samples ``start`` to ``end``: the measValue and the one counter."""

        def read(i: int) -> dict[str, Any]:
            at = start + i
            return {**self.measvalues[self.origin[at]], "values": {self.counter[at]: self.text[at]}}

        return LazySources(max(0, min(end, len(self.origin)) - start), read)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "entity_type": self.entity_type,
                "entity_id": self.entity_id,
                "kpi": self.kpi,
                "period_start": pd.to_datetime(pd.Series(self.period_start, dtype=object)),
                "value": pd.Series(self.value, dtype="float64"),
            }
        )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag.split(":")[-1]


def _ended(parser: ET.XMLPullParser[ET.Element]) -> list[ET.Element]:
    """The elements the parser has seen end since it was last asked."""
    return [item[-1] for item in parser.read_events() if isinstance(item[-1], ET.Element)]


class PmParser:
    """Turns measCollecFile XML into samples by the connector's rules (caching rule lookups)."""

    def __init__(self, opts: PmXmlOptions) -> None:
        self.options = opts
        self._kpi_cache: dict[str, tuple[str, float] | None] = {}
        self._entity_cache: dict[str, tuple[str, str] | None] = {}

    def kpi_for(self, counter: str) -> tuple[str, float] | None:
        if counter in self._kpi_cache:
            return self._kpi_cache[counter]
        found: tuple[str, float] | None = None
        for rule in self.options.counters:
            if rule.matches(counter):
                found = (rule.kpi, rule.scale)
                break
        if found is None and self.options.unmapped == "keep":
            found = (counter, 1.0)
        self._kpi_cache[counter] = found
        return found

    def entity_for(self, ldn: str) -> tuple[str, str] | None:
        if ldn in self._entity_cache:
            return self._entity_cache[ldn]
        found: tuple[str, str] | None = None
        for rule in self.options.entities:
            ident = rule.match(ldn)
            if ident is not None:
                found = (rule.entity_type, ident)
                break
        if found is None and self.options.unmatched_ldn == "keep":
            found = (self.options.default_entity_type, ldn)
        if len(self._entity_cache) < 100_000:
            self._entity_cache[ldn] = found
        return found

    def parse(self, source: str | Path | IO[bytes], name: str) -> ParsedFile:
        """Parse one file; raise ``PmFileError`` when it is not a well-formed measCollecFile."""
        out = ParsedFile()
        begin: datetime | None = None
        saw_root = False
        opts = self.options
        started = time.monotonic()
        fh = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115
        parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
        since_event = 0
        try:
            while True:
                chunk = fh.read(PARSE_CHUNK)
                if not chunk:
                    parser.close()
                    events = _ended(parser)
                else:
                    parser.feed(chunk)
                    events = _ended(parser)
                    since_event = 0 if events else since_event + len(chunk)
                    if since_event > opts.max_token_bytes:
                        raise PmFileError(
                            f"no element ends within {opts.max_token_bytes:,} bytes (one huge token): refused"
                        )
                    if time.monotonic() - started > opts.max_parse_s:
                        raise PmFileError(f"parsing took longer than {opts.max_parse_s:g} s: refused")
                for elem in events:
                    tag = _local(elem.tag)
                    if tag == "measCollec" and begin is None and elem.get("beginTime"):
                        begin = parse_time(elem.get("beginTime", ""))
                    elif tag == "measInfo":
                        self._meas_info(elem, begin, name, out)
                        elem.clear()
                    elif tag == "measCollecFile":
                        saw_root = True
                if not chunk:
                    break
        except ET.ParseError as err:
            raise PmFileError(f"not well-formed XML: {err}") from None
        except ValueError as err:
            raise PmFileError(str(err)) from None
        finally:
            if fh is not source:
                fh.close()
        if not saw_root:
            raise PmFileError("no measCollecFile element (not a 3GPP TS 32.435 file)")
        return out

    def _meas_info(self, info: ET.Element, begin: datetime | None, name: str, out: ParsedFile) -> None:
        info_id = info.get("measInfoId", "")
        period: datetime | None = None
        types_by_p: dict[str, str] = {}
        type_list: list[str] | None = None
        values: list[ET.Element] = []
        for child in info:
            tag = _local(child.tag)
            if tag == "granPeriod":
                end, dur = child.get("endTime"), child.get("duration")
                if end and dur:
                    period = parse_time(end) - parse_iso_duration(dur)
            elif tag == "measType":
                types_by_p[child.get("p", str(len(types_by_p) + 1))] = (child.text or "").strip()
            elif tag == "measTypes":
                type_list = (child.text or "").split()
            elif tag == "measValue":
                values.append(child)
        if period is None:
            period = begin
        if period is None:
            raise PmFileError(f"measInfo {info_id!r}: no granPeriod endTime/duration and no beginTime")
        period_s = period.replace(microsecond=0)
        for mv in values:
            ldn = mv.get("measObjLdn", "")
            pairs: list[tuple[str, str]] = []
            suspect = False
            for child in mv:
                tag = _local(child.tag)
                if tag == "r":
                    p = child.get("p", "")
                    counter = types_by_p.get(p)
                    if counter is None:
                        raise PmFileError(f"measInfo {info_id!r}: r p={p!r} has no measType")
                    pairs.append((counter, (child.text or "").strip()))
                elif tag == "measResults":
                    results = (child.text or "").split()
                    names = type_list or []
                    if len(results) != len(names):
                        raise PmFileError(
                            f"measInfo {info_id!r}, {ldn!r}: {len(results)} measResults "
                            f"for {len(names)} measTypes"
                        )
                    pairs.extend(zip(names, results, strict=True))
                elif tag == "suspect":
                    suspect = (child.text or "").strip().lower() == "true"
            self._value(name, info_id, ldn, period_s, pairs, suspect, out)

    def _value(
        self,
        name: str,
        info_id: str,
        ldn: str,
        period: datetime,
        pairs: list[tuple[str, str]],
        suspect: bool,
        out: ParsedFile,
    ) -> None:
        mapped = [(k, v, m) for k, v in pairs if (m := self.kpi_for(k)) is not None]
        if not mapped:
            return
        raw = {
            "file": name,
            "measInfoId": info_id,
            "measObjLdn": ldn,
            "period_start": period.isoformat(),
            "values": {k: v for k, v, _m in mapped},
        }
        if suspect:
            if self.options.suspect == "quarantine":
                out.rejects.append(Reject(raw, f"{name}: suspect values for {ldn!r} (not stored)", ldn))
            else:
                out.suspect_skipped += len(mapped)
            return
        entity = self.entity_for(ldn)
        if entity is None:
            out.rejects.append(Reject(raw, f"{name}: no entity rule matches measObjLdn {ldn!r}", ldn))
            return
        etype, eid = entity
        bad: dict[str, str] = {}
        at = len(out.measvalues)
        out.measvalues.append(raw)
        for counter, text, (kpi, scale) in mapped:
            if text in _NO_VALUE:
                continue  # 32.435: an empty or NIL result means no value was collected
            try:
                number = float(text)
            except ValueError:
                bad[counter] = text
                continue
            out.entity_type.append(etype)
            out.entity_id.append(eid)
            out.kpi.append(kpi)
            out.period_start.append(period)
            out.value.append(number * scale)
            out.origin.append(at)
            out.counter.append(counter)
            out.text.append(text)
        if bad:
            out.rejects.append(
                Reject(
                    {**raw, "values": bad}, f"{name}: {ldn!r}: non-numeric value(s) for {', '.join(bad)}", ldn
                )
            )


# --- the connector -------------------------------------------------------------------------


class PmXmlConnector(Connector[PmXmlOptions]):
    """Reads each new 32.435 file once; a broken file is quarantined whole and the others go on."""

    type = "pm_xml"
    Options = PmXmlOptions

    def __init__(self, options: ConnectorOptions, context: ConnectorContext) -> None:
        super().__init__(options, context)
        self.parser = PmParser(self.options)

    def streams(self) -> list[Stream]:
        return [
            Stream(
                "pm_files",
                ("kpi_samples",),
                cursor_field=None,
                description=f"3GPP TS 32.435 files from {self.options.path}",
            )
        ]

    def check(self) -> CheckResult:
        files = resolve_paths(self.options.path)
        base = Path(self.options.path).expanduser()
        if not files and not base.is_dir() and not any(ch in self.options.path for ch in "*?["):
            return CheckResult(False, f"{self.options.path}: no such file or folder")
        return CheckResult(True, f"{len(files)} file(s) match {self.options.path}")

    def read(self, stream: Stream, state: JSONDict) -> Iterator[Batch]:
        done, todo = iter_new_files(
            self.options.path, state, self.options.remember, self.options.min_age_s, time.time()
        )
        for path, fp in todo:
            try:
                size = path.stat().st_size
                if size > self.options.max_file_bytes:
                    raise PmFileError(
                        f"{size:,} bytes, over max_file_bytes ({self.options.max_file_bytes:,}): refused"
                    )
                with path.open("rb") as fh:
                    parsed = self.parser.parse(fh, path.name)
            except (PmFileError, OSError) as err:
                done.mark(path, fp)
                yield Batch(
                    "kpi_samples",
                    [],
                    [Reject(read_raw(path), f"{path.name}: {err}", path.name)],
                    state=done.state(),
                )
                continue
            df = parsed.frame()
            n = len(df)
            size = self.options.batch_size
            starts = list(range(0, n, size)) or [0]
            for i, start in enumerate(starts):
                last = i == len(starts) - 1
                if last:
                    done.mark(path, fp)
                yield Batch(
                    "kpi_samples",
                    df.iloc[start : start + size].reset_index(drop=True),
                    parsed.rejects if last else [],
                    state=done.state() if last else None,
                    sources=parsed.sources(start, start + size),
                )

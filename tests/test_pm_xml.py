"""3GPP TS 32.435 PM files end to end: real files on disk, through the ingest path into a real store."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import ConnectorContext
from connectors.pm_xml import PmXmlConnector, PmXmlOptions, parse_iso_duration, parse_time
from dashboard.ingest.runner import Ingestor
from dashboard.store import Store
from dashboard.store.schema import kpi_samples, quarantine
from tests.reference import ORIGINS, OWN, REFERENCE, Payloads, payloads

NS = "http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec"
Key = tuple[str, str, str]


# Whole files are the suite's own (tests/fixtures/3gpp-pm); the tests that read them run again on
# the ONAP reference files as a conformance run (tests/reference.py).
@dataclass(frozen=True)
class Expected:
    """What the tests expect of one set of PM files (the files are named in tests/reference.py)."""

    counters: list[dict[str, Any]]  # counter rules for the two-encodings test: one exact, one scaled
    entities: list[dict[str, Any]]  # entity rules that match some measObjLdn of those files, not all
    both_forms: dict[Key, tuple[datetime, float]]  # what the two files with two measValues give
    edit: tuple[str, str]  # a value of the file with one measValue, and what it becomes
    edited: tuple[Key, float]  # the sample that changes, and its new value
    many_infos: dict[str, float]  # counter -> value of the file with repeated measInfo blocks
    many_infos_ldn: str  # its one measObjLdn


_ENB = "ManagedElement=ENB-PRT0417,ENBFunction=1"
_GNB = "ManagedElement=GNB-PRT0417,GNBDUFunction=1"
_OWN_PERIOD = datetime(2026, 2, 10, 8, 0)  # granPeriod endTime 09:15+01:00 minus PT900S
_REF_PERIOD = datetime(2018, 10, 2, 12, 0)  # granPeriod endTime 12:15Z minus PT900S
EXPECTED = {
    OWN: Expected(
        counters=[
            {"counter": "RRC.ConnEstab.Succ", "kpi": "rrc_success"},
            {"pattern": r"DRB\.UEThpDl", "kpi": "dl_throughput_mbps", "scale": 0.001},  # kbit/s
        ],
        entities=[{"pattern": r"(?:EUtranCellFDD|NRCellDU)=(?P<id>[^,]+)$"}],
        both_forms={
            # measType/r form (RRC.ConnEstab.Att is not mapped, so not stored)
            ("cell", "PRT0417-1", "rrc_success"): (_OWN_PERIOD, 1238.0),
            ("cell", "PRT0417-1", "dl_throughput_mbps"): (_OWN_PERIOD, 24.18),
            ("site", _ENB, "rrc_success"): (_OWN_PERIOD, 3655.0),
            ("site", _ENB, "dl_throughput_mbps"): (_OWN_PERIOD, 61.44),
            # measTypes/measResults form
            ("cell", "PRT0417-N1", "rrc_success"): (_OWN_PERIOD, 839.0),
            ("cell", "PRT0417-N1", "dl_throughput_mbps"): (_OWN_PERIOD, 118.4),
            ("site", _GNB, "rrc_success"): (_OWN_PERIOD, 1681.0),
            ("site", _GNB, "dl_throughput_mbps"): (_OWN_PERIOD, 203.52),
        },
        edit=('<r p="2">981</r>', '<r p="2">982</r>'),
        edited=(("cell", f"{_ENB},EUtranCellFDD=PRT0417-3", "RRC.ConnEstab.Succ"), 982.0),
        many_infos={
            "RRC.ConnEstab.Att": 1104,
            "RRC.ConnEstab.Succ": 1097,
            "RRC.ConnMean": 41,
            "RRC.ConnMax": 97,
            "DRB.UEThpDl": 22015,
            "DRB.UEThpUl": 3072,
        },
        many_infos_ldn=f"{_ENB},EUtranCellFDD=PRT0417-2",
    ),
    REFERENCE: Expected(
        counters=[{"counter": "a", "kpi": "kpi_a"}, {"pattern": "b", "kpi": "kpi_b", "scale": 0.5}],
        entities=[{"pattern": r"^(?P<id>some measObjLdn)$"}],
        both_forms={
            # measType/r form (counter c is not mapped, so not stored)
            ("cell", "some measObjLdn", "kpi_a"): (_REF_PERIOD, 86.0),
            ("cell", "some measObjLdn", "kpi_b"): (_REF_PERIOD, 33.5),
            ("site", "some other measObjLdn", "kpi_a"): (_REF_PERIOD, 5.0),
            ("site", "some other measObjLdn", "kpi_b"): (_REF_PERIOD, 3.0),
            # measTypes/measResults form
            ("site", "objLdn", "kpi_a"): (_REF_PERIOD, 76.0),
            ("site", "objLdn", "kpi_b"): (_REF_PERIOD, 13.5),
            ("site", "some other objLdn", "kpi_a"): (_REF_PERIOD, 1.0),
            ("site", "some other objLdn", "kpi_b"): (_REF_PERIOD, 1.0),
        },
        edit=('<r p="1">86</r>', '<r p="1">87</r>'),
        edited=(("cell", "some measObjLdn", "a"), 87.0),
        many_infos={"z": 99, "aa": 1, "zz": 27, "bb": 2, "a": 1, "b": 2},
        many_infos_ldn="objLdn",
    ),
}


@dataclass(frozen=True)
class PmSet:
    files: Payloads
    expect: Expected

    def copy(self, role: str, folder: Path) -> Path:
        """The file of ``role`` copied into ``folder``, under its own name."""
        source = self.files.path(role)
        return Path(shutil.copy(source, folder / source.name))


@pytest.fixture(params=ORIGINS)
def pm(request: pytest.FixtureRequest) -> PmSet:
    """The suite's own PM files, then (conformance) the ONAP reference files."""
    return PmSet(payloads("3gpp-pm", request.param), EXPECTED[request.param])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the PM files go (the SQLite store lives in tmp_path itself)."""
    path = tmp_path / "pm"
    path.mkdir()
    return path


def make(path: Path | str, **options: Any) -> PmXmlConnector:
    return PmXmlConnector(PmXmlOptions.model_validate({"path": str(path), **options}), ConnectorContext("pm"))


def samples(store: Store) -> dict[Key, tuple[datetime, float]]:
    with store.connect() as conn:
        return {
            (r.entity_type, r.entity_id, r.kpi): (r.period_start, r.value)
            for r in conn.execute(select(kpi_samples))
        }


def quarantined(store: Store) -> list[Any]:
    with store.connect() as conn:
        return list(conn.execute(select(quarantine).order_by(quarantine.c.id)))


def pm_file(measinfo: str, begin: str = "2026-03-01T10:00:00Z") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<measCollecFile xmlns="{NS}">'
        f'<fileHeader fileFormatVersion="32.435 V10.0"><measCollec beginTime="{begin}"/></fileHeader>'
        f"<measData>{measinfo}</measData></measCollecFile>\n"
    )


def write(path: Path, text: str, age_s: int = 0) -> Path:
    path.write_text(text, encoding="utf-8")
    if age_s:
        t = path.stat().st_mtime - age_s
        os.utime(path, (t, t))
    return path


CELL_RULE = [{"pattern": r"EUtranCellFDD=(?P<id>[^,]+)", "entity_type": "cell"}]
RRC = [{"counter": "RRC.Succ", "kpi": "rrc_success"}, {"pattern": r"RRC\.Att.*", "kpi": "rrc_attempts"}]


def test_both_encodings(pm: PmSet, store: Store, folder: Path) -> None:
    pm.copy("r_two_values", folder)  # measType p= / r p=
    pm.copy("list_two_values", folder)  # measTypes / measResults
    connector = make(
        folder, counters=pm.expect.counters, entities=pm.expect.entities, default_entity_type="site"
    )
    summary = Ingestor(store).run(connector)
    assert summary.status == "success", summary.error
    assert samples(store) == pm.expect.both_forms
    assert summary.upserted == 8 and summary.quarantined == 0


def test_files_are_processed_once_and_replay_changes_nothing(
    pm: PmSet, sqlite_store: Store, folder: Path
) -> None:
    path = pm.copy("r_one_value", folder)
    pm.copy("r_two_values", folder)
    pm.copy("list_two_values", folder)
    ingest = Ingestor(sqlite_store)
    connector = make(folder / "*.xml", unmapped="keep")
    first = ingest.run(connector)
    assert first.status == "success" and first.records_in == 3 + 6 + 6
    stored = samples(sqlite_store)
    second = ingest.run(connector)
    assert second.records_in == 0 and second.upserted == 0  # remembered: not even read again
    assert samples(sqlite_store) == stored
    # Forgetting the state (a replay of every file) stores nothing twice.
    replay = list(connector.read(connector.streams()[0], {}))
    with sqlite_store.begin() as conn:
        written = sum(
            ingest.ingest_batch(conn, connector="pm", stream="pm_files", batch=b).upserted for b in replay
        )
    assert written == 0 and samples(sqlite_store) == stored
    # A file that changes (new size/mtime) is read again.
    before, after = pm.expect.edit
    text = path.read_text(encoding="utf-8")
    assert before in text
    write(path, text.replace(before, after))
    third = ingest.run(connector)
    assert third.records_in == 3 and third.upserted == 1
    key, value = pm.expect.edited
    assert stored[key][1] != value and samples(sqlite_store)[key][1] == value


def test_file_with_many_meas_infos(pm: PmSet, sqlite_store: Store, folder: Path) -> None:
    pm.copy("many_infos", folder)
    summary = Ingestor(sqlite_store).run(make(folder, unmapped="keep"))
    # 3 measInfo blocks x 4 counters, some repeated with the same values: 6 distinct samples.
    assert summary.records_in == 12 and summary.quarantined == 0
    got = samples(sqlite_store)
    assert {k[2]: v[1] for k, v in got.items()} == pm.expect.many_infos
    assert {k[:2] for k in got} == {("cell", pm.expect.many_infos_ldn)}


def test_suspect_values_are_quarantined_not_stored(store: Store, folder: Path) -> None:
    write(
        folder / "pm.xml",
        pm_file(
            '<measInfo><granPeriod endTime="2026-03-01T10:15:00+01:00" duration="PT15M"/>'
            "<measTypes>RRC.Succ RRC.Att</measTypes>"
            '<measValue measObjLdn="ME=1,EUtranCellFDD=C1"><measResults>98 100</measResults>'
            "<suspect>false</suspect></measValue>"
            '<measValue measObjLdn="ME=1,EUtranCellFDD=C2"><measResults>1 100</measResults>'
            "<suspect>true</suspect></measValue>"
            '<measValue measObjLdn="ME=1,EUtranCellFDD=C3"><measResults>NIL 5</measResults></measValue>'
            "</measInfo>"
        ),
    )
    summary = Ingestor(store).run(make(folder, counters=RRC, entities=CELL_RULE))
    period = datetime(2026, 3, 1, 9, 0)  # 10:15+01:00 = 09:15Z, minus 15 minutes
    assert samples(store) == {
        ("cell", "C1", "rrc_success"): (period, 98.0),
        ("cell", "C1", "rrc_attempts"): (period, 100.0),
        ("cell", "C3", "rrc_attempts"): (period, 5.0),  # NIL: no value, not a zero
    }
    [q] = quarantined(store)
    assert "suspect" in q.reason and "C2" in q.reason and q.record_id == "ME=1,EUtranCellFDD=C2"
    assert summary.status == "partial"


def test_suspect_skip_drops_silently(sqlite_store: Store, folder: Path) -> None:
    write(
        folder / "pm.xml",
        pm_file(
            '<measInfo><granPeriod endTime="2026-03-01T10:15:00Z" duration="PT900S"/>'
            '<measType p="1">RRC.Succ</measType>'
            '<measValue measObjLdn="EUtranCellFDD=C2"><r p="1">1</r><suspect>TRUE</suspect></measValue>'
            "</measInfo>"
        ),
    )
    Ingestor(sqlite_store).run(make(folder, counters=RRC, entities=CELL_RULE, suspect="skip"))
    assert samples(sqlite_store) == {} and quarantined(sqlite_store) == []


def test_broken_file_is_quarantined_whole_and_the_next_is_processed(store: Store, folder: Path) -> None:
    good = pm_file(
        '<measInfo><granPeriod endTime="2026-03-01T10:15:00Z" duration="PT900S"/>'
        '<measType p="1">RRC.Succ</measType>'
        '<measValue measObjLdn="EUtranCellFDD=C1"><r p="1">42</r></measValue></measInfo>'
    )
    # The broken file comes first (older) and holds one good block before the damage.
    broken = good.replace("</measData></measCollecFile>", "<measInfo><granPeriod")
    write(folder / "a_broken.xml", broken, age_s=60)
    write(folder / "b_good.xml", good.replace(">42<", ">43<").replace("10:15:00Z", "10:30:00Z"))
    write(folder / "c_not_pm.xml", "<html><body>login</body></html>", age_s=30)
    ingest = Ingestor(store)
    connector = make(folder, counters=RRC, entities=CELL_RULE)
    summary = ingest.run(connector)
    assert summary.status == "partial" and summary.quarantined == 2
    # Nothing of the broken file is stored, not even its first good block.
    assert samples(store) == {("cell", "C1", "rrc_success"): (datetime(2026, 3, 1, 10, 15), 43.0)}
    by_file = {q.record_id: q for q in quarantined(store)}
    assert set(by_file) == {"a_broken.xml", "c_not_pm.xml"}
    assert "not well-formed XML" in by_file["a_broken.xml"].reason
    assert by_file["a_broken.xml"].raw == broken  # the whole file, as received
    assert "no measCollecFile" in by_file["c_not_pm.xml"].reason
    # The broken files are remembered too: not quarantined again on the next run.
    assert ingest.run(connector).quarantined == 0


def test_huge_broken_file_raw_is_truncated(sqlite_store: Store, folder: Path) -> None:
    write(folder / "big.xml", "<measCollecFile>" + "x" * 400_000)
    summary = Ingestor(sqlite_store).run(make(folder))
    [q] = quarantined(sqlite_store)
    assert summary.quarantined == 1 and "truncated" in q.raw and len(q.raw) < 300_000


def test_unmatched_ldn_and_non_numeric_values(sqlite_store: Store, folder: Path) -> None:
    write(
        folder / "pm.xml",
        pm_file(
            '<measInfo><granPeriod endTime="2026-03-01T10:15:00Z" duration="PT900S"/>'
            "<measTypes>RRC.Succ</measTypes>"
            '<measValue measObjLdn="Router=7"><measResults>5</measResults></measValue>'
            '<measValue measObjLdn="EUtranCellFDD=C9"><measResults>abc</measResults></measValue>'
            "</measInfo>"
        ),
    )
    Ingestor(sqlite_store).run(make(folder, counters=RRC, entities=CELL_RULE, unmatched_ldn="quarantine"))
    reasons = sorted(q.reason for q in quarantined(sqlite_store))
    assert len(reasons) == 2 and samples(sqlite_store) == {}
    assert "non-numeric" in reasons[0] and "RRC.Succ" in reasons[0]
    assert "no entity rule matches measObjLdn 'Router=7'" in reasons[1]


def test_begin_time_when_no_gran_period_and_no_namespace(sqlite_store: Store, folder: Path) -> None:
    text = pm_file(
        "<measInfo><measTypes>RRC.Succ</measTypes>"
        '<measValue measObjLdn="EUtranCellFDD=C1"><measResults>9</measResults></measValue>'
        "</measInfo>",
        begin="2026-03-01T08:00:00-02:00",
    ).replace(f' xmlns="{NS}"', "")
    write(folder / "pm.xml", text)
    Ingestor(sqlite_store).run(make(folder, counters=RRC, entities=CELL_RULE))
    assert samples(sqlite_store) == {("cell", "C1", "rrc_success"): (datetime(2026, 3, 1, 10, 0), 9.0)}


def test_state_is_bounded_and_forgets_deleted_files(tmp_path: Path) -> None:
    for i in range(5):
        write(tmp_path / f"f{i}.xml", pm_file(""), age_s=100 - i)
    connector = make(tmp_path, remember=3)
    stream = connector.streams()[0]
    first = list(connector.read(stream, {}))
    assert len(first) == 5
    state = first[-1].state
    assert state is not None and [Path(p).name for p in state["processed"]] == ["f2.xml", "f3.xml", "f4.xml"]
    (tmp_path / "f4.xml").unlink()
    # f0 and f1 were forgotten but are older than the horizon: still not read again.
    again = list(connector.read(stream, state))
    assert again == []
    write(tmp_path / "f5.xml", pm_file(""))
    [new] = list(connector.read(stream, state))
    assert new.state is not None
    assert [Path(p).name for p in new.state["processed"]] == ["f2.xml", "f3.xml", "f5.xml"]


def test_iso_durations_and_times() -> None:
    assert parse_iso_duration("PT900S") == timedelta(seconds=900)
    assert parse_iso_duration("PT15M") == timedelta(minutes=15)
    assert parse_iso_duration("P1DT1H") == timedelta(days=1, hours=1)
    with pytest.raises(ValueError):
        parse_iso_duration("900")
    assert parse_time("2018-10-02T12:00:00+01:00") == datetime(2018, 10, 2, 11, 0)
    assert parse_time("2018-10-02T12:00:00Z") == datetime(2018, 10, 2, 12, 0)


def test_one_huge_token_is_refused_in_bounded_time_and_never_read_again(
    sqlite_store: Store, folder: Path
) -> None:
    """A 40 MB comment inside a file: refused once no element ends within max_token_bytes, marked
    read, so later runs do not stall on it again; an oversize file is refused unread."""
    big = folder / "comment.xml"
    with big.open("w", encoding="utf-8") as fh:
        fh.write("<measCollecFile><!--")
        for _ in range(40):
            fh.write("x" * (1024 * 1024))
        fh.write("--></measCollecFile>")
    connector = make(folder, max_token_bytes=4 * 1024 * 1024)
    started = time.monotonic()
    first = Ingestor(sqlite_store).run(connector)
    assert time.monotonic() - started < 10
    second = Ingestor(sqlite_store).run(connector)
    assert (first.quarantined, second.records_in, second.quarantined) == (1, 0, 0)
    other = folder.parent / "other"
    other.mkdir()
    write(other / "huge.xml", "<measCollecFile>" + " " * 4096 + "</measCollecFile>")
    assert Ingestor(sqlite_store).run(make(other, max_file_bytes=2048)).quarantined == 1
    reasons = {q.record_id: q.reason for q in quarantined(sqlite_store)}
    assert "one huge token" in reasons["comment.xml"]
    assert "over max_file_bytes" in reasons["huge.xml"]

"""3GPP TS 32.435 PM files end to end: real files on disk, through the ingest path into a real store."""

from __future__ import annotations

import os
import shutil
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
from tests.reference import shared_dir

REF = shared_dir() / "reference" / "3gpp-pm"
NS = "http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec"
Key = tuple[str, str, str]


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


def test_both_reference_forms(store: Store, folder: Path) -> None:
    for name in ("meas_type_and_r_many_meas_values.xml", "meas_types_and_meas_results_many_meas_values.xml"):
        shutil.copy(REF / name, folder / name)
    connector = make(
        folder,
        counters=[{"counter": "a", "kpi": "kpi_a"}, {"pattern": "b", "kpi": "kpi_b", "scale": 0.5}],
        entities=[{"pattern": r"^(?P<id>some measObjLdn)$"}],
        default_entity_type="site",
    )
    summary = Ingestor(store).run(connector)
    assert summary.status == "success", summary.error
    period = datetime(2018, 10, 2, 12, 0)  # granPeriod endTime 12:15Z minus PT900S
    assert samples(store) == {
        # measType/r form (counter c is not mapped, so not stored)
        ("cell", "some measObjLdn", "kpi_a"): (period, 86.0),
        ("cell", "some measObjLdn", "kpi_b"): (period, 33.5),
        ("site", "some other measObjLdn", "kpi_a"): (period, 5.0),
        ("site", "some other measObjLdn", "kpi_b"): (period, 3.0),
        # measTypes/measResults form
        ("site", "objLdn", "kpi_a"): (period, 76.0),
        ("site", "objLdn", "kpi_b"): (period, 13.5),
        ("site", "some other objLdn", "kpi_a"): (period, 1.0),
        ("site", "some other objLdn", "kpi_b"): (period, 1.0),
    }
    assert summary.upserted == 8 and summary.quarantined == 0


def test_files_are_processed_once_and_replay_changes_nothing(sqlite_store: Store, folder: Path) -> None:
    for name in (
        "meas_type_and_r.xml",
        "meas_type_and_r_many_meas_values.xml",
        "meas_types_and_meas_results_many_meas_values.xml",
    ):
        shutil.copy(REF / name, folder / name)
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
    path = folder / "meas_type_and_r.xml"
    write(path, path.read_text().replace('<r p="1">86</r>', '<r p="1">87</r>'))
    third = ingest.run(connector)
    assert third.records_in == 3 and third.upserted == 1
    assert samples(sqlite_store)[("cell", "some measObjLdn", "a")][1] == 87.0


def test_reference_file_with_many_meas_infos(sqlite_store: Store, folder: Path) -> None:
    shutil.copy(REF / "lte_meas_results_manyinfo.xml", folder)
    summary = Ingestor(sqlite_store).run(make(folder, unmapped="keep"))
    # 3 measInfo blocks x 4 counters; z and zz repeat with the same values: 6 distinct samples.
    assert summary.records_in == 12 and summary.quarantined == 0
    got = samples(sqlite_store)
    assert {k[2]: v[1] for k, v in got.items()} == {"z": 99, "aa": 1, "zz": 27, "bb": 2, "a": 1, "b": 2}
    assert {k[:2] for k in got} == {("cell", "objLdn")}


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

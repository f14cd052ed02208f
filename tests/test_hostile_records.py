"""Records nobody here wrote: nothing the database would refuse reaches it, a quarantine row always
fits, reruns add nothing, trivia never lose a record, and no time from a broken clock is stored or
moves a cursor. Both backends: PostgreSQL refuses more (varchar lengths, NUL, int4 range)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, func, insert, select

from connectors.base import Batch, ConnectorContext, PushRequest, utcnow
from connectors.files import FileConnector, FileOptions
from connectors.pm_xml import PmXmlConnector, PmXmlOptions
from connectors.prometheus import PrometheusConnector, PrometheusOptions
from connectors.sql import SqlConnector, SqlOptions
from connectors.tmf import Tmf642Connector
from connectors.ves import EVENT_ROUTE, VesConnector, VesOptions
from dashboard.cli import main
from dashboard.config import settings_from_mapping
from dashboard.health import check_health
from dashboard.ingest import Ingestor
from dashboard.ingest.runner import QUARANTINE_PREVIEW
from dashboard.scheduler import ConnectorJobs
from dashboard.store import Store
from dashboard.store.schema import accounts, alarms, connector_runs, connector_state, quarantine
from tests.apps import context_for
from tests.loopback import LoopbackServer, Response
from tests.reference import OWN, payloads
from tests.test_pm_xml import pm_file
from tests.test_tmf import ALARMS, make, serve

T = datetime(2026, 3, 2, 12, 0)


def alarm(alarm_id: str, **changes: Any) -> dict[str, Any]:
    record = {
        "id": alarm_id,
        "severity": "major",
        "state": "raised",
        "raised_at": T - timedelta(minutes=5),
        "changed_at": T - timedelta(minutes=5),
        "resource_id": "r1",
        "probable_cause": "powerProblem",
    }
    return record | changes


def ingest(store: Store, kind: str, records: list[dict[str, Any]]) -> Any:
    ing = Ingestor(store, clock=lambda: T)
    with store.begin() as conn:
        return ing.ingest_batch(conn, connector="src", stream="s", batch=Batch(kind, records))


def held(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(quarantine).order_by(quarantine.c.id))]


def stored(store: Store) -> dict[str, dict[str, Any]]:
    with store.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(alarms))}


def test_a_poison_pill_is_quarantined_whole_and_its_page_is_stored(store: Store) -> None:
    long_id = "A" * 5000
    counts = ingest(store, "alarms", [alarm(long_id), alarm("ok-1"), alarm("nul\x00id")])
    assert (counts.upserted, counts.quarantined) == (1, 2)
    assert set(stored(store)) == {"ok-1"}
    rows = held(store)
    reasons = sorted(r["reason"] for r in rows)
    assert "id: longer than 128 characters" in reasons[1]
    assert "no database stores" in reasons[0]
    by_reason = {r["reason"]: r for r in rows}
    long_row = by_reason[reasons[1]]
    assert len(long_row["record_id"]) == 256 and long_row["record_id"].endswith("…")
    # The whole record is kept, compressed, NUL included; the preview shows the NUL escaped.
    nul_row = by_reason[reasons[0]]
    assert "\x00" not in nul_row["raw"] and "\\u0000" in nul_row["raw"]
    assert '"id": "nul\\u0000id"' in gzip.decompress(nul_row["payload"]).decode()

    # A rerun refuses the same records again and adds nothing to the quarantine.
    again = ingest(store, "alarms", [alarm(long_id), alarm("ok-1"), alarm("nul\x00id")])
    assert again.quarantined == 2
    assert len(held(store)) == 2


def test_a_huge_record_is_previewed_and_kept_whole(store: Store) -> None:
    text = "x" * (QUARANTINE_PREVIEW * 3)
    ingest(store, "alarms", [alarm("big", probable_cause=None, specific_problem=text, severity="bogus")])
    [row] = held(store)
    assert "truncated" in row["raw"] and len(row["raw"]) < QUARANTINE_PREVIEW + 200
    assert text in gzip.decompress(row["payload"]).decode()


def test_trivia_never_lose_a_record(store: Store) -> None:
    """A descriptive field too long, or holding a NUL, is cleaned and cut to fit, and counted."""
    counts = ingest(
        store,
        "alarms",
        [
            alarm(
                "a1", ack_state="acknowledged-by-the-night-shift-" * 4, specific_problem="fan\x00tray " * 200
            )
        ],
    )
    assert (counts.upserted, counts.quarantined, counts.adjusted) == (1, 0, 1)
    row = stored(store)["a1"]
    length = alarms.c.ack_state.type.length
    assert len(row["ack_state"]) == length and row["ack_state"].endswith("…")
    assert "\x00" not in row["specific_problem"] and row["specific_problem"].startswith("fantray ")


def test_times_from_a_broken_clock_are_refused(store: Store) -> None:
    counts = ingest(
        store,
        "alarms",
        [
            alarm("future", changed_at=datetime(9999, 12, 31)),
            alarm("epoch", raised_at=datetime(1970, 1, 1), changed_at=datetime(1970, 1, 1)),
            alarm("backwards", state="cleared", severity="cleared", cleared_at=T - timedelta(hours=1)),
            alarm("changed-before-raised", changed_at=T - timedelta(hours=2)),
            alarm("fine"),
        ],
    )
    assert (counts.upserted, counts.quarantined) == (1, 4)
    reasons = {r["record_id"]: r["reason"] for r in held(store)}
    assert "is in the future" in reasons["future"] and "clock is wrong" in reasons["future"]
    assert "before 1990-01-01" in reasons["epoch"]
    assert reasons["backwards"] == "cleared_at is before raised_at"
    assert reasons["changed-before-raised"] == "changed_at is before raised_at"


def test_integers_outside_what_a_database_stores_are_refused(store: Store) -> None:
    base = {"segment": "enterprise", "vip": False, "name": "Acme"}
    counts = ingest(
        store,
        "accounts",
        [base | {"id": "big", "sla_restore_minutes": 10**12}, base | {"id": "ok", "sla_restore_minutes": 30}],
    )
    assert (counts.upserted, counts.quarantined) == (1, 1)
    [row] = held(store)
    assert "outside the range a database stores" in row["reason"]
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() == 1


def test_one_alarm_dated_9999_never_moves_the_cursor(store: Store, http_server: LoopbackServer) -> None:
    now = utcnow().replace(microsecond=0)

    def tmf_alarm(alarm_id: str, changed: str) -> dict[str, Any]:
        return {
            "id": alarm_id,
            "alarmType": "equipmentAlarm",
            "perceivedSeverity": "major",
            "probableCause": "powerProblem",
            "state": "raised",
            "alarmRaisedTime": "2026-01-01T00:00:00Z",
            "alarmChangedTime": changed,
            "alarmedObject": {"id": "r1"},
            "sourceSystemId": "oss",
        }

    good = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    serve(http_server, ALARMS, [tmf_alarm("1", good), tmf_alarm("2", "9999-12-31T00:00:00Z")])
    summary = Ingestor(store).run(make(Tmf642Connector, http_server))
    assert (summary.upserted, summary.quarantined) == (1, 1)
    [row] = held(store)
    assert row["record_id"] == "2" and "in the future" in row["reason"]
    with store.connect() as conn:
        state = conn.execute(select(connector_state.c.state)).scalar_one()
    assert state["since"].startswith(good[:19])
    # The next read asks for what came after the good alarm, not after 9999.
    Ingestor(store).run(make(Tmf642Connector, http_server))
    assert http_server.hits("GET", ALARMS)[-1].query["alarmChangedTime.gt"][0].startswith(good[:19])


def test_a_source_answering_500_is_retried_at_the_schedulers_pace(
    sqlite_store: Store, http_server: LoopbackServer
) -> None:
    """The HTTP client's short in-run backoff is not a Retry-After: the scheduler's own delays hold."""
    http_server.route("GET", ALARMS, lambda _req: Response(500, {"error": "down"}))
    settings = settings_from_mapping(
        {
            "database_url": sqlite_store.url,
            "scheduler": {"retry_initial_s": 5, "retry_max_s": 600},
            "connectors": [
                {
                    "name": "tmf",
                    "type": "tmf642",
                    "interval": "10m",
                    "options": {
                        "base_url": http_server.url,
                        "retry": {"attempts": 3, "backoff_initial_s": 0.0},
                    },
                }
            ],
        },
        environ={},
    )
    jobs = ConnectorJobs(context_for(sqlite_store, settings))
    jobs.rand = None
    summaries = [jobs.run_once("tmf") for _ in range(3)]
    assert [s.status for s in summaries] == ["failed"] * 3
    assert all(s.retriable and s.retry_after_s is None for s in summaries)
    with sqlite_store.connect() as conn:
        runs = conn.execute(select(connector_runs).order_by(connector_runs.c.id)).all()
    assert [(r.next_attempt_at - r.finished_at).total_seconds() for r in runs] == [5, 10, 20]
    assert len(http_server.hits("GET", ALARMS)) == 9  # three attempts a run, nothing more

    # A real Retry-After is followed.
    http_server.route(
        "GET", ALARMS, lambda _req: Response(503, {"error": "busy"}, headers={"Retry-After": "120"})
    )
    assert jobs.run_once("tmf").retry_after_s == 120  # longer than a run waits: the scheduler waits


def test_a_run_its_process_died_in_is_marked_abandoned_at_the_next_start(sqlite_store: Store) -> None:
    with sqlite_store.begin() as conn:
        conn.execute(
            insert(connector_runs).values(
                connector="tmf", started_at=T, status="running", records_in=10, upserted=10, quarantined=0
            )
        )
    settings = settings_from_mapping(
        {
            "database_url": sqlite_store.url,
            "connectors": [{"name": "tmf", "type": "tmf642", "options": {"base_url": "http://127.0.0.1:9"}}],
        },
        environ={},
    )
    jobs = ConnectorJobs(context_for(sqlite_store, settings))
    jobs.schedule(BackgroundScheduler(timezone="UTC"), prepare=False)  # not started: nothing runs
    with sqlite_store.connect() as conn:
        run = conn.execute(select(connector_runs)).one()
        body, _ = check_health(sqlite_store, settings, now=T)
    assert run.status == "abandoned" and run.finished_at is not None and "stopped" in run.error
    assert body["sources"]["tmf"]["state"] == "retrying"


def test_a_cursor_is_inspected_set_and_reset_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    config = tmp_path / "vantage.yaml"
    config.write_text(
        f"database_url: {url}\nconnectors:\n  - name: noc\n    type: tmf642\n    options: {{base_url: 'http://127.0.0.1:9'}}\n"
    )
    base = ["--config", str(config), "connectors", "cursor", "noc"]
    assert main([*base, "--set", "alarms", '{"since": "2026-03-01T00:00:00Z"}']) == 0
    assert capsys.readouterr().out.strip() == 'noc/alarms: {"since": "2026-03-01T00:00:00Z"}'
    assert main(base) == 0
    assert "2026-03-01" in capsys.readouterr().out
    assert main([*base, "--reset"]) == 0
    assert capsys.readouterr().out.strip() == "noc/alarms: {}"
    assert main([*base, "--set", "nope", "{}"]) != 0
    assert "no stream 'nope'" in capsys.readouterr().err


def test_a_refused_hub_registration_is_a_visible_failed_run_and_is_retried(
    sqlite_store: Store, http_server: LoopbackServer
) -> None:
    hub = "/tmf-api/alarmManagement/v4/hub"
    http_server.route("POST", hub, lambda _req: Response(503, {"error": "hub down"}))
    serve(http_server, ALARMS, [])
    settings = settings_from_mapping(
        {
            "database_url": sqlite_store.url,
            "connectors": [
                {
                    "name": "tmf",
                    "type": "tmf642",
                    "interval": "10m",
                    "options": {
                        "base_url": http_server.url,
                        "callback_url": "http://127.0.0.1:9/push/tmf",
                        "retry": {"attempts": 1},
                    },
                }
            ],
        },
        environ={},
    )
    jobs = ConnectorJobs(context_for(sqlite_store, settings))
    jobs.rand = None
    first = jobs.run_once("tmf")
    assert first.status == "failed" and "could not start" in (first.error or "") and first.retriable
    body, _ = check_health(sqlite_store, settings, now=utcnow())
    assert body["sources"]["tmf"]["state"] == "retrying"
    with sqlite_store.connect() as conn:
        run = conn.execute(select(connector_runs)).one()
    assert (run.next_attempt_at - run.finished_at).total_seconds() == 10  # the scheduler's backoff

    http_server.route("POST", hub, lambda _req: Response(201, {"id": "sub-1", "callback": "x"}))
    second = jobs.run_once("tmf")
    assert second.status == "success"
    assert jobs.connectors["tmf"].hub_id == "sub-1"  # type: ignore[attr-defined]
    jobs.close()


def test_a_record_refused_at_validation_is_quarantined_as_the_source_sent_it(
    store: Store, http_server: LoopbackServer
) -> None:
    item = {
        "id": "77",
        "alarmType": "equipmentAlarm",
        "perceivedSeverity": "apocalyptic",  # maps through, refused by validation (severity)
        "probableCause": "powerProblem",
        "state": "raised",
        "alarmRaisedTime": "2026-01-01T00:00:00Z",
        "alarmChangedTime": "2026-01-01T00:00:00Z",
        "alarmedObject": {"id": "r1"},
        "sourceSystemId": "oss",
    }
    serve(http_server, ALARMS, [item])
    summary = Ingestor(store).run(make(Tmf642Connector, http_server))
    assert summary.quarantined == 1
    [row] = held(store)
    assert "severity" in row["reason"]
    kept = json.loads(gzip.decompress(row["payload"]))
    assert kept == item  # the TMF item, not the canonical record it was mapped to


def test_a_ves_event_from_a_clock_years_ahead_is_quarantined_as_sent(store: Store) -> None:
    event = payloads("ves", OWN).json("fault")
    header = event["event"]["commonEventHeader"]
    header["startEpochMicrosec"] = header["lastEpochMicrosec"] = 4_000_000_000 * 10**6  # year 2096
    connector = VesConnector(VesOptions.model_validate({}), ConnectorContext("ves"))
    (route,) = [r for r in connector.push_routes() if r.path == EVENT_ROUTE]
    resp = route.handler(PushRequest(path=route.path, body=json.dumps(event).encode(), headers={}, query={}))
    counts = Ingestor(store).ingest("ves", resp.batches)
    assert (counts.upserted, counts.quarantined) == (0, 1)
    [row] = held(store)
    assert "in the future" in row["reason"]
    assert json.loads(gzip.decompress(row["payload"])) == event["event"]  # the VES event as sent


# --- every connector quarantines what its source said ------------------------------------------


def _kept(store: Store) -> tuple[str, Any]:
    [row] = held(store)
    return row["reason"], json.loads(gzip.decompress(row["payload"]))


def test_a_file_row_refused_at_validation_is_quarantined_as_the_file_had_it(
    store: Store, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "kpis.csv").write_text(
        "Cell,Counter,Time,Val\nC1,latency,2026-01-01T00:00:00,12\nC2,latency,9999-01-01T00:00:00,15\n"
    )
    options = {
        "path": str(drop),
        "kind": "kpi_samples",
        "mapping": {"entity_id": "Cell", "kpi": "Counter", "period_start": "Time", "value": "Val"},
        "defaults": {"entity_type": "cell"},
        "units": {"value": {"from": "s", "to": "ms"}},
    }
    connector = FileConnector(FileOptions.model_validate(options), ConnectorContext("files"))
    summary = Ingestor(store).run(connector)
    assert summary.quarantined == 1
    reason, kept = _kept(store)
    assert "future" in reason
    # The file's own columns and text, before renaming and unit conversion.
    assert kept == {"Cell": "C2", "Counter": "latency", "Time": "9999-01-01T00:00:00", "Val": "15"}


def test_a_query_row_refused_at_validation_is_quarantined_as_the_database_returned_it(
    store: Store, tmp_path: Path
) -> None:
    source = create_engine(f"sqlite:///{tmp_path / 'nms.db'}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kpis (cell TEXT, kpi TEXT, at TEXT, v REAL)")
        conn.exec_driver_sql(
            "INSERT INTO kpis VALUES ('C1', 'latency', '2026-01-01 00:00:00', 12), "
            "('C2', 'latency', '9999-01-01 00:00:00', 15)"
        )
    source.dispose()
    options = {
        "url": f"sqlite:///{tmp_path / 'nms.db'}",
        "table": "kpis",
        "kind": "kpi_samples",
        "mapping": {"entity_id": "cell", "kpi": "kpi", "period_start": "at", "value": "v"},
        "defaults": {"entity_type": "cell"},
    }
    connector = SqlConnector(SqlOptions.model_validate(options), ConnectorContext("warehouse"))
    summary = Ingestor(store).run(connector)
    assert summary.quarantined == 1
    reason, kept = _kept(store)
    assert "future" in reason
    assert kept == {"entity_id": "C2", "kpi": "latency", "period_start": "9999-01-01 00:00:00", "value": 15.0}


def test_a_pm_value_refused_at_validation_is_quarantined_as_the_file_had_it(
    store: Store, tmp_path: Path
) -> None:
    ldn = "ManagedElement=ENB1,ENBFunction=1,EUtranCellFDD=C7"
    measinfo = (
        '<measInfo measInfoId="rrc"><granPeriod duration="PT900S" endTime="2026-03-01T10:15:00Z"/>'
        '<measType p="1">RRC.Succ</measType><measType p="2">RRC.Att</measType>'
        f'<measValue measObjLdn="{ldn}"><r p="1">97</r><r p="2">1e400</r></measValue></measInfo>'
    )
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "A1.xml").write_text(pm_file(measinfo), encoding="utf-8")
    options = {
        "path": str(drop),
        "counters": [{"counter": "RRC.Succ", "kpi": "rrc_success"}, {"counter": "RRC.Att", "kpi": "rrc_att"}],
        "entities": [{"pattern": r"EUtranCellFDD=(?P<id>[^,]+)", "entity_type": "cell"}],
    }
    connector = PmXmlConnector(PmXmlOptions.model_validate(options), ConnectorContext("pm"))
    summary = Ingestor(store).run(connector)
    assert summary.quarantined == 1 and summary.records_in == 2
    reason, kept = _kept(store)
    assert "finite" in reason or "value" in reason
    assert kept["file"] == "A1.xml" and kept["measObjLdn"] == ldn and kept["values"] == {"RRC.Att": "1e400"}


def test_a_prometheus_sample_refused_at_validation_is_quarantined_as_the_series_had_it(
    store: Store, http_server: LoopbackServer
) -> None:
    long_cell = "C" * 300  # longer than any entity id a store keeps
    result = [
        {"metric": {"cell": "C1"}, "values": [[1_767_225_600, "0.012"]]},
        {"metric": {"cell": long_cell, "job": "ran"}, "values": [[1_767_225_600, "0.015"]]},
    ]
    http_server.route(
        "GET",
        "/api/v1/query_range",
        lambda req: Response(200, {"status": "success", "data": {"resultType": "matrix", "result": result}}),
    )
    options = {
        "base_url": http_server.url,
        "step": "1h",
        "lookback": "1h",
        "queries": [{"query": "latency", "kpi": "latency_ms", "entity_label": "cell", "scale": 1000}],
    }
    clock = lambda: datetime(2026, 1, 1, 0, 30)  # noqa: E731
    connector = PrometheusConnector(
        PrometheusOptions.model_validate(options), ConnectorContext("prom", now=clock)
    )
    summary = Ingestor(store).run(connector)
    assert summary.quarantined == 1
    reason, kept = _kept(store)
    assert "entity_id" in reason
    assert kept == {"metric": {"cell": long_cell, "job": "ran"}, "value": [1_767_225_600, "0.015"]}

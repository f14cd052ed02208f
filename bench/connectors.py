"""Connector throughput: TMF642 pulled over loopback HTTP, VES pushed, 3GPP PM parsed, each into SQLite.

Each figure stands beside the plain parse rate of the same payloads (``json.loads`` or
ElementTree without mapping or store) measured in the same run, so a slower machine moves both.
The last line is one JSON object whose keys carry their units.

    .venv/bin/python bench/connectors.py [--alarms 20000] [--events 20000] [--pm-files 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import json
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
PM_NS = "http://www.3gpp.org/ftp/specs/archive/32_series/32.435#measCollec"


def _store(folder: Path, name: str) -> Any:
    from dashboard.store import Store

    store = Store(f"sqlite:///{folder / name}")
    store.upgrade()
    return store


def _best(fn: Callable[[], int], repeat: int = 3) -> tuple[int, float]:
    """Items handled and the best wall time of ``repeat`` runs (for the plain parse baselines)."""
    best = float("inf")
    n = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return n, best


# --- TMF642 ---------------------------------------------------------------------------------


def bench_tmf642(folder: Path, n: int, page: int) -> dict[str, float] | str:
    try:
        from connectors.base import ConnectorContext
        from connectors.tmf import Tmf642Connector
    except ImportError as err:  # the TMF connectors are another part of the tree
        return f"TMF642 connector not available: {err}"
    from dashboard.ingest.runner import Ingestor
    from tests.loopback import Request, Response, loopback

    template = json.loads((REFERENCE / "tmf/TMF642_Alarm/Alarm.example.json").read_text(encoding="utf-8"))
    alarms = []
    for i in range(n):
        a = copy.deepcopy(template)
        a["id"] = f"A{i:07d}"
        a["alarmedObject"]["id"] = f"R{i % 5000}"
        a["perceivedSeverity"] = ["critical", "major", "minor", "warning"][i % 4]
        alarms.append(a)
    pages = [json.dumps(alarms[o : o + page]).encode() for o in range(0, n, page)]

    def handler(req: Request) -> Response:
        offset = int(req.query.get("offset", ["0"])[0])
        limit = int(req.query.get("limit", [str(page)])[0])
        body = pages[offset // page] if limit == page and offset % page == 0 and offset < n else b"[]"
        return Response(200, body, headers={"Content-Type": "application/json", "X-Total-Count": str(n)})

    store = _store(folder, "tmf642.db")
    with loopback() as http:
        http.route("GET", "/tmf-api/alarmManagement/v4/alarm", handler)
        opts = Tmf642Connector.Options.model_validate({"base_url": http.url, "page_size": page})
        connector = Tmf642Connector(opts, ConnectorContext("bench-tmf642"))
        t0 = time.perf_counter()
        summary = Ingestor(store).run(connector)
        elapsed = time.perf_counter() - t0
        connector.close()
    store.dispose()
    if summary.upserted != n:
        return f"TMF642 run stored {summary.upserted} of {n} alarms ({summary.status}: {summary.error})"
    plain_n, plain_s = _best(lambda: sum(len(json.loads(p)) for p in pages))
    return {"tmf642_alarms_per_s": n / elapsed, "tmf642_plain_parse_per_s": plain_n / plain_s}


# --- VES ------------------------------------------------------------------------------------


def bench_ves(folder: Path, n: int, batch: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from connectors.base import ConnectorContext, PushRequest
    from connectors.ves import VesConnector, VesOptions
    from dashboard.ingest.runner import Ingestor
    from dashboard.push import handle_push
    from dashboard.store.schema import alarms

    template = json.loads((REFERENCE / "ves/ves7_batch_valid.json").read_text(encoding="utf-8"))["eventList"][
        0
    ]
    t_us = 1_767_225_600_000_000  # 2026-01-01
    events = []
    for i in range(n):
        e = copy.deepcopy(template)
        h = e["commonEventHeader"]
        h["eventId"] = f"fault{i:08d}"
        h["sourceName"] = f"node{i % 2000:04d}"
        h["startEpochMicrosec"] = h["lastEpochMicrosec"] = t_us + i * 1000
        e["faultFields"]["eventSeverity"] = ["CRITICAL", "MAJOR", "MINOR", "WARNING"][i % 4]
        events.append(e)
    bodies = [json.dumps({"eventList": events[o : o + batch]}).encode() for o in range(0, n, batch)]

    store = _store(folder, "ves.db")
    connector = VesConnector(VesOptions(), ConnectorContext("bench-ves"))
    [route] = [r for r in connector.push_routes() if r.path.endswith("eventBatch")]
    ingest = Ingestor(store)
    t0 = time.perf_counter()
    for body in bodies:
        # What the web server does for each POST: the route's handler, then the one ingest path.
        answer = handle_push(ingest, "bench-ves", route, PushRequest(path=route.path, body=body, headers={}))
        assert answer.status == 202, answer.body
    elapsed = time.perf_counter() - t0
    with store.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(alarms)).scalar_one()
    store.dispose()
    assert stored == n, f"stored {stored} of {n} events"
    plain_n, plain_s = _best(lambda: sum(len(json.loads(b)["eventList"]) for b in bodies))
    return {"ves_events_per_s": n / elapsed, "ves_plain_parse_per_s": plain_n / plain_s}


# --- 3GPP PM --------------------------------------------------------------------------------


def _pm_file(index: int, cells: int, counters: int) -> str:
    """One 15-minute file; even files use measType/r, odd ones measTypes/measResults."""
    end = f"2026-01-01T{10 + index // 4:02d}:{(index % 4) * 15:02d}:00Z"
    names = [f"pmCounter{c:02d}" for c in range(counters)]
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<measCollecFile xmlns="{PM_NS}"><fileHeader '
        'fileFormatVersion="32.435 V10.0"><measCollec beginTime="2026-01-01T00:00:00Z"/></fileHeader>'
        f'<measData><measInfo measInfoId="bench"><granPeriod endTime="{end}" duration="PT900S"/>'
    ]
    if index % 2 == 0:
        parts += [f'<measType p="{p + 1}">{name}</measType>' for p, name in enumerate(names)]
    else:
        parts.append(f"<measTypes>{' '.join(names)}</measTypes>")
    for cell in range(cells):
        parts.append(f'<measValue measObjLdn="ManagedElement=1,EUtranCellFDD=C{cell:05d}">')
        values = [str((cell * 7 + c) % 1000) for c in range(counters)]
        if index % 2 == 0:
            parts += [f'<r p="{p + 1}">{v}</r>' for p, v in enumerate(values)]
        else:
            parts.append(f"<measResults>{' '.join(values)}</measResults>")
        parts.append("<suspect>false</suspect></measValue>")
    parts.append("</measInfo></measData></measCollecFile>\n")
    return "".join(parts)


def _plain_pm(paths: list[Path]) -> int:
    n = 0
    for path in paths:
        for el in ET.parse(path).getroot().iter():
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "r":
                float(el.text or "nan")
                n += 1
            elif tag == "measResults":
                n += len([float(v) for v in (el.text or "").split()])
    return n


def bench_pm(folder: Path, files: int, cells: int, counters: int) -> dict[str, float]:
    from connectors.base import ConnectorContext
    from connectors.pm_xml import PmXmlConnector, PmXmlOptions
    from dashboard.ingest.runner import Ingestor

    pm_dir = folder / "pm"
    pm_dir.mkdir()
    paths = []
    for i in range(files):
        path = pm_dir / f"A2026-01-01_{i:03d}.xml"
        path.write_text(_pm_file(i, cells, counters), encoding="utf-8")
        paths.append(path)
    expected = files * cells * counters
    opts = PmXmlOptions.model_validate(
        {
            "path": str(pm_dir / "*.xml"),
            "unmapped": "keep",
            "entities": [{"pattern": r"EUtranCellFDD=(?P<id>[^,]+)", "entity_type": "cell"}],
        }
    )
    connector = PmXmlConnector(opts, ConnectorContext("bench-pm"))
    stream = connector.streams()[0]
    t0 = time.perf_counter()
    parsed = sum(len(b.records) for b in connector.read(stream, {}))
    parse_s = time.perf_counter() - t0
    assert parsed == expected, f"parsed {parsed} of {expected}"

    store = _store(folder, "pm.db")
    t0 = time.perf_counter()
    summary = Ingestor(store).run(connector)
    store_s = time.perf_counter() - t0
    store.dispose()
    assert summary.upserted == expected, f"stored {summary.upserted} of {expected} ({summary.error})"
    plain_n, plain_s = _best(lambda: _plain_pm(paths))
    assert plain_n == expected
    return {
        "pm_samples_per_s": expected / store_s,
        "pm_parse_samples_per_s": expected / parse_s,
        "pm_plain_parse_per_s": plain_n / plain_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--ves-batch", type=int, default=100)
    parser.add_argument("--pm-files", type=int, default=20)
    parser.add_argument("--pm-cells", type=int, default=500)
    parser.add_argument("--pm-counters", type=int, default=20)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    out: dict[str, Any] = {}
    gaps: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vantage-bench-") as tmp:
        folder = Path(tmp)
        tmf = bench_tmf642(folder, args.alarms, args.page)
        if isinstance(tmf, str):
            gaps.append(tmf)
        else:
            out.update(tmf)
        out.update(bench_ves(folder, args.events, args.ves_batch))
        out.update(bench_pm(folder, args.pm_files, args.pm_cells, args.pm_counters))

    if "tmf642_alarms_per_s" in out:
        out["tmf642_ratio"] = out["tmf642_alarms_per_s"] / out["tmf642_plain_parse_per_s"]
    out["ves_ratio"] = out["ves_events_per_s"] / out["ves_plain_parse_per_s"]
    out["pm_ratio"] = out["pm_samples_per_s"] / out["pm_plain_parse_per_s"]
    out["pm_parse_ratio"] = out["pm_parse_samples_per_s"] / out["pm_plain_parse_per_s"]

    if "tmf642_alarms_per_s" in out:
        print(
            f"TMF642 pull over loopback HTTP into SQLite: {out['tmf642_alarms_per_s']:>10,.0f} alarms/s "
            f"(json.loads alone {out['tmf642_plain_parse_per_s']:,.0f}/s, ratio {out['tmf642_ratio']:.3f})"
        )
    print(
        f"VES push handler + ingest into SQLite:       {out['ves_events_per_s']:>10,.0f} events/s "
        f"(json.loads alone {out['ves_plain_parse_per_s']:,.0f}/s, ratio {out['ves_ratio']:.3f})"
    )
    print(
        f"3GPP PM parse + map (no store):              {out['pm_parse_samples_per_s']:>10,.0f} samples/s "
        f"(ElementTree alone {out['pm_plain_parse_per_s']:,.0f}/s, ratio {out['pm_parse_ratio']:.3f})"
    )
    print(
        f"3GPP PM parse + ingest into SQLite:          {out['pm_samples_per_s']:>10,.0f} samples/s "
        f"(ratio {out['pm_ratio']:.3f})"
    )
    for gap in gaps:
        print(f"GAP: {gap}")
    if gaps:
        out["gaps"] = gaps
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

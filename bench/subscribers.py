"""Subscriber search at scale: search latency per query form, first pages of filtered lists, the 360 view.

Builds a fresh store (a SQLite file in a temporary folder, or a disposable schema on PostgreSQL) with the
simulator's world at --subscribers through the ingest path, so the search keys are derived as in
production, synthetic churn signals, two KPIs per cell and --alarms active alarms ranked into open
incidents (bench/_data.py, then one queue refresh), then measures, in the same run:
- search: ``dashboard.subscribers.search.search_page`` (the first page of 50 with its count, masked)
  for --requests random subscribers in each form: the MSISDN as +351 912 345 678, 00351912345678,
  351912345678, 912-345-678 and its last 4 digits; the subscriber id; the account id; the first two
  thirds of the account name. The forms that match a personal field by part of its value (national
  number, last 4 digits, part of a name) are typed by an analyst (a viewer's text matches the MSISDN
  and a holder's name only whole), the others by a viewer. Also: whether the subscriber was found
  (number and id forms), the median number of matches, and whether every query plan reads the
  large tables (subscribers, accounts) by index only (EXPLAIN QUERY PLAN / EXPLAIN);
- lists: the first page of the whole list by value and by risk, and of filtered lists (enterprise
  and high churn risk; one region; affected by an open incident; negative sentiment), then the
  next page from its cursor;
- the 360 view: ``dashboard.subscribers.story.subscriber_story`` server-side, for random subscribers,
  when that module exists (else ``story_p95_ms`` is null).
Goals: search p95 <= 200 ms; 360 view p95 <= 300 ms. Prints progress, then one line of JSON.

    .venv/bin/python bench/subscribers.py [--subscribers 1000000] [--backend sqlite|postgresql]
                                          [--alarms 200] [--requests 100]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py shares its name with the standard library's ``queue`` (imported by pandas and
# SQLAlchemy): move this folder behind the standard library on the import path, then put the
# repository in front.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib
import json
import random
import resource
import tempfile
import time
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select, text

from bench import _data
from connectors.base import utcnow
from dashboard.incidents.queue import refresh_queue
from dashboard.kpis import load_catalogue
from dashboard.privacy import Principal
from dashboard.store import Store
from dashboard.store.schema import accounts, incident_cells, incidents, regions, subscriber_cells, subscribers
from dashboard.subscribers import search
from dashboard.subscribers.search import Filters, parse_query, search_page

VIEWER = Principal(user="bench", role="viewer")
ANALYST = Principal(user="bench", role="analyst")
FORMS = ("msisdn_intl", "msisdn_00", "msisdn_digits", "msisdn_national", "last4", "id", "account_id", "name")
#: Forms that match a personal field (the MSISDN, a holder's name) by part of its value: only a role
#: that may unmask searches that way (a viewer's text matches them whole), so they are timed as one.
PARTIAL_FORMS = ("msisdn_national", "last4", "name")
#: Forms that must find the very subscriber on their first page (the others match many lines).
EXACT_FORMS = ("msisdn_intl", "msisdn_00", "msisdn_digits", "msisdn_national", "id")
LARGE_TABLES = ("subscribers", "accounts")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024, 1)


# --- what is searched --------------------------------------------------------------------------


def forms_of(msisdn: str, sid: str, account_id: str, name: str) -> dict[str, str]:
    """Each way an analyst would type this subscriber (a Portuguese +351 9xx xxx xxx number)."""
    digits = msisdn.lstrip("+")
    cc, national = digits[:3], digits[3:]
    return {
        "msisdn_intl": f"+{cc} {national[:3]} {national[3:6]} {national[6:]}",
        "msisdn_00": f"00{digits}",
        "msisdn_digits": digits,
        "msisdn_national": f"{national[:3]}-{national[3:6]}-{national[6:]}",
        "last4": national[-4:],
        "id": sid,
        "account_id": account_id,
        "name": name[: max(4, len(name) * 2 // 3)],
    }


def sample(conn: Connection, n: int, rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(id, msisdn, account id, account name) of ``n`` random subscribers."""
    total = conn.execute(select(func.count()).select_from(subscribers)).scalar_one()
    ids = sorted({f"sub-{rng.randrange(total):07d}" for _ in range(n)})
    rows = conn.execute(
        select(subscribers.c.id, subscribers.c.msisdn, subscribers.c.account_id, accounts.c.name)
        .join(accounts, accounts.c.id == subscribers.c.account_id)
        .where(subscribers.c.id.in_(ids))
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def searcher(form: str) -> Principal:
    """Who types ``form``: an analyst for the partial forms, else a viewer."""
    return ANALYST if form in PARTIAL_FORMS else VIEWER


def reads_by_index(conn: Connection, typed: str, filters: Filters, scoring: Any, *, partial: bool) -> bool:
    """Whether the page and count queries of a search read subscribers and accounts by index only
    (``partial``: personal fields matched by part of their value, as for a role that may unmask)."""
    q = parse_query(typed, partial=partial)
    plan = search._plan(conn, q, filters, scoring)
    stmts = [*search._sections(conn, q, filters, "value", scoring, None)]
    stmts.append(
        select(func.count()).select_from(select(plan.lines.c.id).select_from(plan.source).subquery())
    )
    for stmt in stmts:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            lines = [str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
            if any(
                line.startswith(f"SCAN {t}") and "INDEX" not in line for t in LARGE_TABLES for line in lines
            ):
                return False
        else:
            lines = [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql.replace("%", "%%"))]
            if any(f"Seq Scan on {t}" in line for t in LARGE_TABLES for line in lines):
                return False
    return True


def time_search(store: Store, scoring: Any, n: int, rng: random.Random) -> dict[str, Any]:
    with store.connect() as conn:
        picks = sample(conn, n, rng)
        for form, typed in forms_of(*[picks[0][1], picks[0][0], picks[0][2], picks[0][3]]).items():
            search_page(conn, typed, Filters(), principal=searcher(form), scoring=scoring)  # warm caches
        times: dict[str, list[float]] = {f: [] for f in FORMS}
        found: dict[str, int] = dict.fromkeys(FORMS, 0)
        matches: dict[str, list[int]] = {f: [] for f in FORMS}
        for sid, msisdn, account_id, name in picks:
            for form, typed in forms_of(msisdn, sid, account_id, name).items():
                t0 = time.perf_counter()
                rows, _, total = search_page(
                    conn, typed, Filters(), principal=searcher(form), scoring=scoring
                )
                times[form].append((time.perf_counter() - t0) * 1000)
                found[form] += any(r["id"] == sid for r in rows)
                matches[form].append(total if total is not None else search.COUNT_CAP + 1)
        sid, msisdn, account_id, name = picks[0]
        indexed = {
            form: reads_by_index(conn, typed, Filters(), scoring, partial=searcher(form).may_unmask)
            for form, typed in forms_of(msisdn, sid, account_id, name).items()
        }
    pooled = [v for vs in times.values() for v in vs]
    out: dict[str, Any] = {
        "search_requests": len(pooled),
        "search_p50_ms": _p(pooled, 50),
        "search_p95_ms": _p(pooled, 95),
        "search_form_p50_ms": {f: _p(v, 50) for f, v in times.items()},
        "search_form_p95_ms": {f: _p(v, 95) for f, v in times.items()},
        "search_found_share": {f: round(found[f] / len(picks), 3) for f in EXACT_FORMS},
        "search_matches_median": {f: int(np.median(v)) for f, v in matches.items()},
        "search_reads_by_index": indexed,
        "search_form_role": {f: searcher(f).role for f in FORMS},
    }
    _say(
        f"search: p50 {out['search_p50_ms']} ms, p95 {out['search_p95_ms']} ms over {len(pooled)} searches; "
        f"per form p95 {out['search_form_p95_ms']}; found {out['search_found_share']}; by index {indexed}"
    )
    return out


# --- lists -------------------------------------------------------------------------------------


def list_cases(conn: Connection) -> dict[str, tuple[Filters, str]]:
    """The filtered lists measured: (filters, sort) by name."""
    region = conn.execute(select(regions.c.name).order_by(regions.c.name).limit(1)).scalar() or "none"
    return {
        "all_by_value": (Filters(), "value"),
        "all_by_risk": (Filters(), "risk"),
        "enterprise_high_risk": (Filters(segment="enterprise", risk="high"), "value"),
        "enterprise_high_risk_by_risk": (Filters(segment="enterprise", risk="high"), "risk"),
        "region": (Filters(region=region), "value"),
        "affected": (Filters(affected=True), "value"),
        "affected_by_risk": (Filters(affected=True), "risk"),
        "negative_sentiment": (Filters(sentiment="negative"), "value"),
    }


def time_lists(store: Store, scoring: Any, repeats: int) -> dict[str, Any]:
    first: dict[str, list[float]] = {}
    nxt: dict[str, list[float]] = {}
    totals: dict[str, int | None] = {}
    with store.connect() as conn:
        cases = list_cases(conn)
        for name, (filters, sort) in cases.items():
            first[name], nxt[name] = [], []
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                _, cursor, total = search_page(
                    conn, "", filters, principal=VIEWER, scoring=scoring, sort=sort
                )
                if i:  # the first round warms the caches
                    first[name].append((time.perf_counter() - t0) * 1000)
                if cursor is not None:
                    t0 = time.perf_counter()
                    search_page(
                        conn, "", filters, principal=VIEWER, scoring=scoring, sort=sort, cursor=cursor
                    )
                    if i:
                        nxt[name].append((time.perf_counter() - t0) * 1000)
                totals[name] = total
            _say(f"list {name}: first page p95 {_p(first[name], 95)} ms, next {_p(nxt[name], 95)} ms")
        affected_lines = conn.execute(
            select(func.count(func.distinct(subscriber_cells.c.subscriber_id))).where(
                subscriber_cells.c.cell_id.in_(
                    select(incident_cells.c.cell_id)
                    .join(incidents, incidents.c.id == incident_cells.c.incident_id)
                    .where(
                        incidents.c.state.in_(search.OPEN_INCIDENT_STATES),
                        incident_cells.c.degraded_share > 0,
                    )
                )
            )
        ).scalar_one()
    pooled = [v for vs in first.values() for v in vs]
    return {
        "list_first_page_p50_ms": _p(pooled, 50),
        "list_first_page_p95_ms": _p(pooled, 95),
        "list_case_first_page_p95_ms": {k: _p(v, 95) for k, v in first.items()},
        "list_case_next_page_p95_ms": {k: _p(v, 95) for k, v in nxt.items()},
        "list_case_total": totals,
        "affected_lines": int(affected_lines),
    }


# --- the 360 view ------------------------------------------------------------------------------


def time_story(store: Store, n: int, rng: random.Random, now: Any) -> dict[str, Any]:
    try:
        story = importlib.import_module("dashboard.subscribers.story")
    except ImportError:
        _say("dashboard.subscribers.story does not exist: story_p95_ms is null")
        return {
            "story_p50_ms": None,
            "story_p95_ms": None,
            "story_note": "dashboard.subscribers.story missing",
        }
    fn = getattr(story, "subscriber_story", None)
    if fn is None:
        _say("dashboard.subscribers.story has no subscriber_story: story_p95_ms is null")
        return {"story_p50_ms": None, "story_p95_ms": None, "story_note": "subscriber_story missing"}
    times: list[float] = []
    with store.connect() as conn:
        picks = [p[0] for p in sample(conn, n, rng)]
        fn(conn, picks[0], VIEWER, now=now)  # warm caches
        for sid in picks:
            t0 = time.perf_counter()
            assert fn(conn, sid, VIEWER, now=now) is not None, sid
            times.append((time.perf_counter() - t0) * 1000)
    out = {"story_requests": len(times), "story_p50_ms": _p(times, 50), "story_p95_ms": _p(times, 95)}
    _say(
        f"360 view: p50 {out['story_p50_ms']} ms, p95 {out['story_p95_ms']} ms over {len(times)} subscribers"
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument(
        "--alarms",
        type=int,
        default=200,
        help="active alarms, ranked into the open incidents the 'affected' filter finds (200: a busy day; "
        "bench/queue.py's 2000 degrade half the network)",
    )
    p.add_argument("--requests", type=int, default=100, help="random subscribers searched, per form")
    p.add_argument("--repeats", type=int, default=10, help="runs of each list's first page")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--analyze",
        choices=("auto", "yes", "no"),
        default="auto",
        help="ANALYZE after the build; auto: on PostgreSQL only (autovacuum would after a bulk load)",
    )
    args = p.parse_args()

    scoring = load_catalogue(Path(__file__).resolve().parents[1] / "kpi_definitions.yaml").scoring
    tmp = tempfile.mkdtemp(prefix="vantage-bench-subscribers-")
    store, drop = _data.open_store(args.backend, tmp, "subs")
    result: dict[str, Any] = {"backend": args.backend}
    rng = random.Random(args.seed)
    try:
        now = utcnow().replace(microsecond=0)
        t0 = time.perf_counter()
        ds = _data.build(
            store, subscribers=args.subscribers, alarms=args.alarms, now=now, seed=args.seed, say=_say
        )
        refresh_queue(store, scoring, now=now, currency="EUR")
        result["build_s"] = round(time.perf_counter() - t0, 1)
        result["subscribers"] = ds.world.n_subscribers
        result["accounts"] = ds.world.n_accounts
        with store.connect() as conn:
            result["open_incidents"] = conn.execute(
                select(func.count())
                .select_from(incidents)
                .where(incidents.c.state.in_(search.OPEN_INCIDENT_STATES))
            ).scalar_one()
        _say(f"built in {result['build_s']} s: {result['open_incidents']} open incidents")
        result["analyzed"] = args.analyze == "yes" or (
            args.analyze == "auto" and args.backend == "postgresql"
        )
        if result["analyzed"]:
            with store.begin() as conn:
                conn.execute(text("ANALYZE"))
        result.update(time_search(store, scoring, args.requests, rng))
        result.update(time_lists(store, scoring, args.repeats))
        result.update(time_story(store, max(20, args.requests), rng, now + timedelta(seconds=1)))
        result["goals_met"] = {
            "search_p95_le_200_ms": result["search_p95_ms"] <= 200,
            "story_p95_le_300_ms": None if result["story_p95_ms"] is None else result["story_p95_ms"] <= 300,
        }
    finally:
        drop()
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

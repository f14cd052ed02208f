"""Property-based fuzzing of the connectors (the TMF642 pull and listeners, the VES listener), from
the standards' own payloads mutated at random: any leaf replaced by a hostile value (NUL, an unpaired
surrogate, 10**30, NaN, 5,000 characters, year 9999, an object where text belongs), keys dropped and
added. Whatever arrives, a run never fails and never raises, a listener never answers 5xx, and every
item is stored or quarantined with a reason: nothing is lost. The number of examples is
VANTAGE_FUZZ_EXAMPLES (default 100) per test and backend; they are the same on every run unless
VANTAGE_FUZZ_RANDOM=1."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from connectors.base import ConnectorContext, PushRequest
from connectors.tmf import Tmf642Connector
from connectors.tmf._base import text_id
from connectors.ves import EVENT_ROUTE, VesConnector, VesOptions
from dashboard.ingest import Ingestor
from dashboard.ingest.runner import fit
from dashboard.store import Store
from dashboard.store.schema import alarms, connector_state, quarantine
from tests.loopback import LoopbackServer, Response
from tests.reference import OWN, payloads
from tests.test_tmf import ALARMS, make, offline_alarms

EXAMPLES = int(os.environ.get("VANTAGE_FUZZ_EXAMPLES", "100"))
#: The same examples on every run (a green main stays green); VANTAGE_FUZZ_RANDOM=1 explores anew.
DERANDOMIZE = os.environ.get("VANTAGE_FUZZ_RANDOM") != "1"
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

HOSTILE = st.one_of(
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "x" * 5000,
            "",
            " ",
            "9999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "0001-01-01",
            "not a time",
            10**30,
            -(10**30),
            float("nan"),
            float("inf"),
            True,
            None,
            [],
            {},
            {"id": {"nested": ["deep"]}},
        ]
    ),
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.text(max_size=5), max_size=3),
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value of ``doc`` (containers and leaves)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def mutate(doc: Any, data: st.DataObject) -> Any:
    """``doc`` with a few of its values replaced by hostile ones, some keys dropped, one added."""
    out = copy.deepcopy(doc)
    paths = _paths(out)
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent = out
        try:
            for step in path[:-1]:
                parent = parent[step]
            if isinstance(parent, dict) and data.draw(st.booleans(), label="drop"):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(HOSTILE, label="value")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced a container on this path
    if isinstance(out, dict) and data.draw(st.booleans(), label="extra"):
        out[data.draw(st.text(max_size=12), label="key")] = data.draw(HOSTILE, label="extra value")
    return out


def _alarm_seeds() -> list[dict[str, Any]]:
    return [payloads("tmf", OWN).json("alarm")]


@pytest.mark.slow
def test_tmf642_pull_stores_or_quarantines_every_mutated_alarm(
    store: Store, http_server: LoopbackServer
) -> None:
    seeds = _alarm_seeds()
    served: list[Any] = []
    http_server.route(
        "GET", ALARMS, lambda req: Response(200, served if req.query.get("offset") == ["0"] else [])
    )
    connector = make(Tmf642Connector, http_server, page_size=100)

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        items = [mutate(data.draw(st.sampled_from(seeds)), data) for _ in range(data.draw(st.integers(1, 3)))]
        for i, item in enumerate(items):  # distinct ids unless the mutation took the id
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                item["id"] = f"{item['id']}-{data.draw(st.integers(0, 10**9))}-{i}"
        served[:] = items
        with store.begin() as conn:
            conn.execute(delete(connector_state))
        summary = Ingestor(store).run(connector)
        assert summary.status in ("success", "partial"), summary.error
        with store.connect() as conn:
            stored = set(conn.execute(select(alarms.c.id)).scalars())
            held = {
                r.record_id: r.reason
                for r in conn.execute(select(quarantine.c.record_id, quarantine.c.reason))
            }
        assert all(held.values())
        for item in items:
            ident = text_id(item.get("id")) if isinstance(item, dict) else None
            if ident is not None:  # quarantined under its id as any store keeps it (escaped, cut)
                assert ident in stored or fit(ident, 256) in held, (
                    f"lost: {json.dumps(item, default=str)[:300]}"
                )
        assert summary.quarantined + summary.records_in >= 1

    run()


@pytest.mark.slow
def test_ves_listener_answers_every_mutated_event_without_a_server_error(store: Store) -> None:
    found = payloads("ves", OWN)
    seeds = [found.json("fault"), found.json("measurement")]
    connector = VesConnector(VesOptions.model_validate({}), ConnectorContext("ves"))
    (route,) = [r for r in connector.push_routes() if r.path == EVENT_ROUTE]
    ingestor = Ingestor(store)

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        event = mutate(data.draw(st.sampled_from(seeds)), data)
        body = json.dumps(event, default=str).encode("utf-8", errors="surrogatepass")
        resp = route.handler(PushRequest(path=route.path, body=body, headers={}, query={}))
        assert resp.status < 500, resp.body
        counts = ingestor.ingest("ves", resp.batches)
        if resp.status >= 400:
            assert counts.quarantined >= 1  # refused events are kept with their reason

    run()


@pytest.mark.slow
def test_tmf642_listener_answers_every_mutated_notification_without_a_server_error(store: Store) -> None:
    seeds = _alarm_seeds()
    connector = offline_alarms()
    routes = connector.push_routes()
    ingestor = Ingestor(store)

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(routes), label="listener")
        kind = route.path.rsplit("/", 1)[-1]
        notification = {
            "eventId": "e-1",
            "eventType": kind,
            "event": {"alarm": data.draw(st.sampled_from(seeds))},
        }
        body = json.dumps(mutate(notification, data), default=str).encode("utf-8", errors="surrogatepass")
        resp = route.handler(PushRequest(path=route.path, body=body, headers={}, query={}))
        assert resp.status < 500, resp.body
        counts = ingestor.ingest(connector.name, resp.batches)
        if resp.status >= 400:
            assert counts.quarantined >= 1  # refused notifications are kept with their reason

    run()

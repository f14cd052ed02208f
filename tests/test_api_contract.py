"""The API's OpenAPI description is true, and the API holds under generated requests.

The description at /api/v1/openapi.json names every route the server has and no other; then
schemathesis sends generated requests (valid and not) to every operation of it, on a store with a
ranked queue, and checks that none answers 5xx and every answer matches its described status and
shape. The number of examples per operation is VANTAGE_FUZZ_EXAMPLES (default 100).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from dashboard.config import Settings
from dashboard.incidents import refresh_queue
from dashboard.store import Store
from tests.apps import bearer, client, new_app
from tests.incident_net import T, alarm, build_network, catalogue, ingest, two_incidents

EXAMPLES = int(os.environ.get("VANTAGE_FUZZ_EXAMPLES", "100"))
#: No 5xx, only described status codes, content types and shapes. Not checked: that every request
#: outside the description is refused (the API is lenient on purpose: values are trimmed and
#: compared in lower case, an empty parameter is an absent one) and that every request inside it
#: is accepted (some parameters depend on others: level=cell needs an entity).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _build_app() -> tuple[object, Store]:
    """An app on a store with a ranked queue (two incidents on the hand-made network and a third)."""
    store = Store(f"sqlite:///{Path(tempfile.mkdtemp(prefix='vt-api-')) / 'v.db'}")
    store.upgrade()
    build_network(store)
    two_incidents(store)
    ingest(store, "alarms", [alarm("C1", "ran-2", T)])
    refresh_queue(store, catalogue().scoring, now=T, currency="EUR")
    # Generated requests search far faster than a person: the per-principal limit is lifted here.
    settings = Settings(database_url=store.url, security={"search_rate_limit": "100000/minute"})
    return new_app(store, settings, clock=lambda: T).server, store


# Built once when the module is collected: schemathesis generates its tests from the live description.
APP, STORE = _build_app()
AUTH = {"Authorization": bearer(STORE, "admin")}
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module")
def api_app() -> Iterator[object]:
    yield APP
    STORE.dispose()
    shutil.rmtree(Path(STORE.url.removeprefix("sqlite:///")).parent, ignore_errors=True)


def test_every_route_is_described_and_every_description_is_a_route(api_app: object) -> None:
    server = api_app
    served = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in server.url_map.iter_rules()  # type: ignore[attr-defined]
        if rule.rule.startswith("/api/v1/") or rule.rule == "/healthz"
    } - {"/api/v1/openapi.json"}
    doc = client(server, STORE).get("/api/v1/openapi.json").get_json()  # type: ignore[arg-type]
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == served


@pytest.mark.slow
@pytest.mark.serial  # each operation's case has the same node id: pytest-xdist would run one of them
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("VANTAGE_FUZZ_RANDOM") != "1",  # the same requests on every run
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_never_fail_the_server(case: schemathesis.Case, api_app: object) -> None:
    case.call_and_validate(checks=CHECKS, headers=AUTH)

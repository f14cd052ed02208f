"""Every Dash callback under malformed requests: wrong types, huge values, missing fields. None of
them may answer 500: the request's mistakes are 400s, a callback that copes answers 200 or 204."""

from __future__ import annotations

import base64
import json
from typing import Any

from dashboard.store import Store
from tests.apps import api_client, client, new_app

ROUTE = "/_dash-update-component"
#: Values a hostile client puts where a callback expects its own.
HOSTILE = ["abc", 1e30, 10**400, -1, {"x": 1}, ["a", {"b": None}], None, "%" * 100_000, "\x00", True]


def _endpoint(text: str) -> dict[str, Any]:
    ident, _, prop = text.rpartition(".")
    return {"id": json.loads(ident) if ident.startswith("{") else ident, "property": prop}


def _outputs(spec: str) -> Any:
    if spec.startswith(".."):
        return [_endpoint(p) for p in spec.strip(".").split("...")]
    return _endpoint(spec)


def _body(name: str, cb: dict[str, Any], value: Any) -> dict[str, Any]:
    inputs = [dict(i, value=value) for i in cb["inputs"]]
    state = [dict(s, value=value) for s in cb.get("state", [])]
    changed = [
        f"{json.dumps(i['id']) if isinstance(i['id'], dict) else i['id']}.{i['property']}"
        for i in cb["inputs"]
    ]
    return {
        "output": name,
        "outputs": _outputs(name),
        "inputs": inputs,
        "state": state,
        "changedPropIds": changed[:1],
    }


def test_no_callback_answers_500_to_a_malformed_request(sqlite_store: Store) -> None:
    app = new_app(sqlite_store)
    http = client(app, sqlite_store, "admin")
    http.get("/")  # the pages register their layouts on the first request
    callbacks = {k: v for k, v in app.callback_map.items() if v.get("inputs")}
    assert len(callbacks) > 10
    tried, failures = 0, []
    for name, cb in callbacks.items():
        bodies: list[Any] = [_body(name, cb, v) for v in HOSTILE]
        bodies += [{}, {"output": name}, {"output": name, "outputs": _outputs(name), "inputs": "x"}, [1, 2]]
        for body in bodies:
            resp = http.post(ROUTE, data=json.dumps(body, default=str), content_type="application/json")
            tried += 1
            if resp.status_code >= 500:
                failures.append(
                    (name[:80], str(body)[:120], resp.status_code, resp.get_data(as_text=True)[:200])
                )
    assert not failures, (
        f"{len(failures)} of {tried} malformed callback requests answered 5xx: {failures[:5]}"
    )


def test_a_cursor_past_any_number_is_a_400(sqlite_store: Store) -> None:
    """A forged cursor with a key of 10**400 (float() overflows) or NaN is refused as a bad cursor."""
    client = api_client(sqlite_store)
    for key in ("1" + "0" * 400, "NaN"):
        raw = f'["value",{key},"S1","src",0]'.encode()
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        resp = client.get(f"/api/v1/subscribers?cursor={token}")
        assert resp.status_code == 400, resp.get_data(as_text=True)
        assert "cursor" in resp.get_json()["error"]

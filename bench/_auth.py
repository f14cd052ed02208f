"""Credentials for the benches: users and API tokens in a bench's store, a test client that sends
one, a session logged in through the login form, and a token for a ``vantage run`` started apart.

In-process benches (Flask test clients of ``create_app``) make a user of the role they need and
send its token (:func:`authorize`) or log in with its password (:func:`log_in`); those that call
page functions directly do it in a request context with the principal the guard would have set
(:func:`request_as`). Benches that start
``vantage run`` as a subprocess give it the first admin's password (:func:`with_admin_password`) or
read the one it prints (:func:`printed_password`), then make a token with the ``vantage tokens add``
command on the same store once the server answers (:func:`cli_token`) and send it on every request
(:func:`bearer_request`).
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flask

from connectors.base import utcnow
from dashboard.auth import tokens, users
from dashboard.context import PRINCIPAL_KEY
from dashboard.privacy import Principal, Role
from dashboard.store import Store

ACTOR = "bench"
#: Where the Flask test client says its requests come from (its Host is ``localhost``): a request
#: that changes state with a session cookie must name this very origin.
TEST_ORIGIN = "http://localhost"
#: ``vantage run`` creates the first user, admin, with this password when it is set.
ADMIN_PASSWORD_ENV = "VANTAGE_ADMIN_PASSWORD"
ADMIN = "admin"

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_SHOWN_TOKEN = re.compile(r"^token \(shown once\): (\S+)$", re.MULTILINE)
_PRINTED_PASSWORD = re.compile(r"Log in as\s+admin\s+with the password\s+(\S+)")

#: Passwords of the users made here, by (store URL, schema, name): they are random per run.
_PASSWORDS: dict[tuple[str, str | None, str], str] = {}


# --- in-process: a store and Flask's test client ---------------------------------------------------


def user(store: Store, role: str, name: str | None = None) -> tuple[str, str]:
    """A user with ``role`` in ``store`` (made once, named ``bench-<role>`` unless named): its name
    and password."""
    name = name or f"bench-{role}"
    key = (store.url, store.schema, name)
    if key not in _PASSWORDS:
        password = users.generate_password()
        users.add(store, name, role, password, now=utcnow(), actor=ACTOR)
        _PASSWORDS[key] = password
    return name, _PASSWORDS[key]


def token(store: Store, role: str = "viewer", name: str | None = None) -> str:
    """The text of a new API token (valid a day) of a user with ``role``."""
    owner, _ = user(store, role, name)
    _, text = tokens.create(store, ACTOR, owner=owner, role=role, days=1, now=utcnow(), actor=ACTOR)
    return text


def authorize(client: Any, store: Store, role: str = "viewer") -> str:
    """Make every request of a Flask test client carry a bearer token of a user with ``role``;
    returns the token's text."""
    text = token(store, role)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {text}"
    return text


@contextmanager
def request_as(server: flask.Flask, role: Role, path: str = "/") -> Iterator[None]:
    """A request context of ``server`` for ``path`` whose principal is a user with ``role``, as the
    guard leaves it after checking a token: for timing page functions server-side."""
    with server.test_request_context(path):
        setattr(flask.g, PRINCIPAL_KEY, Principal(user=f"bench-{role}", role=role, via="token"))
        yield


def log_in(client: Any, name: str, password: str, origin: str = TEST_ORIGIN) -> None:
    """Log a Flask test client in through the login form: it keeps the session cookie. Requests
    that change state (callbacks) must then send ``Origin: <origin>``."""
    form = client.get("/login")
    found = _CSRF.search(form.get_data(as_text=True))
    assert form.status_code == 200 and found is not None, (form.status_code, form.get_data()[:200])
    answer = client.post(
        "/login",
        data={"username": name, "password": password, "csrf": found.group(1), "next": "/"},
        headers={"Origin": origin},
    )
    assert answer.status_code == 303, (answer.status_code, answer.get_data(as_text=True)[:300])


# --- a `vantage run` started as a subprocess -------------------------------------------------------


def with_admin_password(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """``env`` for ``vantage run`` with the first admin's password set (generated here); the
    environment and the password."""
    password = users.generate_password()
    return {**env, ADMIN_PASSWORD_ENV: password}, password


def printed_password(log: str) -> str | None:
    """The password ``vantage run`` printed for the first user, admin, on its first start (None if
    it printed none)."""
    found = _PRINTED_PASSWORD.search(log)
    return found.group(1) if found else None


def cli_token(
    vantage: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    role: str = "admin",
    owner: str = ADMIN,
    timeout_s: float = 120.0,
) -> str:
    """A token of ``owner`` made by ``vantage tokens add`` on a running server's store.

    ``vantage`` is the command with the options the server was started with (``--config``,
    ``--database-url``). Tried again while it fails (the store busy, the first user not made yet)
    until ``timeout_s``; SystemExit with the command's last words after that.
    """
    command = [*vantage, "tokens", "add", ACTOR, "--user", owner, "--role", role, "--days", "1"]
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, check=False)
        found = _SHOWN_TOKEN.search(done.stdout)
        if done.returncode == 0 and found:
            return found.group(1)
        if time.monotonic() > deadline:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise SystemExit(f"no token from `{' '.join(command)}`: {' / '.join(said)}")
        time.sleep(2.0)


def bearer_request(url: str, text: str) -> urllib.request.Request:
    """A GET of ``url`` carrying the bearer token ``text``, for ``urllib.request.urlopen``."""
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {text}"})

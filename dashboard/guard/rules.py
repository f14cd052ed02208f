"""Every surface says who may use it: the declarations, and the lookup the guard enforces.

A surface is a Flask route (a page, an API route, an export, a push listener, Dash's own routes)
or a Dash callback. Each declares one :data:`Access`:

- ``public``: anyone (static files, the login page, the anonymous part of /healthz);
- ``read``, ``act``, ``unmask``, ``admin``: a principal whose role has that permission
  (dashboard/privacy.py, ``ROLE_PERMISSIONS``);
- ``push``: a source pushing events, authenticated by the connector's listener secret;
- ``client``: a clientside callback, which runs in the browser and is never sent to the server.

Routes declare theirs with :func:`access` on the view function; callbacks are registered through
:func:`callback`, which files the rule under the key Dash gives the callback; pages declare
``access=`` in ``dash.register_page``. The guard refuses any surface that declared nothing, and a
test walks the whole route and callback map so none can be added without a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast, get_args

import dash
import flask

Access = Literal["public", "read", "act", "unmask", "admin", "push", "client"]
ACCESS_LEVELS: tuple[Access, ...] = get_args(Access)

F = TypeVar("F", bound=Callable[..., Any])

#: Flask config key: callback key (Dash's callback_map key, what a request names as ``output``) -> Access.
CALLBACK_RULES_KEY = "VANTAGE_CALLBACK_RULES"
ATTRIBUTE = "vantage_access"

#: Dash's and Flask's own routes, by endpoint.
FRAMEWORK_RULES: dict[str, Access] = {
    "static": "public",
    "_dash_assets.static": "public",
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>": "public",
    "/_favicon.ico": "public",
    # The app's layout and callback graph: ids and structure, no data; still only for users.
    "/_dash-layout": "read",
    "/_dash-dependencies": "read",
    "/_reload-hash": "read",
    # Every page is served by Dash's catch-all; what each shows is the page's own rule.
    "/": "read",
    "/<path:path>": "read",
    # Each callback request is checked against the rule of the callback it names.
    "/_dash-update-component": "read",
}
CALLBACK_ENDPOINT = "/_dash-update-component"


def access(level: Access) -> Callable[[F], F]:
    """Declare the rule of a Flask view (an API route, an export, a login or push route)."""
    if level not in ACCESS_LEVELS:
        raise ValueError(f"unknown access level {level!r}")

    def mark(view: F) -> F:
        setattr(view, ATTRIBUTE, level)
        return view

    return mark


def view_rule(server: flask.Flask, endpoint: str) -> Access | None:
    """The rule of a route's endpoint, or None when it declared none (the guard then refuses it)."""
    view = server.view_functions.get(endpoint)
    declared = getattr(view, ATTRIBUTE, None) if view is not None else None
    if declared is None:
        # The guard may have wrapped the view; the wrapper keeps the original in __wrapped__.
        inner = getattr(view, "__wrapped__", None)
        declared = getattr(inner, ATTRIBUTE, None)
    if declared is not None:
        return cast(Access, declared)
    return FRAMEWORK_RULES.get(endpoint)


def callback_rules(server: flask.Flask) -> dict[str, Access]:
    rules: dict[str, Access] = server.config.setdefault(CALLBACK_RULES_KEY, {})
    return rules


def callback(app: dash.Dash, level: Access, *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``app.callback(*args, **kwargs)`` that files ``level`` as the rule of the callback it registers."""
    if level not in ACCESS_LEVELS or level in ("push", "client"):
        raise ValueError(f"a server callback may not have the rule {level!r}")
    # Dash files the callback when it is declared, before the function is given.
    before = set(app.callback_map)
    register = app.callback(*args, **kwargs)
    _file(app, before, level)

    def wrap(func: F) -> F:
        return cast(F, register(func))

    return wrap


def clientside_callback(app: dash.Dash, code: str, *args: Any, **kwargs: Any) -> None:
    """``app.clientside_callback`` with its rule, ``client``: it never reaches the server."""
    before = set(app.callback_map)
    app.clientside_callback(code, *args, **kwargs)  # type: ignore[no-untyped-call]
    _file(app, before, "client")


def declare_callbacks(app: dash.Dash, level: Access, register: Callable[[], Any]) -> None:
    """File ``level`` for every callback ``register()`` adds (Dash's own, such as the pages router)."""
    before = set(app.callback_map)
    register()
    _file(app, before, level)


def _file(app: dash.Dash, before: set[str], level: Access) -> None:
    added = set(app.callback_map) - before
    if not added:
        raise RuntimeError("no callback was registered, so none has a rule")
    rules = callback_rules(app.server)
    for key in added:
        rules[key] = level


def callback_rule(server: flask.Flask, output: str) -> Access | None:
    """The rule of the callback a request names by its ``output``, or None if it has none."""
    return callback_rules(server).get(output)

"""The app factory: ``create_app(ctx)`` builds the Dash app, its shell, its pages, the API and /healthz."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, State, dcc, html
from dash.exceptions import DashException
from sqlalchemy.exc import (
    DataError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from werkzeug.exceptions import HTTPException

from dashboard import api, cache, guard, ids, queries, readiness
from dashboard.api.actions import offers as offer_links
from dashboard.config import Settings
from dashboard.context import REFRESH_MS, Context, current_principal, install
from dashboard.pages import PAGE_MODULES, fmt_count, fmt_money, fmt_time
from dashboard.privacy import Permission, Principal
from dashboard.push import mount_push_routes
from dashboard.store.db import Store, StoreError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
PAGES_DIR = PACKAGE_DIR / "pages"
ASSETS_DIR = PACKAGE_DIR.parent / "assets"

#: The navigation: label, path, and the permission its page needs (the page declares the same).
NAV: list[tuple[str, str, Permission]] = [
    ("Wall", "/wall", "read"),
    ("Incidents", "/incidents", "read"),
    ("Linkage", "/linkage", "read"),
    ("Subscribers", "/subscribers", "read"),
    ("Actions", "/actions", "read"),
    ("Sources", "/sources", "read"),
    ("Audit", "/audit", "admin"),
    ("Access", "/access", "admin"),
]

#: The strip's figures in display order: key, label.
STRIP_METRICS = [
    ("active_alarms", "Active alarms"),
    ("open_incidents", "Open incidents"),
    ("tickets_today", "Tickets today"),
    ("active_subscribers", "Subscribers"),
    ("revenue_month", "Revenue this month"),
]


def create_app(source: Context | Settings, *, refresh_ms: int = REFRESH_MS) -> dash.Dash:
    """Build the Dash app on a Context (or on settings, for which one is built); nothing here touches
    the database.

    ``refresh_ms`` is how often the overview strip and the live parts of pages re-read the store.
    """
    ctx = source if isinstance(source, Context) else Context.build(source)
    app = dash.Dash(
        "dashboard",  # the package name, so Dash imports pages as dashboard.pages.<name>
        use_pages=True,
        pages_folder=str(PAGES_DIR),
        assets_folder=str(ASSETS_DIR),
        title="Vantage",
        update_title="",
        # Dash would otherwise build a validation layout from every page's layout, for no one in
        # particular, and send it inside every page: the pages' rules could not apply to it.
        suppress_callback_exceptions=True,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    install(app.server, ctx, refresh_ms=refresh_ms)
    _install_cache(app.server, ctx)
    app.layout = functools.partial(shell_layout, refresh_ms)
    _register_shell_callbacks(app, ctx)
    for name in PAGE_MODULES:
        importlib.import_module(f"dashboard.pages.{name}").register_callbacks(app)
    guard_pages()

    @app.server.before_request
    def _home() -> Any:
        # "/" is the wall: a TV pointed at the bare address shows it (query string kept).
        if flask.request.path == "/" and flask.request.method in ("GET", "HEAD"):
            query = flask.request.query_string.decode()
            return flask.redirect("/wall" + (f"?{query}" if query else ""), code=302)
        return None

    guard_callbacks(app.server)
    api.register(app.server)
    # Listener endpoints of connectors whose sources push (TMF hubs, VES): /push/<name>/...
    # (what they write bumps the shared cache's versions, so every screen sees it at its next refresh)
    mount_push_routes(
        app.server,
        ctx.settings,
        cache.BumpingIngestor(ctx, clock=ctx.clock, limits=ctx.settings.ingest),
    )
    # The signed links customers follow from an offer or an apology: /offers/<key>/<verb>
    app.server.register_blueprint(offer_links)
    # Last, so it sees every route: each request is checked against its surface's rule.
    guard.install(app, ctx)
    return app


def _install_cache(server: flask.Flask, ctx: Context) -> None:
    """Count this app's store queries (role ``web``) and add them to the shared counts after each
    request, when the settings name a Redis (a benchmark reads them there)."""

    @server.before_request
    def _count_queries() -> None:
        # At the first request, not here: building the app must not create the store's engine.
        cache.count_queries(ctx.store, "web")

    if not ctx.settings.cache.url:
        return

    @server.teardown_request
    def _flush_counts(_err: BaseException | None) -> None:
        cache.flush_counts(ctx)


# --- Pages under their rules -----------------------------------------------------------------


def guard_pages() -> None:
    """Each page shows its layout only to roles its declared ``access`` allows (a page without one
    is an error at start-up); others see a short refusal in its place."""
    for page in dash.page_registry.values():
        level = page.get("access")
        if level not in guard.ACCESS_LEVELS or level in ("public", "push", "client"):
            raise RuntimeError(f"page {page['module']} declares no valid access rule (access=...)")
        if "vantage_layout" not in page:
            page["vantage_layout"] = page["layout"]
            page["layout"] = functools.partial(_guarded_layout, page)


def _guarded_layout(page: dict[str, Any], **kwargs: Any) -> Any:
    principal = current_principal()
    if not principal.may(page["access"]):
        return html.Div(
            [html.H2("Not for your role"), html.P(f"Your role ({principal.role}) may not see this page.")],
            className="vt-forbidden",
        )
    layout = page["vantage_layout"]
    return layout(**kwargs) if callable(layout) else layout


# --- Callbacks under malformed requests ------------------------------------------------------

#: What a callback raises when its request was malformed (a string where a number belongs, a field
#: missing, a dict for a string, a value past what the store takes): the request's fault, a 400.
MALFORMED_CALLBACK = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    DataError,
    DashException,  # outputs or inputs that do not match the callback they name
)


def guard_callbacks(server: flask.Flask) -> None:
    """Dash's callback route answers JSON 400 to a request its callback could not use, 503 when the
    store cannot answer, and never a bare 500 for the sender's mistakes (both are logged)."""
    for rule in server.url_map.iter_rules():
        if rule.rule.endswith("_dash-update-component"):
            server.view_functions[rule.endpoint] = _guarded(server.view_functions[rule.endpoint])


def _guarded(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except HTTPException:
            raise
        except MALFORMED_CALLBACK as err:
            log.warning("callback request could not be used: %s: %s", type(err).__name__, err, exc_info=True)
            return flask.jsonify({"error": f"malformed callback request ({type(err).__name__})"}), 400
        except OperationalError as err:
            if "too complex" in str(err) or "too big" in str(err):  # a pattern SQLite will not take
                return flask.jsonify({"error": "a value of the request is too large to search for"}), 400
            return _store_down(err)
        except StatementError as err:
            if (
                isinstance(err, InterfaceError)
                or isinstance(err.orig, MALFORMED_CALLBACK)
                or "binding parameter" in str(err)
            ):
                # A value the driver cannot bind (a dict, an integer past 64 bits): the request's fault.
                log.warning("callback request could not be used: %s", err.orig or err)
                return flask.jsonify({"error": "malformed callback request (a value cannot be used)"}), 400
            return _store_down(err)
        except (SQLAlchemyError, StoreError) as err:
            return _store_down(err)

    return guarded


def _store_down(err: Exception) -> tuple[flask.Response, int]:
    log.warning("callback: the store could not answer: %s", type(err).__name__)
    response = flask.jsonify({"error": "the store could not be read; try again"})
    response.headers["Retry-After"] = "5"
    return response, 503


# --- Shell ---------------------------------------------------------------------------------


def navbar(principal: Principal | None = None) -> dbc.Navbar:
    """The navigation bar: the pages the principal may see, who is logged in, and log-out."""
    visible = [
        (label, href, level) for label, href, level in NAV if principal is None or principal.may(level)
    ]
    links = [dbc.NavItem(dbc.NavLink(label, href=href, active="exact")) for label, href, _ in visible]
    who: list[Any] = []
    if principal is not None:
        who.append(html.Span(f"{principal.user} · {principal.role}", className="vt-who", id=ids.SHELL_WHO))
        if principal.via in ("session",):
            who.append(
                html.Form(
                    [
                        html.Button("Log out", type="submit", className="btn btn-sm btn-outline-light",
                                    id=ids.SHELL_LOGOUT),
                    ],
                    action="/logout",
                    method="post",
                    className="vt-logout",
                )
            )  # fmt: skip
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("Vantage", href="/wall", className="vt-brand"),
                dbc.Nav(links, navbar=True, className="vt-nav"),
                html.Div(who, className="vt-user ms-auto"),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="vt-navbar",
    )


def shell_layout(refresh_ms: int = REFRESH_MS) -> html.Div:
    """Navbar, the live overview strip and the page; the strip fills in on the first tick. Built per
    request (the navbar names who is logged in), or with no one outside a request."""
    principal = guard.current_principal() if flask.has_request_context() else None
    return html.Div(
        [
            dcc.Interval(id=ids.SHELL_INTERVAL, interval=refresh_ms),
            dcc.Store(id=ids.SHELL_STRIP_LAST, storage_type="memory"),
            navbar(principal),
            html.Div(
                strip_children(None, stale=False, last_ok=None),
                id=ids.SHELL_STRIP,
                className="vt-strip vt-strip--loading",
            ),
            dcc.Interval(id=ids.SHELL_PREPARING_INTERVAL, interval=PREPARING_REFRESH_MS),
            html.Div(id=ids.SHELL_PREPARING, className="vt-preparing", hidden=True),
            dbc.Container(dash.page_container, fluid=True, className="vt-page"),
        ]
    )


PREPARING_REFRESH_MS = 2000


def preparing_banner(store: Store, *, now: datetime) -> tuple[list[Any], bool, bool]:
    """The banner's children, whether it is hidden, and whether its timer stops (store ready)."""
    try:
        with store.connect() as conn:
            p = readiness.progress(conn, now)
    except Exception as err:  # the strip says when the store is unreachable; the banner waits
        log.warning("preparation banner: store read failed: %s", type(err).__name__)
        return [], True, False
    if p is None or p["ready"]:
        return [], True, True
    children = [
        html.Div(readiness.waiting_text(p), className="vt-preparing-text"),
        dbc.Progress(value=p["percent"], className="vt-preparing-bar", striped=True, animated=True),
        html.Div("Each page fills in as soon as the part it shows is ready.", className="vt-preparing-note"),
    ]
    return children, False, False


def _strip_value(key: str, ov: queries.Overview) -> str:
    value = getattr(ov, key)
    return fmt_money(value, ov.currency) if key == "revenue_month" else fmt_count(value)


def strip_children(overview: queries.Overview | None, *, stale: bool, last_ok: datetime | None) -> list[Any]:
    """The strip's content: five figures and when they were read.

    ``stale`` shows ``overview`` (the last good read, possibly None) as out of date: the figures
    stay visible, greyed, under a label with the time of that read, never as current.
    """
    items: list[Any] = []
    for key, label in STRIP_METRICS:
        value = "—" if overview is None else _strip_value(key, overview)
        items.append(
            html.Div(
                [html.Span(value, className="vt-strip-value"), html.Span(label, className="vt-strip-label")],
                id={"type": ids.SHELL_METRIC, "metric": key},
                className="vt-strip-item",
            )
        )
    if stale:
        when = f"last updated {fmt_time(last_ok, seconds=True)}" if last_ok else "never updated"
        status = html.Span(
            f"STALE: store unreachable, {when}", className="vt-strip-asof vt-strip-asof--stale"
        )
    elif overview is None:
        status = html.Span("loading…", className="vt-strip-asof")
    else:
        status = html.Span(f"as of {fmt_time(overview.as_of, seconds=True)}", className="vt-strip-asof")
    return [*items, status]


def refresh_strip(
    store: Store,
    currency: str,
    last: dict[str, Any] | None,
    *,
    now: datetime,
    shared: cache.Cache | None = None,
) -> tuple[list[Any], str, dict[str, Any] | None]:
    """Read the overview; on failure keep the last good read and mark the strip stale.

    With a ``shared`` cache the figures are read once per change of what they count (alarms,
    incidents, tickets, lines, bills: ``ingest`` and ``queue``) and per day, for every screen; they
    are as of now, since nothing they count has changed since they were read.
    Returns the strip's children, its class and the data for the last-good store.
    """

    def on_store() -> dict[str, Any]:
        with store.connect() as conn:
            return queries.overview(conn, now=now, currency=currency).to_json()

    try:
        if shared is None:
            ov = queries.Overview.from_json(on_store())
        else:
            day = now.date().isoformat()  # tickets today and revenue this month move with the date
            read = shared.read("overview", ("ingest", "queue"), on_store, parts=(currency, day))
            ov = queries.Overview.from_json(read | {"as_of": now.isoformat()})
    except Exception as err:  # the strip must survive a store outage and say so
        log.warning("overview strip: store read failed: %s", type(err).__name__)
        previous = queries.Overview.from_json(last) if last else None
        children = strip_children(previous, stale=True, last_ok=previous.as_of if previous else None)
        return children, "vt-strip vt-strip--stale", last
    return strip_children(ov, stale=False, last_ok=ov.as_of), "vt-strip vt-strip--fresh", ov.to_json()


def _register_shell_callbacks(app: dash.Dash, ctx: Context) -> None:
    @guard.callback(
        app,
        "read",
        Output(ids.SHELL_STRIP, "children"),
        Output(ids.SHELL_STRIP, "className"),
        Output(ids.SHELL_STRIP_LAST, "data"),
        Input(ids.SHELL_INTERVAL, "n_intervals"),
        State(ids.SHELL_STRIP_LAST, "data"),
    )
    def _refresh(_n: int | None, last: dict[str, Any] | None) -> tuple[list[Any], str, dict[str, Any] | None]:
        return refresh_strip(ctx.store, ctx.currency, last, now=ctx.now(), shared=cache.of(ctx))

    @guard.callback(
        app,
        "read",
        Output(ids.SHELL_PREPARING, "children"),
        Output(ids.SHELL_PREPARING, "hidden"),
        Output(ids.SHELL_PREPARING_INTERVAL, "disabled"),
        Input(ids.SHELL_PREPARING_INTERVAL, "n_intervals"),
    )
    def _preparing(_n: int | None) -> tuple[list[Any], bool, bool]:
        return preparing_banner(ctx.store, now=ctx.now())

    # The wall shows everything the strip does and refreshes itself: the strip rests there.
    guard.clientside_callback(
        app,
        "function(path) { return !!path && (path === '/' || path.indexOf('/wall') === 0); }",
        Output(ids.SHELL_INTERVAL, "disabled"),
        Input("_pages_location", "pathname"),
    )

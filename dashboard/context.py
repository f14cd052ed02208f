"""The one seam between the running app and everything else: a typed Context of store, settings,
catalogue and clock.

The app factory, the scheduler and the CLI each build one :class:`Context` and pass it down
explicitly: jobs and engines take a Context (or the values it holds) and never reach into Flask, a
page or the CLI for them. The web layer finds the serving app's Context with :func:`current_context`
and the ``current_*`` helpers below, which are for the web layer only. There is one clock:
:meth:`Context.now` (tests inject a fixed one); :func:`current_time` reads the serving app's, or the
system clock outside a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import flask

from connectors.base import utcnow
from dashboard.config import Settings
from dashboard.kpis import Catalogue, KpiDefinition, Scoring, load_catalogue
from dashboard.privacy import PermissionDenied, Principal
from dashboard.store.db import STATEMENT_TIMEOUT_S, Store

#: A clock: returns naive UTC now, as the store keeps times.
Clock = Callable[[], datetime]
#: Jobs an engine asks the scheduler to run: name -> (interval in seconds, what to run).
Jobs = dict[str, tuple[float, Callable[[], object]]]

#: Flask config keys of the serving app.
CONTEXT_KEY = "VANTAGE_CONTEXT"
REFRESH_KEY = "VANTAGE_REFRESH_MS"
#: ``flask.g`` key of the request's principal, set by the guard (dashboard/guard) once it has
#: checked the request's credentials against the surface's rule.
PRINCIPAL_KEY = "vantage_principal"
#: How often the strip and the live parts of pages re-read the store, by default.
REFRESH_MS = 15_000


@dataclass(frozen=True)
class Context:
    """What a running Vantage works with: built once per process, passed down explicitly."""

    settings: Settings
    store: Store
    catalogue: Catalogue
    clock: Clock = field(default=utcnow)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        catalogue: Catalogue | None = None,
        clock: Clock | None = None,
    ) -> Context:
        """A Context for ``settings``: the store on its URL and its KPI catalogue, unless given.

        Loading the catalogue validates it, so a broken one stops start-up with its exact path.
        """
        return cls(
            settings=settings,
            store=store if store is not None else Store(settings.database_url),
            catalogue=catalogue if catalogue is not None else load_catalogue(settings.kpi_definitions_path()),
            clock=clock or utcnow,
        )

    def now(self) -> datetime:
        """Naive UTC now, by this context's clock."""
        return self.clock()

    @property
    def scoring(self) -> Scoring:
        return self.catalogue.scoring

    @property
    def currency(self) -> str:
        return self.settings.currency

    def kpi(self, name: str) -> KpiDefinition | None:
        """The catalogue's definition of a KPI, or None for one it lacks."""
        return self.catalogue.find(name)


# --- the serving app's context (web layer only) ------------------------------------------------


def install(server: flask.Flask, ctx: Context, *, refresh_ms: int = REFRESH_MS) -> None:
    """Make ``ctx`` the context of the app ``server`` serves."""
    server.config[CONTEXT_KEY] = ctx
    server.config[REFRESH_KEY] = refresh_ms
    limit = ctx.settings.web.statement_timeout_s

    @server.before_request
    def _limit_statements() -> None:
        # Every statement this request runs is capped (web.statement_timeout_s); jobs are not.
        flask.g.statement_limit = STATEMENT_TIMEOUT_S.set(limit)

    @server.teardown_request
    def _unlimit_statements(_err: BaseException | None) -> None:
        token = flask.g.pop("statement_limit", None)
        if token is not None:
            STATEMENT_TIMEOUT_S.reset(token)


def current_context() -> Context:
    """The context of the app serving this request."""
    ctx: Context = flask.current_app.config[CONTEXT_KEY]
    return ctx


def current_store() -> Store:
    return current_context().store


def current_settings() -> Settings:
    return current_context().settings


def current_catalogue() -> Catalogue:
    return current_context().catalogue


def current_scoring() -> Scoring:
    """The catalogue's scoring rules (weights, multipliers, impact KPIs) of the serving app."""
    return current_context().scoring


def current_kpi(name: str) -> KpiDefinition | None:
    """The serving app's definition of a KPI (label, unit, thresholds), or None for one it lacks."""
    return current_context().kpi(name)


def current_refresh_ms() -> int:
    """The refresh period of the app serving this request, in milliseconds."""
    return int(flask.current_app.config.get(REFRESH_KEY, REFRESH_MS))


def current_principal() -> Principal:
    """Who is asking, as the guard established it; PermissionDenied outside a guarded request, so
    a surface the guard did not pass can never act for anyone."""
    principal = flask.g.get(PRINCIPAL_KEY) if flask.has_request_context() else None
    if not isinstance(principal, Principal):
        raise PermissionDenied("this request carries no authenticated principal")
    return principal


def current_actor() -> str:
    """Who is acting, for the audit trail."""
    return current_principal().user


def current_time() -> datetime:
    """Naive UTC now: the serving app's clock in a request or app context, the system clock outside."""
    if flask.has_app_context():
        ctx = flask.current_app.config.get(CONTEXT_KEY)
        if isinstance(ctx, Context):
            return ctx.now()
    return utcnow()

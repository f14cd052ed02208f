"""Rate limits per principal or client address, counted in ``security.rate_limit_storage``
(memory:// per process, redis://... shared between workers) by ``limits``, the library under
Flask-Limiter. The guard applies them itself: every Dash callback shares one route, so a per-route
decorator could not tell a search from a refresh."""

from __future__ import annotations

import flask
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from dashboard.config import SecurityConfig

LIMITER_KEY = "VANTAGE_LIMITER"


class Limits:
    def __init__(self, sec: SecurityConfig) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(sec.rate_limit_storage))
        self.rates = {"search": parse(sec.search_rate_limit), "login": parse(sec.login_rate_limit)}

    def hit(self, kind: str, key: str) -> bool:
        """Count one use of ``kind`` by ``key``; False when it is over the limit (nothing counted)."""
        return bool(self.limiter.hit(self.rates[kind], kind, key))


def hit(kind: str, key: str) -> bool:
    """One use of ``kind`` by ``key`` under the serving app's limits; False when over the limit."""
    limits: Limits = flask.current_app.config[LIMITER_KEY]
    return limits.hit(kind, key)


def too_many(what: str) -> tuple[flask.Response, int]:
    response = flask.jsonify({"error": f"too many {what}; wait a minute and try again"})
    response.headers["Retry-After"] = "60"
    return response, 429

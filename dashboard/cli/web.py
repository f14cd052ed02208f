"""``vantage serve``: the dashboard on gunicorn, N worker processes, and no jobs in any of them.

Production runs this beside one ``vantage scheduler`` (the jobs) on the same store, with
``cache.url`` naming a Redis shared by every worker and the scheduler (docs/operations.md, "Web
serving and the shared cache"). Each worker builds its own app with the factory after the fork, so
no database connection or Redis pool crosses a process; sessions hold across workers because the
signing key is ``$VANTAGE_SECRET_KEY`` or the one kept in the store.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from dashboard import cache
from dashboard.app import create_app
from dashboard.cli import common
from dashboard.cli.serve import first_admin
from dashboard.store.db import redact

log = logging.getLogger("vantage")

#: gunicorn's request timeout: a worker stuck longer than this is restarted.
WORKER_TIMEOUT_S = 60


class WebServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn, configured from the command line, serving the app factory's Flask server."""

    def __init__(self, args: argparse.Namespace, options: dict[str, Any]) -> None:
        self.args = args
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # In the worker, after the fork: its own Context, store engine and Redis pool.
        ctx = common.context(self.args, migrate=False)
        return create_app(ctx).server


def _post_fork(_server: Any, _worker: Any) -> None:
    cache.reset_after_fork()


def options(args: argparse.Namespace, default_bind: str) -> dict[str, Any]:
    """gunicorn's settings for these arguments."""
    threads = max(1, args.threads)
    return {
        "bind": args.bind or [default_bind],
        "workers": max(1, args.workers),
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": WORKER_TIMEOUT_S,
        "graceful_timeout": 10,
        "max_requests": args.max_requests,
        "max_requests_jitter": args.max_requests // 10 if args.max_requests else 0,
        "accesslog": "-" if args.access_log else None,
        # Which worker answered and how long it took, with the usual fields.
        "access_log_format": '%(h)s pid=%(p)s %(t)s "%(r)s" %(s)s %(B)s %(M)sms',
        "proc_name": "vantage-web",
        # No control socket in the user's home: two servers on one host would fight over its path.
        "control_socket_disable": True,
        "post_fork": _post_fork,
        # The app decides which proxy may say the scheme and the client (security.trusted_proxies):
        # gunicorn must not believe forwarded headers on its own first.
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
    }


def cmd_serve(args: argparse.Namespace) -> int:
    ctx = common.context(args, migrate=not args.no_migrate)
    first_admin(ctx)
    web = ctx.settings.web
    opts = options(args, f"{web.host}:{web.port}")
    cached = "off" if not ctx.settings.cache.url else ("on" if ctx.settings.cache.enabled else "counts only")
    log.info(
        "Vantage on %s: %d worker(s) x %d thread(s), store %s, shared cache %s "
        "(jobs run in `vantage scheduler`)",
        ", ".join(opts["bind"]),
        opts["workers"],
        opts["threads"],
        redact(ctx.store.url),
        cached,
    )
    # Nothing of the master's store crosses the fork: each worker connects for itself.
    ctx.store.dispose()
    WebServer(args, opts).run()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", help="serve the dashboard on gunicorn with N workers (no jobs: run `vantage scheduler`)"
    )
    p.add_argument(
        "--bind",
        "-b",
        action="append",
        help="address:port to listen on, repeatable (default: web.host:web.port, 127.0.0.1:8050)",
    )
    p.add_argument("--workers", "-w", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--threads", type=int, default=4, help="request threads per worker (default 4)")
    p.add_argument(
        "--max-requests", type=int, default=0, help="restart a worker after this many requests (0: never)"
    )
    p.add_argument("--access-log", action="store_true", help="log every request on standard output")
    p.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    p.set_defaults(func=cmd_serve)

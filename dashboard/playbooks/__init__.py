"""The closed loop: playbooks decide on what the queue knows, an outbox holds each action once, and
action types deliver it (docs/playbooks.md).

:class:`ClosedLoop` is what a process runs: built from a Context, it loads and validates the
playbooks file, evaluates it right after each queue refresh (so actions are queued within the
refresh that triggers them) and delivers the outbox every ``playbooks.deliver_every_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dashboard.context import Context, Jobs
from dashboard.playbooks.decide import (
    FAILPOINT_ENV,
    Decision,
    Evaluation,
    Loop,
    action_key,
    evaluate,
    in_holdout,
    link_token,
    sent_counts,
)
from dashboard.playbooks.deliver import Deliverer, DeliveryPass
from dashboard.playbooks.manage import (
    OFFER_SOURCE,
    TRANSITIONS,
    OutboxError,
    check_link,
    decide,
    follow_link,
    opt_out,
)
from dashboard.playbooks.spec import PlaybookFile, load_playbooks, parse_playbooks
from dashboard.playbooks.uplift import Uplift, measure_uplift

log = logging.getLogger(__name__)

#: The name of the store secret that signs customers' offer links.
LINK_SECRET = "offer_links"


class ClosedLoop:
    """One process's playbooks: evaluation after the queue refresh, and delivery."""

    def __init__(
        self,
        ctx: Context,
        *,
        secret: str,
        loopback_options: Mapping[str, Mapping[str, Any]] | None = None,
        book: PlaybookFile | None = None,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.book = (
            book if book is not None else load_playbooks(settings.playbooks_path(), actions=settings.actions)
        )
        self.loop = Loop(
            book=self.book,
            actions={a.name: a for a in settings.actions},
            currency=settings.currency,
            dry_run=settings.playbooks.dry_run,
            public_url=settings.playbooks.public_url,
            secret=secret,
            default_restore_minutes={
                str(k): v for k, v in ctx.catalogue.scoring.sla.default_restore_minutes.items()
            },
        )
        self.deliverer = Deliverer(
            ctx.store,
            settings.actions,
            settings.playbooks,
            clock=ctx.clock,
            loopback_options=loopback_options,
        )

    def evaluate(self) -> Evaluation:
        with self.ctx.store.begin() as conn:
            result = evaluate(conn, self.loop, now=self.ctx.now())
        if result.decided:
            log.info("playbooks: %s", dict(result.decided))
        return result

    def deliver(self) -> DeliveryPass:
        result = self.deliverer.run_once()
        if result.claimed or result.reclaimed:
            log.info(
                "outbox: %s",
                dict(result.outcomes) | {f"reclaimed {k}": v for k, v in result.reclaimed.items()},
            )
        return result

    def jobs(self) -> Jobs:
        return {"playbooks-deliver": (self.ctx.settings.playbooks.deliver_every_s, self.deliver)}

    def close(self) -> None:
        self.deliverer.close()


__all__ = [
    "FAILPOINT_ENV",
    "LINK_SECRET",
    "OFFER_SOURCE",
    "TRANSITIONS",
    "ClosedLoop",
    "Decision",
    "Deliverer",
    "DeliveryPass",
    "Evaluation",
    "Loop",
    "OutboxError",
    "PlaybookFile",
    "Uplift",
    "action_key",
    "check_link",
    "decide",
    "evaluate",
    "follow_link",
    "in_holdout",
    "link_token",
    "load_playbooks",
    "measure_uplift",
    "opt_out",
    "parse_playbooks",
    "sent_counts",
]

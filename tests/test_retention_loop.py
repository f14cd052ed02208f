"""The retention loop on the simulator, scaled down: bench/retention.py's mechanics, not its statistics.

Lines whose churn risk crosses the band after an incident get an SMS offer or fall in the hold-out (a
hash of the line, a fifth of them); every offer sent reaches the simulated customer on the connector
the ingest reads, at the simulated time it was decided; the offers the customers accept come back
through the connector's churn stream as ``offer_events``; the held-out lines receive nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import select

from connectors.simulator.faults import to_s
from dashboard.playbooks import in_holdout, measure_uplift
from dashboard.store.schema import actions, offer_events

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_retention", ROOT / "bench" / "retention.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_offers_reach_the_simulator_and_accepted_ones_come_back() -> None:
    bench_mod = _bench()
    # Small enough for a test, busy enough to decide: more failures than the bench's 0.05 a
    # resource-day, and a band near the middle of this small operator's churn risks, so lines an
    # incident hits below it soon cross it.
    args = bench_mod.parser().parse_args(
        ["--seed", "2", "--subscribers", "4000", "--band", "0.02", "--incident-rate", "0.1"]
    )
    bench = bench_mod.RetentionBench(args)
    try:
        bench.prepare()
        for _ in range(8):  # two days with the loop on, a step every 6 hours
            bench.step()
        bench.follow(1)
        now = bench.clock.t
        with bench.store.connect() as conn:
            rows = conn.execute(
                select(
                    actions.c.key,
                    actions.c.state,
                    actions.c.subscriber_id,
                    actions.c.offer,
                    actions.c.created_at,
                    actions.c.sent_at,
                ).where(actions.c.playbook == "retention-offer")
            ).all()
            events = {
                r.id: r
                for r in conn.execute(select(offer_events).where(offer_events.c.id.like("VOF-%"))).all()
            }
            uplift = measure_uplift(conn, "retention-offer", window_days=1.0, now=now)
        sent = [r for r in rows if r.state == "sent"]
        held = [r for r in rows if r.state == "held_out"]
        assert {r.state for r in rows} <= {"sent", "held_out", "suppressed"}
        assert len(sent) >= 40 and held, (len(sent), len(held))
        # About 4:1, and by the hash of the line, not by chance at the time.
        assert 0.1 < len(held) / (len(sent) + len(held)) < 0.32
        holdout = bench.loop.book.holdout
        assert all(in_holdout(r.subscriber_id, salt=holdout.salt, share=holdout.share) for r in held)
        assert not any(in_holdout(r.subscriber_id, salt=holdout.salt, share=holdout.share) for r in sent)
        assert all(r.offer for r in sent + held)

        # Every offer sent reached its line on the ingest's connector, once, when it was decided.
        receipts = {r.key: r for r in bench.sim.inbox.receipts}
        assert set(receipts) == {r.key for r in sent}
        assert bench.inbox.counts["reached"] == len(sent) and not bench.inbox.counts["unreached"]
        for r in sent:
            got = receipts[r.key]
            assert got.kind == "offer" and got.offer == r.offer
            assert f"sub-{got.line:07d}" == r.subscriber_id
            assert got.at_s == to_s(r.created_at) == to_s(r.sent_at)
        assert not {f"sub-{g.line:07d}" for g in receipts.values()} & {r.subscriber_id for r in held}

        # Accepted offers come back as offer_events (none for a line out of service by then).
        accepted = [g for g in receipts.values() if g.accepted and g.accepted_s < to_s(now)]
        assert 0.25 < len(accepted) / len(sent) < 0.65
        assert set(events) <= {g.record_id for g in accepted}
        live = bench.sim.experience.in_service([g.line for g in accepted], [g.accepted_s for g in accepted])
        assert set(events) == {g.record_id for g, ok in zip(accepted, live, strict=True) if ok}
        for g in accepted:
            if g.record_id in events:
                e = events[g.record_id]
                assert (e.subscriber_id, e.offer, e.outcome) == (f"sub-{g.line:07d}", g.offer, "accepted")

        # The measurement sees the same two arms (first decision per line, old enough).
        old = [r for r in sent + held if (now - r.created_at).total_seconds() >= 86400]
        assert uplift.treated == len({r.subscriber_id for r in old if r.state == "sent"})
        assert uplift.holdout == len({r.subscriber_id for r in old if r.state == "held_out"})
    finally:
        bench.close()

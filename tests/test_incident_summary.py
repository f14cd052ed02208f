"""An incident's accounts, measured by the queue refresh and read by the incident detail.

The network is described in :mod:`tests.incident_net` (incident A degrades c1, B c2 and c3), with
more tracked accounts on c2 and c3 here: small businesses of equal value (ties broken by id), a VIP
consumer whose name is its holder's, and an account with its own restore target.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import delete, select, update

from dashboard.api.encode import records
from dashboard.incidents import read, summary
from dashboard.incidents.queue import refresh_queue
from dashboard.incidents.summary import refresh_summary
from dashboard.store.db import Store
from dashboard.store.schema import incident_cells, incident_detail_accounts, incident_detail_summary
from tests.incident_net import T, incidents_by_cell, ingest, queue_rows, scoring, two_incidents

HOLDER = "Joana Silva"


def _more_accounts(store: Store) -> None:
    accounts = [{"id": f"SMB{i}", "name": f"Shop {i}", "segment": "smb", "vip": False} for i in range(4)] + [
        {"id": "VIPC", "name": HOLDER, "segment": "consumer", "vip": True},
        {
            "id": "SLA1",
            "name": "Hill Clinic",
            "segment": "smb",
            "vip": False,
            "sla_restore_minutes": 240,
            "penalty_per_hour": 90.0,
            "account_manager": "Rui Lopes",
        },
    ]
    ingest(store, "accounts", accounts)
    # Two lines per shop (equal value: ties broken by id), split over c2 and c3 for two of them.
    subs = [
        {"id": f"S{i}{j}", "account_id": f"SMB{i}", "msisdn": f"3519300{i}{j:04d}", "arpu": 30.0}
        for i in range(4)
        for j in range(2)
    ]
    subs += [
        {"id": "V0", "account_id": "VIPC", "msisdn": "351930099999", "arpu": 80.0},
        {"id": "H0", "account_id": "SLA1", "msisdn": "351930088888", "arpu": 45.0},
        {"id": "H1", "account_id": "SLA1", "msisdn": "351930088889", "arpu": 45.0},
    ]
    ingest(store, "subscribers", subs)
    served = [
        {"subscriber_id": s["id"], "cell_id": "c2" if s["id"][1] in "01" else "c3", "share": 1.0}
        for s in subs
        if s["id"].startswith("S")
    ]
    served += [
        {"subscriber_id": "S00", "cell_id": "c3", "share": 0.5},
        {"subscriber_id": "V0", "cell_id": "c2", "share": 0.6},
        {"subscriber_id": "V0", "cell_id": "c3", "share": 0.4},
        {"subscriber_id": "H0", "cell_id": "c3", "share": 1.0},
        {"subscriber_id": "H1", "cell_id": "c2", "share": 1.0},
    ]
    ingest(store, "subscriber_cells", served)


def _shares(store: Store, incident_id: str, shares: dict[str, float]) -> None:
    ic = incident_cells
    with store.begin() as conn:
        for cell, share in shares.items():
            conn.execute(
                update(ic)
                .where(ic.c.incident_id == incident_id, ic.c.cell_id == cell)
                .values(degraded_share=share)
            )


def _live(store: Store, incident_id: str, now: pd.Timestamp) -> pd.DataFrame:
    """The detail measured live: what it reads with nothing stored."""
    with store.begin() as conn:
        conn.execute(delete(incident_detail_summary))
    with store.connect() as conn:
        return read.affected_accounts(conn, incident_id, scoring(), now=now)


def _stored(store: Store, incident_id: str) -> int:
    with store.connect() as conn:
        return len(
            conn.execute(
                select(incident_detail_accounts.c.position).where(
                    incident_detail_accounts.c.incident_id == incident_id
                )
            ).all()
        )


def test_the_stored_accounts_read_as_the_live_ones(net: Store) -> None:
    _more_accounts(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    on = incidents_by_cell(net)
    b = on["c2"]
    _shares(net, b, {"c2": 0.35, "c3": 0.8})
    with net.begin() as conn:
        assert refresh_summary(conn, scoring(), now=T) == 2  # no value pass to follow: every queued incident
    now = T + timedelta(minutes=5)
    for iid in (on["c1"], b):
        with net.connect() as conn:
            kept = read.affected_accounts(conn, iid, scoring(), now=now)
        assert len(kept) == _stored(net, iid) > 0  # the rows were there to be read
        with net.begin() as conn:
            refresh_summary(conn, scoring(), now=T)  # put back what _live below deletes
        live = _live(net, iid, now)
        pd.testing.assert_frame_equal(kept, live)
        assert records(kept) == records(live)
    assert len(live) == 6  # B: four shops, the VIP consumer, the clinic
    order = live["account_id"].tolist()
    assert order.index("SMB3") == order.index("SMB2") + 1  # equal value: by id
    assert live["value"].is_monotonic_decreasing


def test_the_detail_reads_the_stored_rows_while_its_inputs_are_unchanged(net: Store) -> None:
    _more_accounts(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = incidents_by_cell(net)["c2"]
    a = incident_detail_accounts
    with net.begin() as conn:  # a value no live measurement could give: the detail must read it
        conn.execute(update(a).where(a.c.incident_id == b, a.c.position == 0).values(lines=123.0))
    with net.connect() as conn:
        assert read.affected_accounts(conn, b, scoring(), now=T)["lines"].iloc[0] == 123.0
    _shares(net, b, {"c3": 0.5})  # other shares than the stored rows were measured from: live
    with net.connect() as conn:
        assert 123.0 not in read.affected_accounts(conn, b, scoring(), now=T)["lines"].tolist()
    _shares(net, b, {"c3": 1.0})
    with net.connect() as conn:  # as measured again
        assert read.affected_accounts(conn, b, scoring(), now=T)["lines"].iloc[0] == 123.0
    with net.connect() as conn:  # other scoring rules: live
        other = scoring(vip_multiplier=scoring().vip_multiplier * 2)
        assert 123.0 not in read.affected_accounts(conn, b, other, now=T)["lines"].tolist()


def test_the_next_refresh_measures_again_what_changed(net: Store) -> None:
    _more_accounts(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    b = incidents_by_cell(net)["c2"]
    later = T + timedelta(seconds=30)
    ingest(net, "accounts", [{"id": "SMB9", "name": "New Shop", "segment": "smb", "vip": False}])
    ingest(net, "subscribers", [{"id": "N0", "account_id": "SMB9", "msisdn": "351930077777", "arpu": 500.0}])
    ingest(net, "subscriber_cells", [{"subscriber_id": "N0", "cell_id": "c3", "share": 1.0}])
    ingest(
        net,
        "accounts",
        [{"id": "SLA1", "name": "Hill Clinic SA", "segment": "smb", "vip": False, "sla_restore_minutes": 60}],
    )
    refresh_queue(net, scoring(), now=later)
    with net.connect() as conn:
        kept = read.affected_accounts(conn, b, scoring(), now=later)
    assert kept["account_id"].iloc[0] == "SMB9"  # a new account on the cells, by its lines
    clinic = kept.set_index("account_id").loc["SLA1"]
    assert clinic["name"] == "Hill Clinic SA"  # a renamed account, by its own ingest
    assert clinic["restore_minutes"] == 60.0
    assert len(kept) == _stored(net, b)
    pd.testing.assert_frame_equal(kept, _live(net, b, later))


def _computed(store: Store) -> dict[str, object]:
    s = incident_detail_summary
    with store.connect() as conn:
        return {str(i): c for i, c in conn.execute(select(s.c.incident_id, s.c.computed_at)).all()}


def test_a_pass_with_nothing_changed_measures_nothing_again(net: Store) -> None:
    _more_accounts(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    refresh_queue(net, scoring(), now=T + timedelta(days=400))  # past every ingest and the overlap
    before = _computed(net)
    refresh_queue(net, scoring(), now=T + timedelta(days=400, seconds=30))
    after = _computed(net)
    assert len(before) == 2
    assert after == before


def test_a_holders_name_is_stored_masked_as_every_role_is_shown_it(net: Store) -> None:
    _more_accounts(net)
    two_incidents(net)
    refresh_queue(net, scoring(), now=T)
    with net.connect() as conn:
        stored = conn.execute(select(incident_detail_accounts)).all()
    texts = [str(v) for row in stored for v in row]
    assert not any(HOLDER in t for t in texts)
    names = {row.account_id: row.name for row in stored}
    assert names["VIPC"] == "J*** S***"
    assert names["SMB1"] == "Shop 1"  # a business's name as is


def test_a_pass_measures_the_highest_ranked_first_and_drops_what_it_leaves_stale(
    net: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _more_accounts(net)
    two_incidents(net)
    monkeypatch.setattr(summary, "CELLS_PER_PASS", 1)  # one incident per pass
    refresh_queue(net, scoring(), now=T)
    on = incidents_by_cell(net)
    ranked = queue_rows(net)["incident_id"].tolist()
    assert set(_computed(net)) == {ranked[0]}  # the other waits, its detail measured live
    later = T + timedelta(days=400)  # past every row's ingest time and the overlap
    refresh_queue(net, scoring(), now=later)  # every account new to this pass: the first again
    refresh_queue(net, scoring(), now=later + timedelta(seconds=30))
    assert set(_computed(net)) == set(ranked)
    ingest(net, "accounts", [{"id": "SMB1", "name": "Shop One", "segment": "smb", "vip": False}])
    ingest(net, "accounts", [{"id": "ENT", "name": "Harbour Freight", "segment": "enterprise", "vip": False}])
    refresh_queue(net, scoring(), now=later + timedelta(seconds=60))
    top = queue_rows(net)["incident_id"].iloc[0]  # the ranking as of this pass
    assert set(_computed(net)) == {top}  # measured again; the other's old names dropped
    with net.connect() as conn:
        a = read.affected_accounts(conn, on["c1"], scoring(), now=T).set_index("account_id")
        b = read.affected_accounts(conn, on["c2"], scoring(), now=T).set_index("account_id")
    assert a.loc["ENT", "name"] == "Harbour Freight"
    assert b.loc["SMB1", "name"] == "Shop One"
    refresh_queue(net, scoring(), now=later + timedelta(seconds=90))
    assert set(_computed(net)) == set(ranked)

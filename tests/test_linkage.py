"""Linkage, measured: the estimator on hand-made panels, and on the simulator whose effects are known."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import select

from connectors.base import ConnectorContext
from connectors.simulator import SimulatorConnector, SimulatorOptions
from dashboard.kpis import load_catalogue
from dashboard.linkage import estimate_link, links_from_panel, store_links, what_if
from dashboard.linkage.estimate import LinkResult
from dashboard.store import Store

CATALOGUE = load_catalogue(Path(__file__).resolve().parents[1] / "kpi_definitions.yaml")
NAMES = {k.name: (k.label, k.unit) for k in CATALOGUE.kpis}


def synthetic(
    seed: int = 0, *, cells: int = 200, days: int = 30, effect: float = 20.0, lag: int = 0
) -> pd.DataFrame:
    """A cell-day panel: tickets per 1k = 20 x drop rate (pp) at ``lag`` days + cell, day effects + noise.

    The drop rate has spikes (incidents) on 5 % of cell-days; latency is confounded with the drop
    rate (it rises on the same incidents) but drives nothing; traffic and subscribers vary by cell.
    """
    rng = np.random.default_rng(seed)
    n = cells * days
    ent = np.repeat(np.arange(cells), days)
    day = np.tile(np.arange(days), cells)
    spike = rng.random(n) < 0.05
    drop = 0.5 + 0.05 * rng.standard_normal(n) + spike * rng.uniform(0.2, 2.0, n)
    latency = 30 + 5 * rng.standard_normal(n) + spike * rng.uniform(0, 80, n) + 10 * drop
    subs = np.repeat(rng.integers(50, 500, cells), days).astype(float)
    drop_lag = pd.Series(drop).groupby(ent).shift(lag).to_numpy()
    y = (
        np.repeat(rng.normal(2, 0.5, cells), days)
        + np.tile(rng.normal(0, 0.3, days), cells)
        + effect * drop_lag
        + rng.standard_normal(n) * 30 / np.sqrt(subs)
    )
    return pd.DataFrame(
        {
            "entity_id": [f"cell-{e:04d}" for e in ent],
            "period_start": pd.Timestamp("2026-10-01") + pd.to_timedelta(day, unit="D"),
            "drop_call_rate_pct": drop,
            "latency_ms": latency,
            "traffic_gb": np.repeat(rng.uniform(5, 50, cells), days) * (1 + 0.1 * rng.standard_normal(n)),
            "subscribers": subs,
            "tickets_per_1k_subscribers": y,
        }
    )


def _tickets(panel: pd.DataFrame, driver: str, **kw: Any) -> LinkResult:
    kw.setdefault("step", 0.1)
    kw.setdefault("max_lag", 2)
    kw.setdefault("controls", ["traffic_gb"])
    kw.setdefault("weight", "subscribers")
    return estimate_link(panel, driver, "tickets_per_1k_subscribers", names=NAMES, **kw)


def test_known_effect_is_recovered_within_its_interval() -> None:
    r = _tickets(synthetic(), "drop_call_rate_pct", expected="positive", lagged_controls=["latency_ms"])
    assert r.strength == "strong" and r.lag == 0
    assert r.ci_low is not None and r.ci_high is not None and r.effect is not None
    assert r.ci_low <= 2.0 <= r.ci_high  # 20 per pp = 2.0 per 0.1 pp
    assert r.ci_high - r.ci_low < 0.5
    assert r.n == 200 * 28  # two days lost to the lags
    profile = r.evidence["lag_profile"]
    assert [p["lag"] for p in profile] == [0, 1, 2]
    assert abs(profile[1]["effect"]) < 0.3 and abs(profile[2]["effect"]) < 0.3
    bins = r.evidence["binned"]
    assert 5 <= len(bins) <= 20 and bins[-1]["y"] > bins[0]["y"]
    assert r.sentence.startswith("+0.1 pp dropped call rate -> +")
    assert "tickets per 1,000 subscribers per day (95% CI " in r.sentence
    assert r.sentence.endswith("same day, n = 5,600 cell-days: strong")


def test_the_lag_is_recovered() -> None:
    r = _tickets(synthetic(1, lag=2), "drop_call_rate_pct", expected="positive", max_lag=3)
    assert r.lag == 2 and r.lag_s == 2 * 86400
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci_low <= 2.0 <= r.ci_high
    assert "2 days later" in r.sentence


def test_a_confounded_driver_is_weak_once_the_real_driver_is_held_fixed() -> None:
    panel = synthetic(2)
    alone = _tickets(panel, "latency_ms", step=10, expected="positive")
    assert alone.strength == "strong"  # latency rises with the incidents that raise drops
    partial = _tickets(
        panel, "latency_ms", step=10, expected="positive", lagged_controls=["drop_call_rate_pct"]
    )
    assert partial.strength == "weak"
    assert partial.ci_low is not None and partial.ci_high is not None
    assert partial.ci_low <= 0 <= partial.ci_high


def test_a_null_link_is_weak_and_a_wrong_sign_is_contradicted() -> None:
    null = _tickets(synthetic(3, effect=0.0), "drop_call_rate_pct", expected="positive")
    assert null.strength == "weak" and "weak" in null.sentence
    wrong = _tickets(synthetic(4, effect=-20.0), "drop_call_rate_pct", expected="positive")
    assert wrong.strength == "contradicted"
    assert wrong.effect is not None and wrong.effect < 0


def test_no_data_is_said_not_hidden() -> None:
    panel = synthetic(5).head(20)
    r = _tickets(panel, "drop_call_rate_pct", expected="positive")
    assert r.strength == "no_data" and r.effect is None
    assert "not enough data" in r.sentence
    missing = _tickets(synthetic(5), "packet_loss_pct")
    assert missing.strength == "no_data"


def test_null_intervals_are_honest_over_many_panels() -> None:
    """200 null panels: the lag-adjusted 95 % interval may miss zero in 5 % of them (10 expected;
    binomial sd 3.1), so more than 17 misses (the 99.5 % quantile) says the intervals are too short.
    Measured: 5 of 200 (Bonferroni over three lags is conservative)."""
    misses = 0
    for seed in range(200):
        r = _tickets(synthetic(1000 + seed, cells=60, effect=0.0), "drop_call_rate_pct", max_lag=2)
        assert r.ci_low is not None and r.ci_high is not None
        misses += not (r.ci_low <= 0 <= r.ci_high)
    assert misses <= 17, misses


def test_a_known_effect_over_many_panels_is_unbiased_covered_and_its_error_calibrated() -> None:
    """60 panels with the same true effect (2.0 per 0.1 pp): the estimates centre on it (bias within
    three standard errors of their mean, and under 1 %), every one has the right sign and is strong,
    the reported standard error matches the estimates' spread across panels (within -15 %/+40 %: the
    cluster jackknife is conservative by design; measured +13 %), and the interval covers the truth
    in at least 95 % of panels less sampling error (more than 7 misses of 60 has probability < 1 %)."""
    effects, halves, misses = [], [], 0
    for seed in range(60):
        r = _tickets(
            synthetic(2000 + seed, cells=60),
            "drop_call_rate_pct",
            expected="positive",
            lagged_controls=["latency_ms"],
        )
        assert r.effect is not None and r.ci_low is not None and r.ci_high is not None
        assert r.strength == "strong" and r.effect > 0
        effects.append(r.effect)
        lags = 3  # max_lag 2: the interval is Bonferroni-adjusted over three lags
        halves.append(
            (r.ci_high - r.ci_low) / 2 / stats.t.ppf(1 - 0.05 / lags / 2, r.evidence["clusters"] - 1)
        )
        misses += not (r.ci_low <= 2.0 <= r.ci_high)
    est = np.array(effects)
    spread = est.std(ddof=1)
    bias = est.mean() - 2.0
    assert abs(bias) <= 3 * spread / np.sqrt(len(est)) and abs(bias) < 0.02, (bias, spread)
    assert 0.85 <= np.mean(halves) / spread <= 1.4, (np.mean(halves), spread)
    assert misses <= 7, misses


def with_packet_loss(panel: pd.DataFrame, seed: int, effect: float) -> pd.DataFrame:
    """``panel`` plus packet loss (%): it rises on the panel's incidents (with the drop rate and the
    latency) and also in bursts of its own on 5 % of cell-days; tickets per 1k grow by ``effect``
    per percentage point of it. Packet loss -> tickets is not declared in the catalogue."""
    rng = np.random.default_rng(10_000 + seed)
    n = len(panel)
    incident = (panel["drop_call_rate_pct"] - 0.5).clip(lower=0).to_numpy()
    burst = (rng.random(n) < 0.05) * rng.uniform(0.5, 3.0, n)
    loss = 0.3 + 0.05 * rng.standard_normal(n) + 0.8 * incident + burst
    out = panel.copy()
    out["packet_loss_pct"] = loss
    out["tickets_per_1k_subscribers"] += effect * loss
    return out


def test_an_undeclared_link_that_is_real_is_discovered_and_one_that_only_co_moves_is_not() -> None:
    """Discovery: packet loss drives tickets in the first panel (5 per pp, 0.5 per 0.1 pp) and is
    found as a strong undeclared link whose interval holds the truth; in the second it only rises
    with the incidents that the declared drivers (drop rate, latency) already explain, and is not
    reported."""
    real = links_from_panel(with_packet_loss(synthetic(7), 7, effect=5.0), CATALOGUE)
    found = [r for r in real if r.driver == "packet_loss_pct" and r.target == "tickets_per_1k_subscribers"]
    assert len(found) == 1, [(r.driver, r.target, r.strength) for r in real if not r.declared]
    link = found[0]
    assert not link.declared and link.strength == "strong" and link.lag == 0
    assert link.ci_low is not None and link.ci_high is not None and link.ci_low <= 0.5 <= link.ci_high
    co_moving = links_from_panel(with_packet_loss(synthetic(8), 8, effect=0.0), CATALOGUE)
    assert not [r for r in co_moving if r.driver == "packet_loss_pct" and not r.declared]


def test_what_if_scales_the_effect_and_its_interval() -> None:
    r = _tickets(synthetic(), "drop_call_rate_pct", expected="positive")
    assert r.effect is not None and r.ci_low is not None and r.ci_high is not None
    w = what_if(r, -0.3)
    assert w.expected == pytest.approx(-3 * r.effect)
    assert w.low == pytest.approx(-3 * r.ci_high) and w.high == pytest.approx(-3 * r.ci_low)
    assert np.isnan(what_if(_tickets(synthetic().head(5), "drop_call_rate_pct"), 1.0).expected)


# --- the simulator: known causal parameters -------------------------------------------------------

ANCHOR = datetime(2026, 11, 22)
# Small hazards (1 - exp(-h) stays within ~1 % of h), churn switched off (churned lines would stay in
# the denominators of a panel built from the records), and a busy network.
SIM_CAUSAL = {
    "incident_rate_per_resource_day": 0.08,
    "ticket_per_drop_pp_hour": 0.0004,
    "ticket_per_latency_100ms_hour": 0.001,
    "ticket_per_outage_hour": 0.003,
    "churn_base_daily": 1e-6,
    "churn_per_degraded_hour": 0.0,
    "churn_per_negative_ticket": 0.0,
}


def _frames(conn: SimulatorConnector, name: str) -> dict[str, pd.DataFrame]:
    stream = next(s for s in conn.streams() if s.name == name)
    out: dict[str, list[pd.DataFrame]] = {}
    for b in conn.read(stream, {}):
        df = b.records if isinstance(b.records, pd.DataFrame) else pd.DataFrame([dict(r) for r in b.records])
        if len(df):
            out.setdefault(b.kind, []).append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def simulated_panel(seed: int, subscribers: int = 30_000, days: int = 30) -> tuple[pd.DataFrame, Any]:
    """A cell-day panel rolled up from the simulator's records as the catalogue says.

    Traffic-weighted daily means of the quality KPIs, the mean of availability, summed traffic;
    tickets and lines spread over each line's cells by share. (dashboard.kpi_eval computes the same
    from the store; see docs/linkage.md for why availability is averaged over time here.)
    """
    conn = SimulatorConnector(
        SimulatorOptions(
            seed=seed,
            subscribers=subscribers,
            subscribers_per_cell=250,
            days=days,
            anchor=ANCHOR,
            causal=SIM_CAUSAL,
        ),
        ConnectorContext(name="sim"),
    )
    k = pd.concat(_frames(conn, "kpis").values())
    sc = _frames(conn, "customers")["subscriber_cells"]
    tickets = _frames(conn, "tickets")["tickets"].drop_duplicates("id")
    wide = k.pivot_table(index=["entity_id", "period_start"], columns="kpi", values="value").reset_index()
    wide["day"] = wide["period_start"].dt.floor("D")
    key = [wide["entity_id"], wide["day"]]
    traffic = wide.groupby(key)["traffic_gb"].sum()
    out = traffic.to_frame()
    out["availability_pct"] = wide.groupby(key)["availability_pct"].mean()
    for c in (
        "drop_call_rate_pct",
        "latency_ms",
        "call_setup_success_pct",
        "packet_loss_pct",
        "dl_throughput_mbps",
    ):
        out[c] = (wide[c] * wide["traffic_gb"]).groupby(key).sum() / traffic
    out = out.reset_index(names=["entity_id", "period_start"])
    out["subscribers"] = out["entity_id"].map(sc.groupby("cell_id")["share"].sum())
    tickets["day"] = tickets["created_at"].dt.floor("D")
    per_cell = tickets.merge(sc, on="subscriber_id").groupby(["cell_id", "day"])["share"].sum()
    idx = pd.MultiIndex.from_arrays([out["entity_id"], out["period_start"]])
    out["tickets"] = per_cell.reindex(idx).fillna(0.0).to_numpy()
    out["tickets_per_1k_subscribers"] = 1000 * out["tickets"] / out["subscribers"]
    out["site"] = out["entity_id"].str[5:].astype(int) // 3  # cell-000123 is a sector of site 41
    return out, conn


SEEDS = range(1, 21)
BUILT_IN = ("availability_pct", "drop_call_rate_pct", "latency_ms")


def _seed_links(seed: int) -> dict[str, Any]:
    """The ticket links measured on one seed's panel, with the truth (plain values: run in a worker)."""
    panel, conn = simulated_panel(seed=seed)
    truth = {t.driver: (t.effect, t.built_in, t.step) for t in conn.linkage_truth()}
    got = {}
    for r in links_from_panel(panel, CATALOGUE, cluster="site"):
        if r.target == "tickets_per_1k_subscribers":
            got[r.driver] = {
                "effect": r.effect,
                "lo": r.ci_low,
                "hi": r.ci_high,
                "strength": r.strength,
                "declared": r.declared,
                "lag": r.lag,
                "step": r.step,
            }
    return {
        "seed": seed,
        "links": got,
        "truth": {d: t for d, t in truth.items() if d in got or d in BUILT_IN},
    }


@pytest.fixture(scope="module")
def seed_runs() -> list[dict[str, Any]]:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(_seed_links, SEEDS))


@pytest.mark.slow
def test_simulator_links_hold_over_twenty_seeds(seed_runs: list[dict[str, Any]]) -> None:
    """The built-in ticket links over 20 seeds (30,000 lines on 120 cells, 30 days each): intervals
    cover the truth near the nominal 95 %, the mean is within its sampling error plus the mobility
    dilution of the truth, the sign is right, and the unbuilt links stay unreported.

    Measured over seeds 1-20 (docs/linkage.md): coverage 20/20 for each built-in link; mean
    -0.0707 (truth -0.072), 0.947 (0.96), 2.50 (2.40); right sign 20/20.
    """
    for driver in BUILT_IN:
        effect, built_in, step = seed_runs[0]["truth"][driver]
        assert built_in
        runs = [r["links"][driver] for r in seed_runs]
        est = np.array([r["effect"] for r in runs])
        covered = sum(r["lo"] <= effect <= r["hi"] for r in runs)
        # At 95 % coverage, 16 or fewer of 20 has probability 1.6 %.
        assert covered >= 17, (driver, covered)
        # Bias: within three standard errors of the mean, plus 3 % for the mobility dilution.
        se = est.std(ddof=1) / np.sqrt(len(est))
        assert abs(est.mean() - effect) <= 3 * se + 0.03 * abs(effect), (driver, est.mean(), effect, se)
        assert sum(np.sign(e) == np.sign(effect) for e in est) >= 19, (driver, est)
        assert sum(r["strength"] in ("strong", "moderate") for r in runs) >= 18, driver
        assert all(r["step"] == step and r["lag"] == 0 for r in runs)
    # CSSR -> tickets is declared but not built in: its interval holds 0 in most seeds and it is
    # seldom strong (measured: 17/20 and 1/20).
    cssr = [r["links"]["call_setup_success_pct"] for r in seed_runs]
    assert not seed_runs[0]["truth"]["call_setup_success_pct"][1]
    assert sum(r["lo"] <= 0 <= r["hi"] for r in cssr) >= 15
    assert sum(r["strength"] == "strong" for r in cssr) <= 2
    # Packet loss rises with the same incidents but drives no tickets: never discovered.
    assert not any("packet_loss_pct" in r["links"] for r in seed_runs)


# --- the store and the API -------------------------------------------------------------------------


def test_links_are_stored_and_served(store: Store) -> None:
    from tests.apps import api_client

    panel = synthetic()
    results = [
        _tickets(panel, "drop_call_rate_pct", expected="positive", lagged_controls=["latency_ms"]),
        _tickets(panel, "latency_ms", step=10, expected="positive", lagged_controls=["drop_call_rate_pct"]),
    ]
    now = datetime(2026, 11, 22, 3)
    with store.begin() as conn:
        assert store_links(conn, results, now) == 2
        assert store_links(conn, results, now) == 2  # replaces, does not duplicate
    client = api_client(store, catalogue=CATALOGUE)
    body = client.get("/api/v1/linkage").get_json()
    assert body["count"] == 2 and body["scope"] == "all"
    drop = next(x for x in body["links"] if x["driver"] == "drop_call_rate_pct")
    assert drop["strength"] == "strong" and drop["lag_s"] == 0 and drop["declared"] is True
    assert drop["ci_low"] <= drop["effect"] <= drop["ci_high"] and drop["n"] == 5600
    assert drop["sentence"] == results[0].sentence and "evidence" not in drop
    strong = client.get("/api/v1/linkage?strength=strong&evidence=true").get_json()
    assert [x["driver"] for x in strong["links"]] == ["drop_call_rate_pct"]
    assert strong["links"][0]["evidence"]["lag_profile"][0]["lag"] == 0
    assert client.get("/api/v1/linkage?scope=region:north").get_json()["count"] == 0
    for bad in ("scope=planet:x", "strength=huge", "kpi=nope", "evidence=maybe"):
        resp = client.get(f"/api/v1/linkage?{bad}")
        assert resp.status_code == 400 and "expected" in resp.get_json()["error"], bad


def test_estimation_time_on_a_large_panel() -> None:
    """A benchmark, not a pass/fail timing: 2,000 cells x 30 days, all declared links of tickets."""
    panel = synthetic(7, cells=2000)
    t0 = time.perf_counter()
    r = _tickets(panel, "drop_call_rate_pct", expected="positive", lagged_controls=["latency_ms"])
    print(f"one link on {r.n:,} cell-days: {time.perf_counter() - t0:.2f} s")
    assert r.strength == "strong"


@pytest.mark.slow
def test_simulator_links_are_recovered_through_the_store(pg_store: Store) -> None:
    """The same acceptance, end to end as in production: the simulator's records ingested into
    PostgreSQL, rolled up by dashboard.kpi_eval, links estimated from its panel and stored."""
    from dashboard.ingest import run_connector
    from dashboard.kpi_eval import evaluate
    from dashboard.linkage import refresh_linkage
    from dashboard.store.schema import kpi_links

    conn = SimulatorConnector(
        SimulatorOptions(seed=5, subscribers=30_000, subscribers_per_cell=250, days=30, anchor=ANCHOR,
                         causal=SIM_CAUSAL),
        ConnectorContext(name="sim"),
    )  # fmt: skip
    summary = run_connector(pg_store, conn)
    assert summary.counts.quarantined == 0
    now = ANCHOR + timedelta(minutes=5)
    evaluate(pg_store, CATALOGUE, now=now, full=True)
    assert refresh_linkage(pg_store, CATALOGUE, now=now, scopes=["all"]) > 0
    with pg_store.connect() as c:
        rows = {
            (r.driver, r.target): r for r in c.execute(select(kpi_links).where(kpi_links.c.scope == "all"))
        }
    truth = {t.driver: t for t in conn.linkage_truth() if t.target == "tickets_per_1k_subscribers"}
    for driver in ("availability_pct", "drop_call_rate_pct", "latency_ms"):
        r = rows[(driver, "tickets_per_1k_subscribers")]
        print(f"{r.sentence}  [truth {truth[driver].effect:.3g}]")
        assert r.ci_low <= truth[driver].effect <= r.ci_high, (driver, r.effect, truth[driver].effect)
        assert r.strength in ("strong", "moderate")
    assert rows[("call_setup_success_pct", "tickets_per_1k_subscribers")].strength == "weak"

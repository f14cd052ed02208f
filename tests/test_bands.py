"""KPI series against their usual band, as the pages read them (dashboard/kpi_eval/bands.py), on both
backends: the band is aligned to each sample's quarter hour, what is outside it is flagged in the
rule's bad direction only, verdicts read in words and out-of-band series are counted.

The data is tests/band_data.py: three cells on a daily curve for two weeks, then C1 at 40% of its
throughput and 3x its latency for six periods with no alarm.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from dashboard.figures import band_figure
from dashboard.kpi_eval import bands
from dashboard.kpi_eval.anomaly import band_frame, refresh_anomalies
from dashboard.kpi_eval.baseline import slot_of
from dashboard.kpis import Catalogue
from dashboard.store import Store
from dashboard.store.db import read_frame
from dashboard.store.schema import kpi_anomalies, kpi_samples
from tests import band_data as bd


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return bd.catalogue()


@pytest.fixture
def learnt(store: Store, cat: Catalogue) -> Store:
    bd.learnt(store, cat)
    return store


@pytest.fixture
def degraded(store: Store, cat: Catalogue) -> Store:
    bd.degraded_silently(store, cat)
    return store


def test_band_is_aligned_to_each_samples_quarter_hour(learnt: Store, cat: Catalogue) -> None:
    since, until = bd.LEARNT - timedelta(hours=24), bd.LEARNT
    with learnt.connect() as conn:
        df = bands.band_panel(
            conn, cat, ["dl_throughput_mbps", "latency_ms"], level="cell", entity_ids=["C1", "C2"],
            since=since, until=until,
        )  # fmt: skip
        stored = read_frame(
            conn,
            select(kpi_samples.c.period_start, kpi_samples.c.value).where(
                kpi_samples.c.entity_id == "C2",
                kpi_samples.c.kpi == "dl_throughput_mbps",
                kpi_samples.c.period_start >= since,
            ),
        )
        band = band_frame(conn, cat, "dl_throughput_mbps", "cell", "C2").set_index("slot")
    assert list(df.columns) == bands.SERIES_COLUMNS
    # One row per KPI, entity and quarter hour of the window, in the order asked.
    assert len(df) == 2 * 2 * 96
    assert list(dict.fromkeys(df["kpi"])) == ["dl_throughput_mbps", "latency_ms"]
    c2 = df[(df["kpi"] == "dl_throughput_mbps") & (df["entity_id"] == "C2")].set_index("period_start")
    assert c2.index[0] == pd.Timestamp(since) and c2.index[-1] == pd.Timestamp(until - bd.Q)
    # Each value is the stored sample of its period ...
    got = c2["value"].reindex(pd.to_datetime(stored["period_start"]))
    assert np.allclose(got.to_numpy(), stored["value"].to_numpy())
    # ... and each band is its own quarter hour's: the slot of that time in the stored baseline.
    slots = slot_of(c2.index.to_numpy())
    assert np.allclose(c2["expected"].to_numpy(), band.loc[slots, "expected"].to_numpy())
    assert np.allclose(c2["low"].to_numpy(), band.loc[slots, "low"].to_numpy())
    assert np.allclose(c2["high"].to_numpy(), band.loc[slots, "high"].to_numpy())
    # The usual value follows the daily curve: at 04:00 the quiet night's, at 20:00 the busy hour's.
    night, evening = c2.loc[pd.Timestamp("2024-03-17 04:00")], c2.loc[pd.Timestamp("2024-03-17 20:00")]
    assert night["expected"] == pytest.approx(bd.usual_throughput(datetime(2024, 3, 17, 4)), rel=0.05)
    assert evening["expected"] == pytest.approx(bd.usual_throughput(datetime(2024, 3, 17, 20)), rel=0.05)
    assert (c2["low"] < c2["expected"]).all() and (c2["expected"] < c2["high"]).all()
    # Two normal weeks: nothing is outside the band.
    assert not df["outside"].any()


def test_a_gap_has_no_value_but_keeps_its_band_and_a_learning_slot_has_no_band(
    learnt: Store, cat: Catalogue
) -> None:
    gap = bd.LEARNT - 3 * bd.Q
    with learnt.begin() as conn:
        conn.execute(
            kpi_samples.delete().where(kpi_samples.c.entity_id == "C3", kpi_samples.c.period_start == gap)
        )
    since = bd.LEARNT - timedelta(hours=2)
    with learnt.connect() as conn:
        df = bands.band_series(
            conn, cat, "latency_ms", level="cell", entity_id="C3", since=since, until=bd.LEARNT + 2 * bd.Q
        ).set_index("period_start")
    assert len(df) == 10
    assert np.isnan(df.loc[pd.Timestamp(gap), "value"]) and np.isfinite(df.loc[pd.Timestamp(gap), "expected"])
    # The two periods after the learnt history have no sample yet, and their slots (Monday 00:00 and
    # 00:15) learnt from the two Mondays before: a band, but no value.
    after = df.loc[pd.Timestamp(bd.LEARNT) :]
    assert after["value"].isna().all() and after["expected"].notna().all()
    # A site's band is kept too, and an entity never seen has neither value nor band.
    with learnt.connect() as conn:
        site = bands.band_series(
            conn, cat, "latency_ms", level="site", entity_id="S1", since=since, until=bd.LEARNT
        )
        none = bands.band_series(
            conn, cat, "latency_ms", level="cell", entity_id="C9", since=since, until=bd.LEARNT
        )
    assert site["expected"].notna().all() and site["value"].notna().all()
    assert none["value"].isna().all() and none["expected"].isna().all() and len(none) == 8


def test_outside_is_flagged_in_the_rules_bad_direction_only(degraded: Store, cat: Catalogue) -> None:
    # C2 doubles its throughput at the same time: unusual, but better, which the rule leaves alone.
    with degraded.begin() as conn:
        conn.execute(
            update(kpi_samples)
            .where(kpi_samples.c.entity_id == "C2", kpi_samples.c.kpi == "dl_throughput_mbps")
            .where(kpi_samples.c.period_start >= bd.BAD_FROM)
            .values(value=kpi_samples.c.value * 2)
        )
    with degraded.connect() as conn:
        df = bands.band_panel(
            conn, cat, ["dl_throughput_mbps", "latency_ms"], level="cell", entity_ids=["C1", "C2"],
            since=bd.LEARNT, until=bd.NOW,
        )  # fmt: skip
    bad = [bd.BAD_FROM + i * bd.Q for i in range(bd.BAD_PERIODS)]
    for kpi in ("dl_throughput_mbps", "latency_ms"):
        c1 = df[(df["kpi"] == kpi) & (df["entity_id"] == "C1")]
        assert c1.loc[c1["outside"], "period_start"].tolist() == [pd.Timestamp(t) for t in bad], kpi
    tput = df[(df["kpi"] == "dl_throughput_mbps") & (df["entity_id"] == "C1") & df["outside"]]
    assert (tput["value"] < tput["low"]).all()
    lat = df[(df["kpi"] == "latency_ms") & (df["entity_id"] == "C1") & df["outside"]]
    assert (lat["value"] > lat["high"]).all()
    c2 = df[(df["kpi"] == "dl_throughput_mbps") & (df["entity_id"] == "C2")]
    later = c2[c2["period_start"] >= bd.BAD_FROM]
    assert (later["value"] > later["high"]).all()  # far above usual, every period
    assert not c2["outside"].any()


def test_a_kpi_without_a_rule_or_a_level_it_keeps_no_band_at_is_refused(
    learnt: Store, cat: Catalogue
) -> None:
    with learnt.connect() as conn:
        for kpi, level in (("availability_pct", "cell"), ("nope", "cell"), ("latency_ms", "region")):
            with pytest.raises(bands.BandReadError):
                bands.band_series(
                    conn, cat, kpi, level=level, entity_id="C1", since=bd.LEARNT - bd.Q, until=bd.LEARNT
                )


# --- verdicts in words -------------------------------------------------------------------------------

NOW = datetime(2024, 3, 19, 18, 30)


def _row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "entity_id": "C1", "state": "normal", "value": 50.0, "expected": 48.0, "deviation": 0.04,
        "worst_deviation": None, "since": datetime(2024, 3, 4), "run": 0,
    }  # fmt: skip
    return base | kw


@pytest.mark.parametrize(
    ("row", "tone", "text"),
    [
        (
            _row(
                state="anomalous",
                deviation=-0.46,
                worst_deviation=-0.5,
                since=datetime(2024, 3, 19, 17, 40),
                run=4,
            ),
            "bad",
            "Downlink throughput 46% below usual since 17:40 UTC",
        ),
        (
            _row(state="anomalous", deviation=1.1, since=datetime(2024, 3, 18, 23, 0), run=9),
            "bad",
            "Downlink throughput 2.1x usual since Mon 23:00 UTC",
        ),
        (
            _row(
                state="anomalous",
                deviation=-0.05,
                worst_deviation=-0.6,
                since=datetime(2024, 3, 1, 9, 0),
                run=0,
            ),
            "bad",
            "Downlink throughput back in its usual band, not yet for long enough (anomalous since "
            "2024-03-01 09:00 UTC, worst 60% below usual)",
        ),
        (
            _row(deviation=-0.3, run=1),
            "warn",
            "Downlink throughput 30% below usual for the last 15 min (not yet an anomaly)",
        ),
        (_row(), "ok", "Downlink throughput within its usual band (50.0 Mbit/s, usual 48.0)"),
        (_row(state="learning", expected=None), "muted", "Downlink throughput: still learning what is usual"),
        (_row(state="no_data"), "muted", "Downlink throughput: no recent data"),
        (None, "muted", "Downlink throughput: no usual band yet"),
    ],
)
def test_a_verdict_reads_in_words(
    cat: Catalogue, row: dict[str, object] | None, tone: str, text: str
) -> None:
    v = bands.describe(cat.get("dl_throughput_mbps"), row, now=NOW, entity_id="C1")
    assert (v.tone, v.text, v.entity_id) == (tone, text, "C1")
    assert v.outside == (tone in ("bad", "warn"))


def test_deviation_words_match_the_detected_incidents_sentences() -> None:
    assert bands.deviation_words(-0.455) == "46% below usual"
    assert bands.deviation_words(0.3) == "30% above usual"
    assert bands.deviation_words(2.0) == "3.0x usual"


def test_degraded_cell_is_counted_ranked_first_and_drawn_with_its_out_of_band_kpis(
    degraded: Store, cat: Catalogue
) -> None:
    with degraded.connect() as conn:
        counts = bands.outside_counts(conn, cat)
        frame = bands.verdict_frame(conn, cat, level="cell", entity_ids=["C3", "C2", "C1"])
        shown = bands.entity_bands(conn, cat, level="cell", entity_ids=["C3", "C2", "C1"], now=bd.NOW, most=2)
        every = bands.entity_bands(
            conn,
            cat,
            level="cell",
            entity_ids=["C3", "C1"],
            now=bd.NOW,
            worst_first=False,
            only_outside=False,
        )
        choices = bands.series_choices(conn, cat, "latency_ms", level="cell", now=bd.NOW)
    # C1 is anomalous in throughput and latency, and so is its site; nothing else.
    assert counts["dl_throughput_mbps"] == {"cell": 1, "site": 1}
    assert counts["latency_ms"] == {"cell": 1, "site": 1}
    assert counts["drop_call_rate_pct"] == {"cell": 0, "site": 0}
    assert "availability_pct" not in counts  # no anomaly rule, no count
    assert bands.rank_entities(frame, ["C3", "C2", "C1"])[0] == "C1"
    assert [b.entity_id for b in shown] == ["C1", "C3"]  # the most out of band first, then given order
    c1 = shown[0]
    assert [v.kpi for v in c1.outside] == ["dl_throughput_mbps", "latency_ms"]
    assert c1.outside[0].text == "Downlink throughput 61% below usual since 01:00 UTC"
    assert c1.outside[1].text == "Latency 3.0x usual since 01:00 UTC"
    # Its KPIs out of band and the headline ones with a rule (dropped calls have no samples here).
    assert {v.kpi for v in c1.verdicts} == {"dl_throughput_mbps", "latency_ms", "drop_call_rate_pct"}
    assert set(c1.series["kpi"]) == {"dl_throughput_mbps", "latency_ms", "drop_call_rate_pct"}
    assert (c1.series["entity_id"] == "C1").all()
    # The last 24 hours up to the period of NOW, one row per quarter hour and KPI.
    assert c1.series["period_start"].max() == pd.Timestamp(bd.NOW)
    assert c1.series["period_start"].nunique() == 96
    assert int(c1.series["outside"].sum()) == 2 * bd.BAD_PERIODS
    # In the given order (a line's cells by share) with every KPI with a rule.
    assert [b.entity_id for b in every] == ["C3", "C1"]
    assert [v.kpi for v in every[0].verdicts] == [k.name for k in bands.band_kpis(cat)]
    assert choices.iloc[0]["entity_id"] == "C1" and choices.iloc[0]["tone"] == "bad"
    assert choices.iloc[0]["name"] == "c1 (Porto 1)"


def test_nothing_to_draw_before_any_verdict(store: Store, cat: Catalogue) -> None:
    bd.build_network(store)
    with store.connect() as conn:
        assert bands.entity_bands(conn, cat, level="cell", entity_ids=["C1"], now=bd.NOW) == []
        assert bands.outside_counts(conn, cat)["latency_ms"] == {"cell": 0, "site": 0}
        assert bands.verdict_frame(conn, cat, level="cell", entity_ids=[]).empty


def test_counts_follow_the_verdicts_as_they_clear(degraded: Store, cat: Catalogue) -> None:
    # C1 back to normal: two periods back in band (clear_after: 30m) and the verdicts are normal.
    with degraded.connect() as conn:
        before = bands.verdicts_mark(conn)
    with degraded.begin() as conn:
        refresh_anomalies(conn, cat, now=bd.NOW + timedelta(minutes=5))  # no new period: nothing rewritten
    with degraded.connect() as conn:
        assert bands.verdicts_mark(conn) == before
    bd.write_samples(degraded, bd.sample_rows(bd.NOW, bd.NOW + 3 * bd.Q))
    for k in (1, 2, 3):
        with degraded.begin() as conn:
            refresh_anomalies(conn, cat, now=bd.NOW + k * bd.Q)
        with degraded.connect() as conn:
            mark = bands.verdicts_mark(conn)
        assert mark != before  # each pass that rewrote the verdicts moves the mark the wall caches by
        before = mark
    with degraded.connect() as conn:
        counts = bands.outside_counts(conn, cat)
        states = dict(
            conn.execute(
                select(kpi_anomalies.c.kpi, kpi_anomalies.c.state).where(kpi_anomalies.c.entity_id == "C1")
            ).all()
        )
    assert states == {"dl_throughput_mbps": "normal", "latency_ms": "normal"}
    assert counts["dl_throughput_mbps"] == {"cell": 0, "site": 0}


# --- the figure ----------------------------------------------------------------------------------------


def _frame(kpi: str, n: int = 40) -> pd.DataFrame:
    times = pd.date_range("2024-03-18 00:00", periods=n, freq="15min")
    expected = np.full(n, 50.0)
    value = expected.copy()
    value[5] = 20.0  # far below
    low, high = expected - 10, expected + 10
    low[2], high[2] = -500.0, 600.0  # a slot learnt from disturbed values: a band 55 times wider
    return pd.DataFrame(
        {"kpi": kpi, "entity_id": "C1", "period_start": times, "value": value, "expected": expected,
         "low": low, "high": high, "outside": value < low}
    )  # fmt: skip


def test_band_figure_shades_the_band_marks_what_is_outside_and_keeps_the_series_readable() -> None:
    fig = band_figure(_frame("dl_throughput_mbps"), [("dl_throughput_mbps", "Throughput")])
    names = [t.name for t in fig.data]
    assert names == ["usual band", "usual band", "usual", "Throughput", "outside usual band"]
    low, high = fig.data[0], fig.data[1]
    assert high.fill == "tonexty" and low.fill is None  # the band is the area between low and high
    (marks,) = [t for t in fig.data if t.name == "outside usual band"]
    assert list(marks.y) == [20.0] and marks.marker.symbol == "triangle-down"
    # The one wide slot does not flatten the series: the axis follows the values and the typical band.
    lo, hi = fig.layout.yaxis.range
    assert 0 <= lo < 20 and 60 <= hi < 70


def test_band_figure_stacks_many_panels_and_says_why_it_is_empty() -> None:
    kpis = [f"k{i}" for i in range(7)]
    df = pd.concat([_frame(k) for k in kpis], ignore_index=True)
    fig = band_figure(df, [(k, k.upper()) for k in kpis])  # 7 panels: the lowest starts at exactly 0
    domains = [fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain for i in range(7)]
    assert all(0.0 <= a < b <= 1.0 for a, b in domains) and domains[-1][0] == 0.0
    empty = band_figure(df.iloc[0:0], [("k0", "K0")], empty_text="No samples in the last 24 h")
    assert empty.layout.annotations[0].text == "No samples in the last 24 h"

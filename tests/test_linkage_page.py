"""The Linkage page's links, evidence, what-if, exports and executive summary, on both backends."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import insert

from dashboard import ids
from dashboard.kpis import load_catalogue
from dashboard.linkage_figures import STRENGTH_STYLE, driver_tree_figure, sparkline_uri
from dashboard.store.db import Store
from dashboard.store.schema import kpi_links
from tests import band_data
from tests.apps import new_app
from tests.browser import settings_for
from tests.test_app import _text

NOW = datetime(2024, 5, 15, 12, 0, 0)
CATALOGUE = load_catalogue(Path(__file__).resolve().parents[1] / "kpi_definitions.yaml")


def _link(driver: str, target: str, strength: str, effect: float | None, lo: float | None, hi: float | None,
          *, scope: str = "all", declared: bool = True, step: float = 0.1) -> dict[str, Any]:  # fmt: skip
    return {
        "driver": driver,
        "target": target,
        "scope": scope,
        "declared": declared,
        "expected": "positive",
        "level": "cell",
        "grain_s": 86400,
        "step": step,
        "effect": effect,
        "ci_low": lo,
        "ci_high": hi,
        "lag_s": 0 if effect is not None else None,
        "n": 58000,
        "p_value": 0.001 if strength == "strong" else 0.6,
        "strength": strength,
        "sentence": f"{driver} -> {target}: {strength}",
        "evidence": {
            "binned": [{"x": 0.1 * i, "y": 2.0 + 2.4 * i, "n": 100} for i in range(5)],
            "fit": {"slope": 24.0, "intercept": 2.0},
            "lag_profile": [
                {"lag": 0, "lag_s": 0, "effect": 2.4, "ci_low": 1.8, "ci_high": 3.0},
                {"lag": 1, "lag_s": 86400, "effect": 0.3, "ci_low": -0.2, "ci_high": 0.8},
            ],
        },
        "since": datetime(2024, 4, 15),
        "until": NOW,
        "computed_at": NOW,
    }


LINKS = [
    _link("drop_call_rate_pct", "tickets_per_1k_subscribers", "strong", 2.4, 1.8, 3.0),
    _link("call_setup_success_pct", "tickets_per_1k_subscribers", "weak", -0.1, -0.5, 0.3, step=1.0),
    _link("latency_ms", "churn_rate_pct", "strong", 0.05, 0.02, 0.08, declared=False, step=10.0),
    _link("drop_call_rate_pct", "tickets_per_1k_subscribers", "moderate", 1.0, 0.2, 1.8, scope="region:R1"),
]


@pytest.fixture
def linked(store: Store) -> Iterator[Store]:
    with store.begin() as conn:
        conn.execute(insert(kpi_links), LINKS)
    app = new_app(store, settings_for(store))
    with app.server.app_context():
        yield store


def page(name: str) -> ModuleType:
    return importlib.import_module(f"dashboard.pages.{name}")


def test_links_of_a_scope_fall_back_to_network_wide_ones(linked: Store) -> None:
    linkage = page("linkage")
    df, note = linkage.links_frame(linked, linkage.view_scope(None, None))
    assert list(df["strength"]) == ["strong", "strong", "weak"]  # strongest first, weak ones kept
    assert df.loc[0, "short"] == "+2.4 [+1.8, +3]"
    df, note = linkage.links_frame(linked, linkage.view_scope("R1", None))
    assert list(df["strength"]) == ["moderate"] and note == ""
    df, note = linkage.links_frame(linked, linkage.view_scope(None, "enterprise"))
    assert len(df) == 3 and "showing network-wide links" in note


def test_region_and_segment_together_show_the_region_and_say_so() -> None:
    from dashboard.pages.linkage import view_scope

    scope = view_scope("R1", "enterprise")
    assert (scope.level, scope.entity_id, scope.links) == ("region", "R1", "region:R1")
    assert "not both" in scope.note
    assert view_scope("any", "any").links == "all"
    assert view_scope(None, "bogus") == view_scope(None, None)  # an unknown segment filters nothing


def test_what_if_uses_the_effect_and_its_interval_per_unit_in_the_better_direction(linked: Store) -> None:
    from dashboard.pages.linkage import what_if_text

    link = LINKS[0]  # +2.4 tickets per 1k per +0.1 pp (CI 1.8 to 3.0): 24 per pp (18 to 30)
    text = what_if_text(link, 0.2, CATALOGUE)  # improving a lower-is-better KPI lowers it by 0.2 pp
    assert "improves by 0.2 % (it falls)" in text
    assert "change by -4.8 tickets/day (95% interval -6 to -3.6)" in text
    weak = what_if_text(LINKS[1], 1.0, CATALOGUE)  # CSSR is higher-is-better: +1 pp
    assert "change by -0.1 tickets/day (95% interval -0.5 to +0.3)" in weak
    assert "Caution: the link is weak" in weak


def test_link_view_draws_evidence_and_the_best_lag(linked: Store) -> None:
    linkage = page("linkage")
    sentence, evidence, lags = linkage.link_view(
        linked, CATALOGUE, "all", "drop_call_rate_pct->tickets_per_1k_subscribers"
    )
    assert sentence.startswith("drop_call_rate_pct -> tickets_per_1k_subscribers: strong (strong evidence)")
    assert list(evidence.data[0].y) == [2.0 + 2.4 * i for i in range(5)]
    assert list(evidence.data[1].x) == [0.0, 0.4]
    assert [round(y, 6) for y in evidence.data[1].y] == [2.0, 11.6]  # the fit: 2 + 24 x
    bars = lags.data[0]
    assert list(bars.x) == [0.0, 1.0] and list(bars.marker.pattern.shape) == ["", "/"]  # lag 0 is best
    none = linkage.link_view(linked, CATALOGUE, "all", "nope->nothing")
    assert none[0] == "" and "Choose a link" in none[1].layout.annotations[0].text


def test_driver_tree_shows_strength_by_colour_pattern_and_word() -> None:
    import pandas as pd

    links = pd.DataFrame(LINKS[:3])
    links["short"] = ["a", "b", "c"]
    labels = {k.name: k.label for k in CATALOGUE.kpis}
    domain = {k.name: k.domain for k in CATALOGUE.kpis}
    fig = driver_tree_figure(links, labels, domain, selected="drop_call_rate_pct->tickets_per_1k_subscribers")
    edges = [t for t in fig.data if t.mode == "lines" and t.showlegend is False]
    weak = [e for e in edges if e.line.color == STRENGTH_STYLE["weak"][0]]
    assert len(weak) == 1 and weak[0].line.dash == "dash"
    selected = [e for e in edges if e.line.width == STRENGTH_STYLE["strong"][2] + 3]
    assert len(selected) == 1
    mids = next(t for t in fig.data if t.name == "links")
    assert set(mids.customdata) == {f"{r['driver']}->{r['target']}" for r in LINKS[:3]}
    nodes = next(t for t in fig.data if t.name == "kpis")
    xs = dict(zip(nodes.text, nodes.x, strict=True))
    assert xs["Dropped call rate"] < xs["Tickets per 1,000 subscribers"]  # network left, business right
    legend = {t.name for t in fig.data if t.showlegend is not False}
    assert {"strong", "weak", "contradicted", "no data"} <= legend


def test_links_csv_and_summary(linked: Store) -> None:
    linkage = page("linkage")
    name, text = linkage.chart_csv(
        linked, CATALOGUE, "links", {"region": "any", "segment": "any"}, "all", "", NOW
    )
    assert name == "vantage-linkage-links-20240515-1200.csv"
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["driver", "target", "scope"] and len(text.splitlines()) == 4
    _, lags = linkage.chart_csv(
        linked, CATALOGUE, "lags", {}, "all", "drop_call_rate_pct->tickets_per_1k_subscribers", NOW
    )
    assert lags.splitlines() == ["lag,lag_s,effect,ci_low,ci_high", "0,0,2.4,1.8,3.0", "1,86400,0.3,-0.2,0.8"]
    text = _text(page("linkage_summary").layout())
    assert "drop_call_rate_pct -> tickets_per_1k_subscribers: strong" in text
    assert "call_setup_success_pct -> tickets_per_1k_subscribers: weak — weak: not supported" in text


def test_sparkline_is_an_svg_path_scaled_to_its_box() -> None:
    uri = sparkline_uri([1.0, 2.0, None, 3.0], width=100, height=40)
    assert uri.startswith("data:image/svg+xml;utf8,")
    assert "M2.0%2C37.0" in uri and "L98.0%2C3.0" in uri  # lowest at the bottom, highest at the top
    assert "path" not in sparkline_uri([1.0])


# --- One KPI against its usual band -------------------------------------------------------------------


def find(component: Any) -> list[Any]:
    """Every component in a layout tree."""
    if isinstance(component, list | tuple):
        return [c for part in component for c in find(part)]
    if component is None or isinstance(component, str | int | float):
        return []
    return [component, *find(getattr(component, "children", None))]


def test_a_kpi_of_one_cell_or_site_is_drawn_against_its_usual_band(store: Store) -> None:
    cat = band_data.catalogue()
    band_data.degraded_silently(store, cat)
    app = new_app(store, settings_for(store), clock=lambda: band_data.NOW)
    linkage = page("linkage")
    with app.server.app_context():
        # With no deep link the section opens on the most unusual series of the first KPI with a rule.
        section = linkage.vs_section(store, cat, linkage.filters_from_query({}), band_data.NOW)
        choice = linkage.vs_from_query(cat, "latency_ms:site:S1")
        options = linkage.vs_options(store, cat, choice, band_data.NOW)
        figure, verdict = linkage.vs_view(store, cat, choice, "24h", band_data.NOW)
        week, _ = linkage.vs_view(store, cat, choice, "90d", band_data.NOW)
        fig_url = linkage.vs_outputs(
            store, cat, "dl_throughput_mbps", "cell", "C2", {"range": "24h", "region": "any"}, band_data.NOW
        )
        moved = linkage.vs_entity_options(store, cat, "latency_ms", "site", "C1", band_data.NOW)
    (dropdown,) = [c for c in find(section) if getattr(c, "id", None) == ids.LINKAGE_VS_ENTITY]
    assert dropdown.value == "C1" and dropdown.options[0]["label"].startswith("▲ c1 (Porto 1) — Downlink")
    assert [o["value"] for o in options] == ["S1", "S2"]  # the anomalous site first
    # The latency doubled: about twice its usual value (the usual value is the history's median).
    said = _text(verdict)
    assert said.startswith("▲ Latency ") and said.endswith(" usual since 01:00 UTC"), said
    assert any(w in said for w in ("2.0x", "2.1x", "99% above", "98% above")), said
    bands_drawn = [t for t in figure.data if t.fill == "tonexty"]
    assert len(bands_drawn) == 1 and len(bands_drawn[0].x) == 96  # 24 h of quarter hours
    (marks,) = [t for t in figure.data if t.name == "outside usual band"]
    assert len(marks.x) == band_data.BAD_PERIODS
    assert "Site S1: Latency against its usual band, last 24 h (UTC)" in figure.layout.title.text
    # 90 days is more than a band is drawn over: seven days of the learnt history instead.
    assert "last 7 days" in week.layout.title.text
    (week_band,) = [t for t in week.data if t.fill == "tonexty"]
    assert len(week_band.x) == 7 * 96
    # The controls' choice is kept in the query string, the page's filters with it.
    _, _, search = fig_url
    assert search == "?range=24h&vs=dl_throughput_mbps%3Acell%3AC2"
    # A level change keeps the KPI and moves to the most unusual entity of that level.
    assert moved[1] == "S1" and [o["value"] for o in moved[0]] == ["S1", "S2"]


def test_the_usual_band_choice_is_read_leniently_from_the_query_string() -> None:
    from dashboard.pages.linkage import VsChoice, vs_choice, vs_from_query

    assert vs_from_query(CATALOGUE, "latency_ms:cell:C:1") == VsChoice("latency_ms", "cell", "C:1")
    assert vs_from_query(CATALOGUE, "") == VsChoice("drop_call_rate_pct", "cell", None)  # first with a rule
    assert vs_from_query(CATALOGUE, "availability_pct:region:X") == VsChoice(
        "drop_call_rate_pct", "cell", "X"
    )
    assert vs_choice(CATALOGUE, {"x": 1}, ["a"], 7) == VsChoice("drop_call_rate_pct", "cell", None)
    assert VsChoice("latency_ms", "site", "S1").key() == "latency_ms:site:S1"

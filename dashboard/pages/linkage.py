"""Linkage (/linkage): which network KPIs move which business KPIs, by how much, how surely, at what stake.

KPI cards (status, trend, threshold) for the scope chosen by the region and segment filters; the
driver tree of measured links (dashboard/linkage stores them in ``kpi_links``) whose edges show
effect and confidence; a selected link's evidence (binned scatter with the fit, lag profile) and a
"what if"; revenue at risk now and over time; one KPI of one cell or site against its usual band.
Filters live in the query string
(``?region=R1&segment=enterprise&range=7d&link=drop_call_rate_pct->tickets_per_1k_subscribers``,
``&vs=latency_ms:cell:C1`` for the series drawn against its band).
Every chart exports as PNG (its camera button) and its data as CSV; ``/linkage/summary`` is the
printable one-page executive summary.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx, dcc, html
from sqlalchemy import select

from dashboard import guard, ids, readiness
from dashboard.context import current_catalogue, current_settings, current_store, current_time
from dashboard.figures import band_figure, empty_figure
from dashboard.kpi_eval.bands import (
    band_kpis,
    band_series,
    describe,
    outside_counts,
    series_choices,
    verdict_frame,
)
from dashboard.kpi_eval.read import KpiReadError, current, series
from dashboard.kpis import Catalogue, KpiDefinition
from dashboard.linkage.read import link as read_link
from dashboard.linkage.read import links as read_links
from dashboard.linkage_figures import (
    driver_tree_figure,
    evidence_figure,
    lag_profile_figure,
    link_key,
    series_figure,
    sparkline_uri,
)
from dashboard.pages import VERDICT_MARK, fmt_time, kpi_title, store_error, verdict_list
from dashboard.privacy import csv_safe
from dashboard.store.db import Store
from dashboard.store.schema import regions

dash.register_page(
    __name__, access="read", path="/linkage", name="Linkage", title="Vantage · Linkage", order=2
)

ANY = "any"
SEGMENTS = ("consumer", "smb", "enterprise")
RANGES = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_RANGE = "7d"
STATUS_MARK = {"ok": "✓ OK", "warning": "◆ WARNING", "critical": "▲ CRITICAL", "no_data": "? NO DATA"}
STRENGTH_WORD = {
    "strong": "strong evidence",
    "moderate": "moderate evidence",
    "weak": "weak: not supported by the data",
    "contradicted": "contradicted: the data show the opposite sign",
    "no_data": "no data to measure it",
}
PNG: Any = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
#: Levels a KPI is drawn against its usual band at, and the longest window drawn (15-minute values).
VS_LEVELS = {"cell": "Cell", "site": "Site"}
VS_MAX = timedelta(days=7)


class Scope(NamedTuple):
    """Where the page looks: a roll-up level and entity, the links' scope and what to tell the reader."""

    level: str
    entity_id: str
    links: str
    label: str
    note: str


def view_scope(region: str | None, segment: str | None) -> Scope:
    """The scope of the filters; region and segment together are shown as the region (said so)."""
    region = None if region in (None, "", ANY) else region
    segment = segment if segment in SEGMENTS else None
    if region:
        note = (
            f"KPIs are rolled up per region or per segment, not both: showing region {region}."
            if segment
            else ""
        )
        return Scope("region", region, f"region:{region}", f"region {region}", note)
    if segment:
        return Scope("segment", segment, f"segment:{segment}", f"{segment} lines", "")
    return Scope("network", "all", "all", "the whole network", "")


def filters_from_query(query: Mapping[str, Any]) -> dict[str, str]:
    def one(key: str) -> str:
        v = query.get(key) or ""
        return str(v[0] if isinstance(v, list) and v else v)

    rng = one("range")
    return {
        "region": one("region") or ANY,
        "segment": one("segment") if one("segment") in SEGMENTS else ANY,
        "range": rng if rng in RANGES else DEFAULT_RANGE,
        "link": one("link"),
        "vs": one("vs")[:300],
    }


def query_string(filters: Mapping[str, str]) -> str:
    keep = {k: v for k, v in filters.items() if v and v != ANY and not (k == "range" and v == DEFAULT_RANGE)}
    return f"?{urlencode(keep)}" if keep else ""


# --- Data (each callback calls one of these; bench/linkage.py times them) ---------------------


def region_options(store: Store) -> list[dict[str, str]]:
    with store.connect() as conn:
        rows = conn.execute(select(regions.c.id, regions.c.name).order_by(regions.c.name)).all()
    return [{"label": "All regions", "value": ANY}] + [{"label": str(n), "value": str(i)} for i, n in rows]


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None or pd.isna(value):
        return "—"
    v = float(value)
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3g}" if abs(v) < 10 else f"{v:,.1f}"
    return f"{text} {unit}".strip()


def kpi_cards(store: Store, catalogue: Catalogue, scope: Scope) -> list[dict[str, Any]]:
    """The headline KPIs with value, status, since, sparkline and threshold text for ``scope``."""
    with store.connect() as conn:
        items = current(conn, catalogue, level=scope.level, entity_id=scope.entity_id)
    return [i for i in items if i.get("headline")]


def _threshold_text(kpi: KpiDefinition) -> str:
    parts = []
    for level in ("warning", "critical"):
        t = getattr(kpi.thresholds, level)
        if t is not None:
            parts.append(f"{level} {t.op} {t.value:g}")
    return ", ".join(parts) or "no threshold"


def card_components(
    cards: list[dict[str, Any]], catalogue: Catalogue, currency: str = "EUR", *, waiting: str | None = None
) -> list[Any]:
    """One card per KPI; ``waiting`` (the preparation's step) replaces the cards while they are
    merely not computed yet."""
    if waiting is not None and all((c.get("status") or "no_data") == "no_data" for c in cards):
        return [dbc.Alert(waiting, color="info", className="vt-waiting")]
    if not cards:
        return [
            dbc.Alert(
                "No KPI values yet: KPIs are evaluated every few minutes once data arrives.",
                color="secondary",
            )
        ]
    out = []
    for c in cards:
        kpi = catalogue.get(str(c["name"]))
        status = str(c.get("status") or "no_data")
        out.append(
            dbc.Col(
                html.Div(
                    [
                        html.Div(kpi.label, className="vt-card-label"),
                        html.Div(
                            fmt_value(c.get("value"), unit_text(kpi.unit, currency)),
                            className="vt-card-value",
                        ),
                        html.Div(
                            STATUS_MARK.get(status, status), className=f"vt-card-status vt-status-{status}"
                        ),
                        html.Img(
                            src=sparkline_uri(list(c.get("sparkline") or [])),
                            className="vt-sparkline",
                            alt="",
                        ),
                        html.Div(_threshold_text(kpi), className="vt-card-threshold"),
                    ],
                    className=f"vt-kpi-card vt-kpi-card-{status}",
                    id={"type": ids.LINKAGE_CARD, "kpi": kpi.name},
                ),
                xs=6,
                md=4,
                xl=True,
            )
        )
    return out


TREE_DISCOVERED = 6  # discovered links drawn on the tree (the strongest); the table lists them all


def tree_links(links: pd.DataFrame) -> pd.DataFrame:
    """Declared links, and the strongest few discovered ones, for the tree."""
    if links.empty:
        return links
    declared = links[links["declared"].astype(bool)]
    found = links[~links["declared"].astype(bool) & links["strength"].isin(["strong", "moderate"])]
    found = found.assign(_p=found["p_value"].fillna(1.0)).sort_values("_p").head(TREE_DISCOVERED)
    return pd.concat([declared, found.drop(columns="_p")], ignore_index=True)


def unit_text(unit: str, currency: str) -> str:
    """The catalogue says ``currency``; the reader sees the operator's (EUR/h)."""
    return unit.replace("currency", currency)


def links_frame(store: Store, scope: Scope) -> tuple[pd.DataFrame, str]:
    """The measured links of ``scope`` (falling back to network-wide ones) and a note when it fell back."""
    with store.connect() as conn:
        df = read_links(conn, scope.links)
        note = ""
        if df.empty and scope.links != "all":
            df = read_links(conn, "all")
            note = f"No links measured for {scope.label} alone yet; showing network-wide links."
    if not df.empty:
        df["short"] = [_short(r) for r in df.itertuples(index=False)]
        df["key"] = [link_key(a, b) for a, b in zip(df["driver"], df["target"], strict=True)]
        order = {"strong": 0, "moderate": 1, "contradicted": 2, "weak": 3, "no_data": 4}
        df = (
            df.assign(_o=df["strength"].map(order).fillna(9))
            .sort_values(["_o", "driver", "target"])
            .drop(columns="_o")
        )
    return df.reset_index(drop=True), note


def _short(row: Any) -> str:
    if row.effect is None or pd.isna(row.effect):
        return "n/a"
    lo, hi = row.ci_low, row.ci_high
    ci = f" [{lo:+.3g}, {hi:+.3g}]" if lo is not None and not pd.isna(lo) else ""
    return f"{row.effect:+.3g}{ci}"


def link_detail(store: Store, scope: str, key: str) -> dict[str, Any] | None:
    """One link with its evidence, or None."""
    driver, _, target = key.partition("->")
    with store.connect() as conn:
        return read_link(conn, scope, driver, target)


def what_if_text(link: Mapping[str, Any], improve_by: float | None, catalogue: Catalogue) -> str:
    """ "Improve <driver> by X -> expected change in <target> (95% interval)" from the link's effect."""
    if improve_by is None or link.get("effect") is None:
        return "Enter how much the network KPI improves to see the expected business change."
    driver, target = catalogue.get(str(link["driver"])), catalogue.get(str(link["target"]))
    delta = -abs(improve_by) if driver.direction == "lower_is_better" else abs(improve_by)
    per_unit = float(link["effect"]) / float(link["step"])
    lo, hi = (float(link["ci_low"]) / float(link["step"]), float(link["ci_high"]) / float(link["step"]))
    change, a, b = per_unit * delta, lo * delta, hi * delta
    a, b = min(a, b), max(a, b)
    verb = "falls" if delta < 0 else "rises"
    strength = str(link.get("strength"))
    caveat = (
        ""
        if strength in ("strong", "moderate")
        else f" Caution: the link is {STRENGTH_WORD.get(strength, strength)}."
    )
    return (
        f"If {driver.label.lower()} improves by {abs(improve_by):g} {driver.unit} (it {verb}), "
        f"{target.label.lower()} is expected to change by {change:+.3g} {target.unit} "
        f"(95% interval {a:+.3g} to {b:+.3g}).{caveat}"
    )


def revenue_series(
    store: Store, catalogue: Catalogue, scope: Scope, since: datetime, until: datetime
) -> pd.DataFrame:
    """Revenue at risk per hour over time, hourly, for the scope (network or region)."""
    level, entity = (
        (scope.level, scope.entity_id) if scope.level in ("network", "region") else ("network", "all")
    )
    with store.connect() as conn:
        return series(
            conn,
            catalogue,
            "revenue_at_risk_per_hour",
            level=level,
            entity_id=entity,
            grain_s=3600,
            since=since,
            until=until,
        )


def revenue_now(cards: list[dict[str, Any]]) -> float | None:
    for c in cards:
        if c.get("name") == "revenue_at_risk_per_hour":
            v = c.get("value")
            return None if v is None or pd.isna(v) else float(v)
    return None


def links_table(df: pd.DataFrame, catalogue: Catalogue) -> Any:
    if df.empty:
        return html.P("No links measured yet.", className="vt-count")

    def label(name: str) -> str:
        try:
            return catalogue.get(name).label
        except KeyError:
            return name

    head = html.Thead(
        html.Tr(
            [html.Th(h) for h in ("Driver", "Target", "Strength", "Effect per step [95% CI]", "Lag", "n", "")]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(label(r.driver)),
                    html.Td(label(r.target)),
                    html.Td(
                        str(r.strength).replace("_", " "), className=f"vt-strength vt-strength-{r.strength}"
                    ),
                    html.Td(r.short),
                    html.Td("—" if r.lag_s is None or pd.isna(r.lag_s) else f"{float(r.lag_s) / 86400:g} d"),
                    html.Td(f"{int(r.n):,}"),
                    html.Td("declared" if r.declared else "discovered", className="vt-count"),
                ],
                id={"type": ids.LINKAGE_ROW, "key": r.key},
                className="vt-link-row",
                n_clicks=0,
            )
            for r in df.itertuples(index=False)
        ]
    )
    return dbc.Table([head, body], hover=True, size="sm", className="vt-links-table")


# --- One KPI against its usual band ------------------------------------------------------------


class VsChoice(NamedTuple):
    """The series drawn against its usual band: a KPI with an anomaly rule, a level, an entity."""

    kpi: str
    level: str
    entity: str | None

    def key(self) -> str:
        """``latency_ms:cell:C1``, the ``vs`` of the query string (empty without an entity)."""
        return f"{self.kpi}:{self.level}:{self.entity}" if self.entity else ""


def vs_choice(
    catalogue: Catalogue, kpi: Any = None, level: Any = None, entity: Any = None
) -> VsChoice | None:
    """The series asked for, corrected to one the catalogue keeps a band for (None when no KPI has an
    anomaly rule): an unknown KPI is the first with a rule, an unknown level the first it keeps."""
    ruled = [k for k in band_kpis(catalogue) if k.anomaly is not None]
    if not ruled:
        return None
    k = next((r for r in ruled if r.name == kpi), ruled[0])
    levels = [lv for lv in VS_LEVELS if k.anomaly is not None and lv in k.anomaly.levels]
    if not levels:
        return None
    lv = level if level in levels else levels[0]
    ent = entity.strip()[:128] if isinstance(entity, str) and entity.strip() else None
    return VsChoice(k.name, lv, ent)


def vs_from_query(catalogue: Catalogue, text: str) -> VsChoice | None:
    """``vs=latency_ms:cell:C1`` (the entity may itself hold colons)."""
    kpi, _, rest = (text or "").partition(":")
    level, _, entity = rest.partition(":")
    return vs_choice(catalogue, kpi or None, level or None, entity or None)


def vs_default(store: Store, catalogue: Catalogue, now: datetime) -> VsChoice | None:
    """Without a deep link: the KPI with the most cells (then sites) outside their usual band now,
    the catalogue's order on ties, at its first level that has any series (None: no series yet)."""
    with store.connect() as conn:
        counts = outside_counts(conn, catalogue, levels=tuple(VS_LEVELS))
        ranked = sorted(counts, key=lambda k: (-counts[k].get("cell", 0), -counts[k].get("site", 0)))
        for name in ranked:
            for level in counts[name]:
                if len(series_choices(conn, catalogue, name, level=level, now=now, limit=1)):
                    return VsChoice(name, level, None)
    return None


def vs_options(store: Store, catalogue: Catalogue, choice: VsChoice, now: datetime) -> list[dict[str, str]]:
    """The entities of the KPI and level, most out of usual band first, each with its verdict; the
    chosen one kept even when it is not among the first."""
    with store.connect() as conn:
        rows = series_choices(conn, catalogue, choice.kpi, level=choice.level, now=now)
    options = [
        {"label": f"{VERDICT_MARK.get(r.tone, '·')} {r.name} — {r.text}", "value": r.entity_id}
        for r in rows.itertuples(index=False)
    ]
    if choice.entity and choice.entity not in {o["value"] for o in options}:
        options.append({"label": choice.entity, "value": choice.entity})
    return options


def vs_view(
    store: Store, catalogue: Catalogue, choice: VsChoice | None, rng: str | None, now: datetime
) -> tuple[go.Figure, Any]:
    """The series over the page's time range (at most ``VS_MAX``) against its usual band, and its
    verdict in words."""
    if choice is None:
        return empty_figure("No KPI in the catalogue has an anomaly rule"), ""
    if not choice.entity:
        return empty_figure("Choose a cell or site"), ""
    window = min(RANGES.get(rng or DEFAULT_RANGE, RANGES[DEFAULT_RANGE]), VS_MAX)
    kpi = catalogue.get(choice.kpi)
    end = now.replace(second=0, microsecond=0)
    with store.connect() as conn:
        df = band_series(
            conn,
            catalogue,
            choice.kpi,
            level=choice.level,
            entity_id=choice.entity,
            since=end - window,
            until=end,
        )
        verdicts = verdict_frame(conn, catalogue, level=choice.level, entity_ids=[choice.entity])
    mine = verdicts[verdicts["kpi"] == choice.kpi].to_dict("records")
    verdict = describe(kpi, mine[0] if mine else None, now=now, entity_id=choice.entity)
    days = window / timedelta(days=1)
    span = f"{days:g} days" if days > 1 else f"{window / timedelta(hours=1):g} h"
    title = (
        f"{VS_LEVELS[choice.level]} {choice.entity}: {kpi.label} against its usual band, last {span} (UTC)"
    )
    figure = band_figure(
        df.assign(kpi=choice.kpi, entity_id=choice.entity),
        [(choice.kpi, kpi_title(choice.kpi))],
        title=title,
        panel_height=300,
        empty_text=f"No samples or usual band for {choice.entity} in the last {span}",
    )
    return figure, verdict_list([verdict])


def vs_entity_options(
    store: Store, catalogue: Catalogue, kpi: Any, level: Any, entity: Any, now: datetime
) -> tuple[list[dict[str, str]], Any]:
    """The entity choices of a KPI and level, and the entity to show: the current one when it has
    that series, else the most unusual."""
    choice = vs_choice(catalogue, kpi, level, entity)
    if choice is None:
        return [], None
    options = vs_options(store, catalogue, choice._replace(entity=None), now)
    values = [o["value"] for o in options]
    return options, (choice.entity if choice.entity in values else (values[0] if values else None))


def vs_outputs(
    store: Store,
    catalogue: Catalogue,
    kpi: Any,
    level: Any,
    entity: Any,
    filters: Mapping[str, Any],
    now: datetime,
) -> tuple[Any, Any, str]:
    """The chart, the verdict and the query string for the series the controls name."""
    choice = vs_choice(catalogue, kpi, level, entity)
    figure, verdict = vs_view(store, catalogue, choice, str(filters.get("range") or ""), now)
    keep = {k: str(v) for k, v in filters.items() if k in ("region", "segment", "range", "link") and v}
    return figure, verdict, query_string({**keep, "vs": choice.key() if choice else ""})


def vs_controls(catalogue: Catalogue, choice: VsChoice | None, options: list[dict[str, str]]) -> dbc.Row:
    kpis = [{"label": k.label, "value": k.name} for k in band_kpis(catalogue)]
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("KPI", html_for=ids.LINKAGE_VS_KPI),
                    dbc.Select(id=ids.LINKAGE_VS_KPI, options=kpis, value=choice.kpi if choice else None),
                ],
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Level", html_for=ids.LINKAGE_VS_LEVEL),
                    dbc.Select(
                        id=ids.LINKAGE_VS_LEVEL,
                        options=[{"label": v, "value": k} for k, v in VS_LEVELS.items()],
                        value=choice.level if choice else "cell",
                    ),
                ],
                md=2,
            ),
            dbc.Col(
                [
                    dbc.Label("Cell or site (most unusual first)", html_for=ids.LINKAGE_VS_ENTITY),
                    dcc.Dropdown(
                        id=ids.LINKAGE_VS_ENTITY,
                        options=options,
                        value=choice.entity if choice else None,
                        clearable=False,
                        placeholder="Type a name or id",
                        className="vt-vs-entity",
                    ),
                ],
                md=7,
            ),
        ],
        className="g-3 mb-2",
    )


def vs_section(store: Store, catalogue: Catalogue, filters: Mapping[str, str], now: datetime) -> list[Any]:
    """A KPI of one cell or site against its usual band (the deep link's, else the most unusual)."""
    choice = vs_from_query(catalogue, filters.get("vs") or "")
    if choice is not None and not filters.get("vs"):
        choice = vs_default(store, catalogue, now) or choice
    options: list[dict[str, str]] = []
    figure: go.Figure = empty_figure("No KPI in the catalogue has an anomaly rule")
    verdict: Any = ""
    if choice is not None:
        try:
            options = vs_options(store, catalogue, choice, now)
            if not choice.entity and options:
                choice = choice._replace(entity=options[0]["value"])
            figure, verdict = vs_view(store, catalogue, choice, filters.get("range"), now)
        except (KpiReadError, ValueError):
            figure = empty_figure("This series has no usual band")
    return [
        html.H2("A KPI against its usual band"),
        html.P(
            "The usual value for each quarter hour of a weekday or weekend day, learnt per cell and "
            "site, and the band the anomaly rule leaves alone; marks are periods outside it.",
            className="vt-count",
        ),
        vs_controls(catalogue, choice, options),
        html.Div(verdict, id=ids.LINKAGE_VS_VERDICT),
        dcc.Graph(id=ids.LINKAGE_VS_GRAPH, figure=figure, className="vt-graph", config=PNG),
    ]


# --- Layout ------------------------------------------------------------------------------------


def _csv_button(chart: str) -> dbc.Button:
    return dbc.Button(
        "CSV",
        id={"type": ids.LINKAGE_CSV, "chart": chart},
        size="sm",
        color="secondary",
        outline=True,
        className="ms-2",
    )


def layout(**query: str) -> html.Div:
    filters = filters_from_query(query)
    try:
        store = current_store()
        region_opts = region_options(store)
        vs = vs_section(store, current_catalogue(), filters, current_time())
    except Exception as err:
        return html.Div([html.H1("KPI linkage"), store_error(err)])
    controls = dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Region", html_for=ids.LINKAGE_REGION),
                    dbc.Select(id=ids.LINKAGE_REGION, options=region_opts, value=filters["region"]),
                ],
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Segment", html_for=ids.LINKAGE_SEGMENT),
                    dbc.Select(
                        id=ids.LINKAGE_SEGMENT,
                        options=[{"label": "All segments", "value": ANY}]
                        + [{"label": s, "value": s} for s in SEGMENTS],
                        value=filters["segment"],
                    ),
                ],
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Time range", html_for=ids.LINKAGE_RANGE),
                    dbc.Select(
                        id=ids.LINKAGE_RANGE,
                        options=[{"label": k, "value": k} for k in RANGES],
                        value=filters["range"],
                    ),
                ],
                md=2,
            ),
            dbc.Col(
                html.A(
                    "Executive summary (print)",
                    id=ids.LINKAGE_SUMMARY_LINK,
                    href="/linkage/summary",
                    className="btn btn-outline-light mt-4",
                ),
                md=4,
                className="text-end",
            ),
        ],
        className="mb-3 g-3",
    )
    return html.Div(
        [
            dcc.Location(id=ids.LINKAGE_URL, refresh=False),
            dcc.Store(id=ids.LINKAGE_SELECTED, data=filters["link"]),
            dcc.Download(id=ids.LINKAGE_DOWNLOAD),
            html.H1("KPI linkage"),
            controls,
            html.P(id=ids.LINKAGE_NOTE, className="vt-count"),
            dbc.Row(id=ids.LINKAGE_CARDS, className="g-3 mb-3"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.Div([html.H2("Driver tree", className="d-inline"), _csv_button("links")]),
                            dcc.Graph(id=ids.LINKAGE_TREE, className="vt-graph", config=PNG),
                        ],
                        lg=7,
                    ),
                    dbc.Col(
                        [
                            html.H2("Selected link"),
                            dbc.Select(
                                id=ids.LINKAGE_LINK, placeholder="Choose a link (or click one in the tree)"
                            ),
                            html.P(id=ids.LINKAGE_SENTENCE, className="vt-link-sentence mt-2"),
                            dbc.Label("What if the network KPI improved by", html_for=ids.LINKAGE_WHATIF),
                            dbc.Input(id=ids.LINKAGE_WHATIF, type="number", min=0, step="any", debounce=True),
                            html.P(id=ids.LINKAGE_WHATIF_OUT, className="vt-whatif mt-2"),
                        ],
                        lg=5,
                    ),
                ],
                className="mb-3",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            _csv_button("evidence"),
                            dcc.Graph(id=ids.LINKAGE_EVIDENCE, className="vt-graph", config=PNG),
                        ],
                        lg=6,
                    ),
                    dbc.Col(
                        [
                            _csv_button("lags"),
                            dcc.Graph(id=ids.LINKAGE_LAGS, className="vt-graph", config=PNG),
                        ],
                        lg=6,
                    ),
                ],
                className="mb-3",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        html.Div(
                            [
                                html.Div("Revenue at risk now", className="vt-card-label"),
                                html.Div(id=ids.LINKAGE_RAR_NOW, className="vt-card-value"),
                            ],
                            className="vt-kpi-card",
                        ),
                        lg=3,
                    ),
                    dbc.Col(
                        [
                            _csv_button("revenue_at_risk"),
                            dcc.Graph(id=ids.LINKAGE_RAR, className="vt-graph", config=PNG),
                        ],
                        lg=9,
                    ),
                ],
                className="mb-3",
            ),
            html.Div(vs, className="mb-3"),
            html.H2("All measured links"),
            html.Div(id=ids.LINKAGE_TABLE),
        ],
        className="vt-linkage",
    )


# --- Callbacks ---------------------------------------------------------------------------------


def overview(
    store: Store, catalogue: Catalogue, filters: Mapping[str, str], now: datetime, currency: str
) -> dict[str, Any]:
    """Everything the filters change: cards, tree, links, revenue at risk, note (one callback)."""
    scope = view_scope(filters.get("region"), filters.get("segment"))
    with store.connect() as conn:
        cards_wait = readiness.waiting(conn, "kpis", now)
        links_wait = readiness.waiting(conn, "linkage", now)
    cards = kpi_cards(store, catalogue, scope)
    links, fallback = links_frame(store, scope)
    labels = {k.name: k.label for k in catalogue.kpis}
    domain: dict[str, str] = {k.name: k.domain for k in catalogue.kpis}
    since = now - RANGES.get(filters.get("range") or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])
    rar = revenue_series(store, catalogue, scope, since, now)
    selected = filters.get("link") or ""
    keys = list(links["key"]) if not links.empty else []
    if selected not in keys:
        declared = links[links["declared"].astype(bool)] if not links.empty else links
        selected = str(declared["key"].iloc[0]) if not declared.empty else (keys[0] if keys else "")
    computed = links["computed_at"].max() if not links.empty else None
    note = " ".join(
        p
        for p in (
            f"Showing {scope.label}.",
            scope.note,
            fallback,
            f"Links measured over the last 30 days of daily cell data, computed {fmt_time(computed)}."
            if computed is not None
            else "",
        )
        if p
    )
    now_value = revenue_now(cards)
    return {
        "cards": card_components(cards, catalogue, currency, waiting=cards_wait),
        "tree": driver_tree_figure(
            tree_links(links),
            labels,
            domain,
            selected=selected,
            **({"empty_text": links_wait} if links_wait else {}),
        ),
        "options": [
            {"label": f"{labels.get(d, d)} → {labels.get(t, t)}", "value": k}
            for d, t, k in zip(links.get("driver", []), links.get("target", []), keys, strict=True)
        ],
        "selected": selected,
        "table": links_table(links, catalogue),
        "rar_now": "—" if now_value is None else f"{now_value:,.0f} {currency}/h",
        "rar": series_figure(rar, title="Revenue at risk per hour", unit=f"{currency}/h"),
        "note": note,
        "links_scope": scope.links if not fallback else "all",
    }


def link_view(store: Store, catalogue: Catalogue, scope: str, key: str) -> tuple[str, go.Figure, go.Figure]:
    """A link's sentence, evidence and lag profile."""
    link = link_detail(store, scope, key) if key else None
    if link is None:
        blank = empty_figure("Choose a link")
        return "", blank, blank
    driver, target = catalogue.get(str(link["driver"])), catalogue.get(str(link["target"]))
    evidence = link.get("evidence") or {}
    step_label = f"{float(link['step']):g} {driver.unit}"
    sentence = f"{link['sentence']} ({STRENGTH_WORD.get(str(link['strength']), link['strength'])})"
    return (
        sentence,
        evidence_figure(evidence, f"{driver.label} ({driver.unit})", f"{target.label} ({target.unit})"),
        lag_profile_figure(evidence, step_label=step_label, best_lag_s=link.get("lag_s")),
    )


def chart_csv(
    store: Store,
    catalogue: Catalogue,
    chart: str,
    filters: Mapping[str, str],
    scope_links: str,
    key: str,
    now: datetime,
) -> tuple[str, str]:
    """(file name, CSV text) of one chart's data."""
    scope = view_scope(filters.get("region"), filters.get("segment"))
    if chart == "links":
        df, _ = links_frame(store, scope)
        df = df.drop(columns=["short", "key"], errors="ignore")
    elif chart in ("evidence", "lags"):
        link = link_detail(store, scope_links, key) or {}
        part = "binned" if chart == "evidence" else "lag_profile"
        df = pd.DataFrame((link.get("evidence") or {}).get(part) or [])
    else:
        since = now - RANGES.get(filters.get("range") or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])
        df = revenue_series(store, catalogue, scope, since, now)
    buf = io.StringIO()
    df.map(csv_safe).to_csv(buf, index=False)  # text a spreadsheet would run stays text
    return f"vantage-linkage-{chart}-{now:%Y%m%d-%H%M}.csv", buf.getvalue()


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_CARDS, "children"),
        Output(ids.LINKAGE_TREE, "figure"),
        Output(ids.LINKAGE_LINK, "options"),
        Output(ids.LINKAGE_LINK, "value"),
        Output(ids.LINKAGE_TABLE, "children"),
        Output(ids.LINKAGE_RAR_NOW, "children"),
        Output(ids.LINKAGE_RAR, "figure"),
        Output(ids.LINKAGE_NOTE, "children"),
        Output(ids.LINKAGE_SELECTED, "data"),
        Output(ids.LINKAGE_URL, "search"),
        Output(ids.LINKAGE_SUMMARY_LINK, "href"),
        Input(ids.LINKAGE_REGION, "value"),
        Input(ids.LINKAGE_SEGMENT, "value"),
        Input(ids.LINKAGE_RANGE, "value"),
        State(ids.LINKAGE_SELECTED, "data"),
        State(ids.LINKAGE_VS_KPI, "value"),
        State(ids.LINKAGE_VS_LEVEL, "value"),
        State(ids.LINKAGE_VS_ENTITY, "value"),
    )
    def _overview(
        region: str, segment: str, rng: str, selected: str | None, vs_kpi: Any, vs_level: Any, vs_entity: Any
    ) -> tuple[Any, ...]:
        filters = {"region": region, "segment": segment, "range": rng, "link": selected or ""}
        try:
            out = overview(
                current_store(), current_catalogue(), filters, current_time(), current_settings().currency
            )
        except Exception as err:
            return (store_error(err),) + (dash.no_update,) * 10
        filters["link"] = out["selected"]
        vs = vs_choice(current_catalogue(), vs_kpi, vs_level, vs_entity)
        search = query_string({**filters, "vs": vs.key() if vs else ""})
        return (
            out["cards"],
            out["tree"],
            out["options"],
            out["selected"] or None,
            out["table"],
            out["rar_now"],
            out["rar"],
            out["note"],
            {"key": out["selected"], "scope": out["links_scope"]},
            search,
            "/linkage/summary"
            + query_string({k: v for k, v in filters.items() if k in ("region", "segment")}),
        )

    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_SENTENCE, "children"),
        Output(ids.LINKAGE_EVIDENCE, "figure"),
        Output(ids.LINKAGE_LAGS, "figure"),
        Input(ids.LINKAGE_LINK, "value"),
        State(ids.LINKAGE_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def _link(key: str | None, selected: Any) -> tuple[Any, ...]:
        scope = selected.get("scope", "all") if isinstance(selected, dict) else "all"
        return link_view(current_store(), current_catalogue(), scope, key or "")

    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_LINK, "value", allow_duplicate=True),
        Input(ids.LINKAGE_TREE, "clickData"),
        Input({"type": ids.LINKAGE_ROW, "key": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def _pick(click: Any, _rows: Any) -> Any:
        trigger = ctx.triggered_id
        if isinstance(trigger, dict) and trigger.get("type") == ids.LINKAGE_ROW:
            return trigger["key"] if any(t.get("value") for t in ctx.triggered) else dash.no_update
        points = (click or {}).get("points") or []
        key = points[0].get("customdata") if points else None
        return key if isinstance(key, str) and "->" in key else dash.no_update

    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_WHATIF_OUT, "children"),
        Input(ids.LINKAGE_WHATIF, "value"),
        Input(ids.LINKAGE_LINK, "value"),
        State(ids.LINKAGE_SELECTED, "data"),
    )
    def _what_if(value: float | None, key: str | None, selected: Any) -> str:
        if not key:
            return ""
        scope = selected.get("scope", "all") if isinstance(selected, dict) else "all"
        link = link_detail(current_store(), scope, key)
        if link is None:
            return ""
        return what_if_text(link, value, current_catalogue())

    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_DOWNLOAD, "data"),
        Input({"type": ids.LINKAGE_CSV, "chart": ALL}, "n_clicks"),
        State(ids.LINKAGE_REGION, "value"),
        State(ids.LINKAGE_SEGMENT, "value"),
        State(ids.LINKAGE_RANGE, "value"),
        State(ids.LINKAGE_LINK, "value"),
        State(ids.LINKAGE_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def _csv(
        clicks: list[int | None], region: str, segment: str, rng: str, key: str | None, selected: Any
    ) -> Any:
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks or []):
            return dash.no_update
        scope = selected.get("scope", "all") if isinstance(selected, dict) else "all"
        name, text = chart_csv(
            current_store(),
            current_catalogue(),
            str(trigger["chart"]),
            {"region": region, "segment": segment, "range": rng},
            scope,
            key or "",
            current_time(),
        )
        return {"content": text, "filename": name, "type": "text/csv"}

    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_VS_ENTITY, "options"),
        Output(ids.LINKAGE_VS_ENTITY, "value"),
        Input(ids.LINKAGE_VS_KPI, "value"),
        Input(ids.LINKAGE_VS_LEVEL, "value"),
        State(ids.LINKAGE_VS_ENTITY, "value"),
        prevent_initial_call=True,
    )
    def _vs_entities(kpi: Any, level: Any, entity: Any) -> tuple[Any, Any]:
        return vs_entity_options(current_store(), current_catalogue(), kpi, level, entity, current_time())

    @guard.callback(
        app,
        "read",
        Output(ids.LINKAGE_VS_GRAPH, "figure"),
        Output(ids.LINKAGE_VS_VERDICT, "children"),
        Output(ids.LINKAGE_URL, "search", allow_duplicate=True),
        Input(ids.LINKAGE_VS_KPI, "value"),
        Input(ids.LINKAGE_VS_LEVEL, "value"),
        Input(ids.LINKAGE_VS_ENTITY, "value"),
        Input(ids.LINKAGE_RANGE, "value"),
        State(ids.LINKAGE_REGION, "value"),
        State(ids.LINKAGE_SEGMENT, "value"),
        State(ids.LINKAGE_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def _vs(
        kpi: Any, level: Any, entity: Any, rng: Any, region: Any, segment: Any, selected: Any
    ) -> tuple[Any, ...]:
        link = selected.get("key", "") if isinstance(selected, dict) else ""
        filters = {"region": region, "segment": segment, "range": rng, "link": link}
        try:
            return vs_outputs(
                current_store(), current_catalogue(), kpi, level, entity, filters, current_time()
            )
        except Exception as err:
            return empty_figure("The store could not be read"), store_error(err), dash.no_update

"""Incidents per day: which resource fails, for how long, which cells suffer, and its alarms (none
for a silent fault)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from connectors.simulator.causal import CausalParameters
from connectors.simulator.world import POWER, RAN, ROUTER, TRANSPORT, World, rng_for

EPOCH = datetime(1970, 1, 1)
DAY_S = 86_400

# A record as the event streams emit it (a field's value, the record, and the record with its time
# and kind); frame streams emit DataFrames instead.
Value = str | int | float | bool | datetime | None
Record = dict[str, Value]
Event = tuple[int, str, Record]

# (title, probable cause, specific problem, X.733 alarm type) of the root alarm, per resource kind
ROOT_ALARM = {
    RAN: ("Baseband unit failure", "equipmentMalfunction", "BBU not responding", "equipmentAlarm"),
    POWER: ("Mains power failure", "powerProblem", "AC mains lost, battery exhausted", "environmentalAlarm"),
    TRANSPORT: ("Transport link failure", "lossOfSignal", "Microwave link down", "communicationsAlarm"),
    ROUTER: (
        "Aggregation router line card failure",
        "equipmentMalfunction",
        "Line card reset loop",
        "equipmentAlarm",
    ),
}
DEGRADED_ROOT = {
    TRANSPORT: (
        "Transport link degradation",
        "degradedSignal",
        "High bit error rate on microwave link",
        "communicationsAlarm",
    ),
    ROUTER: ROOT_ALARM[ROUTER],
    RAN: (
        "Radio performance degradation",
        "performanceDegraded",
        "High uplink interference, block error rate above threshold",
        "qualityOfServiceAlarm",
    ),
}
# The KPIs a degradation moves, each by its own multiplier per incident (``Incident.mix``).
MIX = ("drop", "latency", "cssr", "throughput", "loss")
DROP, LATENCY, CSSR, THROUGHPUT, LOSS = range(len(MIX))
# A radio unit failure takes one sector (cell) of its site down; its alarm is on the RAN node.
# (A RAN node's degradation may likewise be confined to one sector: interference on one cell.)
SECTOR_ALARM = ("Radio unit failure", "equipmentMalfunction", "equipmentAlarm")
# A degradation below this magnitude is a minor fault (drawn ones are never below it).
MINOR_MAGNITUDE = 0.4


@dataclass(frozen=True)
class SilentKind:
    """A kind of silent fault: what it is, where, and the range of each multiplier of its mix."""

    title: str
    probable_cause: str
    site_wide: bool
    mix_low: tuple[float, ...]
    mix_high: tuple[float, ...]


# Silent faults (MIX order: drop, latency, cssr, throughput, loss). The throughput multiplier
# 1..7/6 at magnitude 0.5..1 takes 30-70 % of a cell's throughput at the default
# ``degraded_throughput_loss`` (0.6). A backhaul running hot slows every cell of its site (latency,
# packet loss, throughput); a misconfigured sector loses capacity (throughput, a little latency and
# accessibility); a software fault on a sector drops calls as well.
SILENT_BACKHAUL = SilentKind(
    "Backhaul congestion", "bandwidthReduced", True, (0.0, 0.5, 0.0, 1.0, 0.5), (0.0, 1.5, 0.0, 7 / 6, 1.5)
)
SILENT_SECTOR = (
    SilentKind(
        "Misconfiguration",
        "configurationOrCustomizationError",
        False,
        (0.0, 0.1, 0.0, 1.0, 0.0),
        (0.0, 0.4, 0.5, 7 / 6, 0.0),
    ),
    SilentKind(
        "Software fault",
        "softwareError",
        False,
        (0.5, 0.0, 0.0, 1.0, 0.0),
        (1.5, 0.0, 1.0, 7 / 6, 0.0),
    ),
)
# Share of the misconfiguration among silent faults on one sector (the rest are software faults).
SILENT_MISCONFIGURATION_SHARE = 0.6
SILENT_DURATION_SIGMA = 0.6
SYMPTOM_ALARM = {
    True: ("lossOfSignal", "S1/NG link failure", "communicationsAlarm"),
    False: ("thresholdCrossed", "Packet loss above threshold on backhaul", "qualityOfServiceAlarm"),
}


@dataclass(frozen=True)
class Alarm:
    id: str
    resource: int
    severity: str
    probable_cause: str
    specific_problem: str
    alarm_type: str
    service_affecting: bool
    raised_s: int
    cleared_s: int


@dataclass(frozen=True)
class Incident:
    """One failure of one resource: its timing (epoch seconds) and what it does to cells."""

    id: str
    day: int
    resource: int
    kind: int
    outage: bool
    magnitude: float
    severity: str
    title: str
    probable_cause: str
    start_s: int
    acked_s: int
    end_s: int
    closed_s: int
    cell_lo: int
    cell_hi: int
    alarms: tuple[Alarm, ...]
    mix: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    """Multipliers of the ``degraded_*`` amounts, in ``MIX`` order: each degradation has its own mix."""
    story: str = ""
    """The story thread that scheduled this fault (docs/simulator.md), empty for a drawn one."""
    silent: bool = False
    """A silent fault: the cells degrade but nothing raises an alarm (``alarms`` is empty)."""


def to_dt(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=int(seconds))


def to_s(t: datetime) -> int:
    return int((t - EPOCH).total_seconds())


def draw_mix(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per incident, the multipliers of the ``degraded_*`` amounts in ``MIX`` order.

    Drop rate, latency, accessibility and packet loss vary independently across incidents (0..2,
    mean 1), so that their effects can be told apart; throughput always loses something (0.5..1.5).
    """
    mix = rng.uniform(0.0, 2.0, (n, len(MIX)))
    mix[:, THROUGHPUT] = 0.5 + mix[:, THROUGHPUT] / 2
    return mix


def severity_of(kind: int, outage: bool, magnitude: float, sector: int | None = None) -> str:
    """Critical for a site-wide outage or a router failure, major for a degradation or one sector
    down, minor for a slight degradation."""
    if (outage and sector is None) or kind == ROUTER:
        return "critical"
    return "major" if outage or magnitude >= MINOR_MAGNITUDE else "minor"


def make_incident(
    w: World,
    day: int,
    tag: str,
    r: int,
    outage: bool,
    magnitude: float,
    start: int,
    minutes: int,
    ack_minutes: int,
    close_minutes: int,
    mix: tuple[float, ...],
    story: str = "",
    sector: int | None = None,
) -> Incident:
    """One failure of resource ``r`` from ``start`` (epoch seconds) for ``minutes``, with its alarms.

    ``tag`` names it: the incident is ``INC-<tag>``, its alarms ``ALM-<tag>-<n>``, the root first.
    ``sector`` (0..2, a RAN node's failure only): the fault is confined to that sector's cell, a radio
    unit failing (outage) or interference on one sector (degradation).
    """
    kind = int(w.res_kind[r])
    title, cause, problem, atype = (ROOT_ALARM if outage else DEGRADED_ROOT)[kind]
    cell_lo, cell_hi = int(w.res_cell_lo[r]), int(w.res_cell_hi[r])
    if sector is not None:
        if outage:
            title, cause, atype = SECTOR_ALARM
            problem = f"Radio unit of sector {sector + 1} not responding"
        else:
            problem = f"High uplink interference on sector {sector + 1}, block error rate above threshold"
        cell_lo, cell_hi = cell_lo + sector, cell_lo + sector + 1
    severity = severity_of(kind, outage, magnitude, sector)
    end = start + minutes * 60
    alarms = [Alarm(f"ALM-{tag}-0", r, severity, cause, problem, atype, True, start, end + 60)]
    if kind in (TRANSPORT, ROUTER):
        # Symptomatic alarms from a few RAN nodes behind the failure.
        lo, hi = int(w.res_cell_lo[r]) // 3, int(w.res_cell_hi[r]) // 3
        s_cause, s_problem, s_type = SYMPTOM_ALARM[outage]
        for j, site in enumerate(range(lo, min(hi, lo + 4)), start=1):
            alarms.append(
                Alarm(
                    f"ALM-{tag}-{j}",
                    site,
                    "major",
                    s_cause,
                    s_problem,
                    s_type,
                    outage,
                    start + 60 * j,
                    end + 60 + 30 * j,
                )
            )
    elif kind == POWER:
        site = int(w.res_site[r])
        alarms.append(
            Alarm(
                f"ALM-{tag}-1",
                site,
                "critical",
                "equipmentMalfunction",
                "Cell out of service",
                "equipmentAlarm",
                True,
                start + 120,
                end + 90,
            )
        )
    return Incident(
        id=f"INC-{tag}",
        day=day,
        resource=r,
        kind=kind,
        outage=outage,
        magnitude=magnitude,
        severity=severity,
        title=f"{title} at {w.site_names.iloc[int(w.res_site[r])]}"
        + (f" sector {sector + 1}" if sector is not None else ""),
        probable_cause=cause,
        start_s=start,
        acked_s=start + ack_minutes * 60,
        end_s=end,
        closed_s=end + close_minutes * 60,
        cell_lo=cell_lo,
        cell_hi=cell_hi,
        alarms=tuple(alarms),
        mix=mix,
        story=story,
    )


def incidents_for_day(w: World, c: CausalParameters, day: int) -> list[Incident]:
    """The incidents that start on absolute day ``day``; a pure function of (seed, day)."""
    rng = rng_for(w.seed, "incidents", day)
    kind_weight = np.array(
        [c.ran_failure_weight, c.power_failure_weight, c.transport_failure_weight, c.router_failure_weight]
    )
    rates = c.incident_rate_per_resource_day * kind_weight[w.res_kind]
    n = int(rng.poisson(rates.sum()))
    if n == 0:
        return []
    resources = rng.choice(w.n_resources, size=n, p=rates / rates.sum())
    starts = day * DAY_S + rng.integers(0, DAY_S // 60, n) * 60
    minutes = np.clip(rng.lognormal(np.log(c.incident_median_minutes), 0.7, n), 12, 720).round()
    ack = np.minimum(rng.uniform(3, 25, n), minutes - 5).round()
    close = rng.uniform(30, 240, n).round()
    u = rng.random((n, 3))
    # Drawn after everything else, so the incidents themselves do not depend on it.
    mix = draw_mix(rng, n)
    out: list[Incident] = []
    for i in range(n):
        r = int(resources[i])
        kind = int(w.res_kind[r])
        if kind == RAN and u[i, 2] < c.ran_degradation_probability:
            outage, magnitude = False, float(0.4 + 0.6 * u[i, 1])
        elif kind in (RAN, POWER):
            outage, magnitude = True, 1.0
        elif kind == TRANSPORT:
            outage = bool(u[i, 0] < c.transport_outage_probability)
            magnitude = 1.0 if outage else float(0.4 + 0.6 * u[i, 1])
        else:
            outage, magnitude = False, c.router_degradation_magnitude
        out.append(
            make_incident(
                w,
                day,
                f"{day}-{i:04d}",
                r,
                outage,
                magnitude,
                int(starts[i]),
                int(minutes[i]),
                int(ack[i]),
                int(close[i]),
                tuple(float(m) for m in mix[i]),
            )
        )
    return out


def silent_faults_for_day(w: World, c: CausalParameters, day: int) -> list[Incident]:
    """The silent faults that start on absolute day ``day``; a pure function of (seed, day).

    Degradations that raise no alarm: a backhaul running hot (all cells of a site) or a sector
    misconfigured or hit by a software fault (one cell). Drawn from their own generator, so the
    drawn incidents do not depend on them; ids ``INC-<day>-S<nnnn>``, on the site's RAN node.
    """
    if c.silent_fault_rate_per_cell_day <= 0:
        return []
    rng = rng_for(w.seed, "silent", day)
    n = int(rng.poisson(c.silent_fault_rate_per_cell_day * w.n_cells))
    if n == 0:
        return []
    cells = rng.integers(0, w.n_cells, n)
    starts = day * DAY_S + rng.integers(0, DAY_S // 60, n) * 60
    lo_min = c.silent_min_minutes
    hi_min = max(c.silent_max_minutes, lo_min)
    median = np.log(c.silent_median_minutes)
    minutes = np.clip(rng.lognormal(median, SILENT_DURATION_SIGMA, n), lo_min, hi_min).round()
    magnitude = rng.uniform(c.silent_magnitude_min, max(c.silent_magnitude_max, c.silent_magnitude_min), n)
    u = rng.random((n, 2))
    mix_u = rng.random((n, len(MIX)))
    out: list[Incident] = []
    for i in range(n):
        if u[i, 0] < c.silent_site_probability:
            kind = SILENT_BACKHAUL
        else:
            kind = SILENT_SECTOR[0 if u[i, 1] < SILENT_MISCONFIGURATION_SHARE else 1]
        cell = int(cells[i])
        site = cell // 3
        sector: int | None = None if kind.site_wide else cell % 3
        cell_lo, cell_hi = (3 * site, 3 * site + 3) if sector is None else (cell, cell + 1)
        lo, hi = np.asarray(kind.mix_low), np.asarray(kind.mix_high)
        mix = lo + (hi - lo) * mix_u[i]
        start = int(starts[i])
        end = start + int(minutes[i]) * 60
        mag = float(magnitude[i])
        out.append(
            Incident(
                id=f"INC-{day}-S{i:04d}",
                day=day,
                resource=site,  # the site's RAN node
                kind=int(w.res_kind[site]),
                outage=False,
                magnitude=mag,
                severity=severity_of(RAN, False, mag, sector),
                title=f"{kind.title} at {w.site_names.iloc[site]}"
                + (f" sector {sector + 1}" if sector is not None else ""),
                probable_cause=kind.probable_cause,
                start_s=start,
                acked_s=end,
                end_s=end,
                closed_s=end,
                cell_lo=cell_lo,
                cell_hi=cell_hi,
                alarms=(),
                mix=tuple(float(m) for m in mix),
                silent=True,
            )
        )
    return out


def fault_events(w: World, incidents: list[Incident], a_s: int, b_s: int, source: str) -> Iterator[Event]:
    """(time, "alarms", record) for every alarm version (raise, ack, clear) in [a_s, b_s).

    Only alarms leave the network, as from a real fault manager; grouping them into incidents is
    Vantage's own correlation (dashboard.incidents), tested against these incidents' ground truth.
    A silent fault has no alarms and emits nothing.
    """
    for inc in incidents:
        res_name = str(w.res_names.iloc[inc.resource])
        for al in inc.alarms:
            base: Record = {
                "id": al.id,
                "source": source,
                "resource_id": str(w.res_ids.iloc[al.resource]),
                "alarmed_object": str(w.res_names.iloc[al.resource])
                if al.resource != inc.resource
                else res_name,
                "alarmed_object_type": "ManagedElement",
                "alarm_type": al.alarm_type,
                "probable_cause": al.probable_cause,
                "specific_problem": al.specific_problem,
                "service_affecting": al.service_affecting,
                "raised_at": to_dt(al.raised_s),
            }
            acked = max(inc.acked_s, al.raised_s + 30)
            if a_s <= al.raised_s < b_s:
                yield (
                    al.raised_s,
                    "alarms",
                    base
                    | {
                        "severity": al.severity,
                        "state": "raised",
                        "ack_state": "unacknowledged",
                        "changed_at": to_dt(al.raised_s),
                        "cleared_at": None,
                    },
                )
            if acked < al.cleared_s and a_s <= acked < b_s:
                yield (
                    acked,
                    "alarms",
                    base
                    | {
                        "severity": al.severity,
                        "state": "updated",
                        "ack_state": "acknowledged",
                        "changed_at": to_dt(acked),
                        "cleared_at": None,
                    },
                )
            if a_s <= al.cleared_s < b_s:
                # X.733 / TMF642: a clear carries perceived severity "cleared".
                yield (
                    al.cleared_s,
                    "alarms",
                    base
                    | {
                        "severity": "cleared",
                        "state": "cleared",
                        "ack_state": "acknowledged",
                        "changed_at": to_dt(al.cleared_s),
                        "cleared_at": to_dt(al.cleared_s),
                    },
                )


def cell_impact(
    incidents: list[Incident], n_cells: int, period_s: np.ndarray, step_s: int = 900
) -> tuple[np.ndarray, np.ndarray]:
    """Outage and degradation per (period, cell).

    Outage: the fraction of the period the cell was down (the largest over overlapping outages).
    Degradation: shape (len(MIX), periods, cells), per KPI of ``MIX`` the sum over degrading
    incidents of the fraction of the period they lasted x magnitude x the incident's multiplier.
    """
    outage = np.zeros((len(period_s), n_cells))
    degraded = np.zeros((len(MIX), len(period_s), n_cells))
    if len(period_s) == 0:
        return outage, degraded
    lo_t, hi_t = int(period_s[0]), int(period_s[-1]) + step_s
    for inc in incidents:
        if inc.end_s <= lo_t or inc.start_s >= hi_t:
            continue
        frac = (
            np.clip(
                (np.minimum(inc.end_s, period_s + step_s) - np.maximum(inc.start_s, period_s)) / step_s,
                0.0,
                1.0,
            )
            * inc.magnitude
        )
        if inc.outage:
            block = outage[:, inc.cell_lo : inc.cell_hi]
            np.maximum(block, frac[:, None], out=block)
        else:
            degraded[:, :, inc.cell_lo : inc.cell_hi] += (np.asarray(inc.mix)[:, None] * frac[None, :])[
                :, :, None
            ]
    return outage, degraded

"""The simulator's causal knobs in one frozen dataclass: faults -> KPIs -> tickets -> churn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class CausalParameters:
    """Every parameter that links a cause to an effect in the simulated operator.

    Units are stated per field. Rates are hazards per subscriber-day (small values are
    probabilities); the daily event probability is ``1 - exp(-hazard)``.
    """

    # --- Faults ---------------------------------------------------------------------------------
    incident_rate_per_resource_day: float = 0.008
    """Expected failures per network resource per day (before the per-kind weights below)."""
    router_failure_weight: float = 0.5
    """Relative failure rate of aggregation routers (redundant pairs: rarer, wide but partial)."""
    transport_failure_weight: float = 1.5
    """Relative failure rate of transport links (microwave/fibre: the most failure-prone)."""
    ran_failure_weight: float = 1.0
    """Relative failure rate of RAN nodes (baseband units: a whole site's cells go down)."""
    power_failure_weight: float = 0.6
    """Relative failure rate of site power units (mains loss beyond the battery holdover)."""
    ran_degradation_probability: float = 0.3
    """Probability that a RAN node failure degrades its site's cells (interference, a faulty radio)
    rather than taking them down."""
    incident_median_minutes: float = 95.0
    """Median time to restore, minutes (durations are log-normal, capped at 12 hours)."""

    # --- Degradation of the cells behind a failed resource (at full magnitude, mean mix) ---------
    # Each degradation scales these by its own multipliers (uniform 0..2; throughput 0.5..1.5).
    degraded_drop_rate_pp: float = 4.0
    """Rise of drop_call_rate_pct, percentage points, on a degraded (not down) cell."""
    degraded_latency_ms: float = 140.0
    """Rise of latency_ms on a degraded cell."""
    degraded_throughput_loss: float = 0.6
    """Fraction of dl_throughput_mbps lost on a degraded cell."""
    degraded_cssr_pp: float = 12.0
    """Fall of call_setup_success_pct, percentage points, on a degraded cell."""
    degraded_packet_loss_pp: float = 2.0
    """Rise of packet_loss_pct, percentage points, on a degraded cell."""
    router_degradation_magnitude: float = 0.5
    """Magnitude (0..1) of a router failure on its cells: traffic is rerouted, cells degrade."""
    transport_outage_probability: float = 0.4
    """Probability that a transport failure is a full outage rather than a degradation."""

    # --- Silent faults: degradations that raise no alarm (faults.silent_faults_for_day) ----------
    silent_fault_rate_per_cell_day: float = 0.004
    """Expected silent faults per cell per day: a misconfigured or buggy sector, a backhaul running hot."""
    silent_site_probability: float = 0.4
    """Probability that a silent fault is a backhaul running hot (all cells of a site: latency, packet
    loss, throughput) rather than one sector (throughput; drops when a software bug)."""
    silent_median_minutes: float = 90.0
    """Median duration of a silent fault, minutes (log-normal, clipped to the range below)."""
    silent_min_minutes: float = 45.0
    """Shortest silent fault, minutes."""
    silent_max_minutes: float = 480.0
    """Longest silent fault, minutes."""
    silent_magnitude_min: float = 0.5
    """Smallest magnitude of a silent fault (a fraction of the ``degraded_*`` amounts)."""
    silent_magnitude_max: float = 1.0
    """Largest magnitude of a silent fault (uniform between the two)."""

    # --- Tickets --------------------------------------------------------------------------------
    ticket_base_daily: float = 0.0015
    """Baseline ticket hazard per subscriber-day with no bad experience (billing, plans, ...)."""
    ticket_per_drop_pp_hour: float = 0.004
    """Added ticket hazard per percentage point of drop-rate rise lasting one average-load hour."""
    ticket_per_latency_100ms_hour: float = 0.01
    """Added ticket hazard per 100 ms of latency rise lasting one average-load hour."""
    ticket_per_outage_hour: float = 0.03
    """Added ticket hazard per hour of lost availability on the subscriber's cells."""
    angry_outage_hours: float = 1.0
    """Experienced outage hours from which an incident ticket is an angry complaint."""

    # --- Retention offers -----------------------------------------------------------------------
    offer_probability_after_negative_ticket: float = 0.3
    """Probability that a negative ticket triggers a retention offer."""
    offer_acceptance_probability: float = 0.45
    """Probability that a retention offer is accepted."""
    accepted_offer_churn_multiplier: float = 0.4
    """Churn hazard multiplier while an accepted offer is within the dissatisfaction lookback."""

    # --- Responses to Vantage's messages (inbox.py); nothing changes until one is received --------
    vantage_offer_acceptance_probability: float = 0.45
    """Probability that a retention offer Vantage sends is accepted (drawn per line and day)."""
    vantage_offer_churn_multiplier: float = 0.4
    """Churn hazard multiplier while an accepted Vantage offer is within the dissatisfaction lookback."""
    apology_churn_multiplier: float = 0.85
    """Churn hazard multiplier while an apology from Vantage is within the dissatisfaction lookback."""

    # --- Dissatisfaction: a decaying memory of bad experience ------------------------------------
    dissatisfaction_lookback_days: int = 28
    """Days of past experience (degraded hours, negative tickets) a customer still remembers."""
    dissatisfaction_half_life_days: float = 7.0
    """Age in days at which a bad experience weighs half as much as yesterday's."""

    # --- Churn ----------------------------------------------------------------------------------
    churn_base_daily: float = 0.0004
    """Baseline hazard of a churn decision per subscriber-day (about 1.5 % a month in all)."""
    churn_tolerated_degraded_hours: float = 5.0
    """Remembered degraded hours a customer shrugs off: only hours beyond this raise the hazard."""
    churn_per_degraded_hour: float = 0.35
    """Log-hazard added per remembered degraded hour beyond the tolerated ones (outage hours x2)."""
    churn_degraded_hours_cap: float = 8.0
    """Remembered degraded hours beyond the tolerated ones that still add to the churn hazard."""
    churn_per_negative_ticket: float = 1.5
    """Log-hazard added per remembered negative ticket (decayed; x4.5 for one filed yesterday)."""
    churn_new_customer_log_hazard: float = 0.9
    """Log-hazard added at zero tenure, fading as exp(-tenure / churn_tenure_days) (x2.5 when new)."""
    churn_tenure_days: float = 365.0
    """Tenure, in days, over which the new-customer churn effect fades by a factor e."""
    churn_per_arpu_doubling: float = 0.35
    """Log-hazard added per doubling of ARPU above 25 (removed below it): dearer plans shop around."""
    enterprise_churn_multiplier: float = 0.5
    """Churn hazard multiplier of enterprise lines (fleet contracts churn less)."""
    churn_lag_min_days: float = 3.0
    """Shortest delay, in days, from a churn decision to the churn (port-out, notice period)."""
    churn_lag_mean_days: float = 7.0
    """Mean delay, in days, from a churn decision to the churn (exponential above the minimum)."""
    churn_lag_max_days: float = 21.0
    """Longest delay, in days, from a churn decision to the churn (longer notices are cut here)."""
    resell_after_days: int = 28
    """Days a churned line stays out of service before it is re-sold (active again, same line id)."""

    def with_overrides(self, overrides: Mapping[str, float]) -> CausalParameters:
        """A copy with the given fields replaced (an integer field takes the value's integer part);
        unknown names are an error."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown causal parameter(s): {', '.join(unknown)}")
        # Field by field from names: a dynamic boundary the dataclass's typed signature cannot check.
        cast: dict[str, Any] = {
            k: int(v) if known[k].type in ("int", int) else float(v) for k, v in overrides.items()
        }
        return replace(self, **cast)


DEFAULT_CAUSAL = CausalParameters()


@dataclass(frozen=True)
class TrueLink:
    """A driver -> target link as the simulator builds it, in catalogue units at the daily grain."""

    driver: str
    target: str
    step: float
    """The driver's change the effect is quoted for (the catalogue's ``step``)."""
    effect: float
    """Change of the target per ``step`` of the driver's daily mean, same day; 0 when not built in."""
    built_in: bool
    lag_days: int = 0


def linkage_truth(c: CausalParameters) -> list[TrueLink]:
    """The true effects on ``tickets_per_1k_subscribers`` (per cell and day) of the cell KPIs.

    The added ticket hazard of a subscriber-day is linear in its cells' KPI rises (experience.py):
    ``ticket_per_drop_pp_hour`` per point of drop-rate rise per load-weighted hour, so +``step``
    points on the traffic-weighted daily mean is ``24 * step * ticket_per_drop_pp_hour`` tickets
    per line, x1000 per thousand lines; likewise latency (per 100 ms) and outage hours (-0.1 pp of
    daily availability is 0.024 hours down). Accessibility, packet loss and throughput drive no
    tickets. The daily probability of a ticket is ``1 - exp(-hazard)``, so a realised effect falls
    short of these by about half the added hazard (under 3 % when hazards stay below 0.05).
    """
    per_1k = 1000.0 * 24.0
    return [
        TrueLink(
            "drop_call_rate_pct",
            "tickets_per_1k_subscribers",
            0.1,
            per_1k * c.ticket_per_drop_pp_hour * 0.1,
            True,
        ),
        TrueLink(
            "latency_ms",
            "tickets_per_1k_subscribers",
            10.0,
            per_1k * c.ticket_per_latency_100ms_hour * 0.1,
            True,
        ),
        TrueLink(
            "availability_pct",
            "tickets_per_1k_subscribers",
            0.1,
            -per_1k * c.ticket_per_outage_hour * 0.1 / 100,
            True,
        ),
        TrueLink("call_setup_success_pct", "tickets_per_1k_subscribers", 1.0, 0.0, False),
        TrueLink("packet_loss_pct", "tickets_per_1k_subscribers", 0.1, 0.0, False),
        TrueLink("dl_throughput_mbps", "tickets_per_1k_subscribers", 1.0, 0.0, False),
    ]

"""The simulator's causal knobs in one frozen dataclass: faults -> KPIs -> tickets -> churn."""

from __future__ import annotations

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
    incident_median_minutes: float = 95.0
    """Median time to restore, minutes (durations are log-normal, capped at 12 hours)."""

    # --- Degradation of the cells behind a failed resource (at full magnitude) ------------------
    degraded_drop_rate_pp: float = 4.0
    """Rise of drop_call_rate_pct, percentage points, on a degraded (not down) cell."""
    degraded_latency_ms: float = 140.0
    """Rise of latency_ms on a degraded cell."""
    degraded_throughput_loss: float = 0.7
    """Fraction of dl_throughput_mbps lost on a degraded cell."""
    degraded_cssr_pp: float = 12.0
    """Fall of call_setup_success_pct, percentage points, on a degraded cell."""
    router_degradation_magnitude: float = 0.5
    """Magnitude (0..1) of a router failure on its cells: traffic is rerouted, cells degrade."""
    transport_outage_probability: float = 0.4
    """Probability that a transport failure is a full outage rather than a degradation."""

    # --- Tickets --------------------------------------------------------------------------------
    ticket_base_daily: float = 0.0015
    """Baseline ticket hazard per subscriber-day with no bad experience (billing, plans, ...)."""
    ticket_per_drop_pp_hour: float = 0.004
    """Added ticket hazard per percentage point of drop-rate rise lasting one hour."""
    ticket_per_latency_100ms_hour: float = 0.01
    """Added ticket hazard per 100 ms of latency rise lasting one hour."""
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
    """Churn hazard multiplier for the rest of the epoch once an offer is accepted."""

    # --- Churn ----------------------------------------------------------------------------------
    churn_base_daily: float = 0.0005
    """Baseline churn hazard per subscriber-day (about 1.5 % a month)."""
    churn_per_degraded_hour: float = 0.25
    """Log-hazard added per degraded-hour experienced this epoch (outage hours count double)."""
    churn_degraded_hours_cap: float = 8.0
    """Degraded hours beyond this add nothing more to the churn hazard."""
    churn_per_negative_ticket: float = 1.2
    """Log-hazard added per negative ticket filed this epoch (x3.3 per ticket)."""
    epoch_days: int = 28
    """Length of a churn epoch: churned lines are re-sold (active again) at the next epoch."""

    def with_overrides(self, overrides: dict[str, Any]) -> CausalParameters:
        """A copy with the given fields replaced; unknown names are an error."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown causal parameter(s): {', '.join(unknown)}")
        cast: dict[str, Any] = {
            k: int(v) if known[k].type in ("int", int) else float(v) for k, v in overrides.items()
        }
        return replace(self, **cast)


DEFAULT_CAUSAL = CausalParameters()

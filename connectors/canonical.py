"""The canonical model's vocabulary: the record kinds connectors emit and the values their fields take.

It lives with the connector protocol so that a connector (built-in or third-party) can name kinds
and values without importing the store; ``dashboard/store/schema.py`` builds its tables from these
same names, and a test holds the two equal.
"""

from __future__ import annotations

from typing import Final

#: Every record kind a connector may emit, each the name of the canonical table it is written to.
KINDS: Final = (
    "regions",
    "sites",
    "cells",
    "resources",
    "topology_edges",
    "accounts",
    "subscribers",
    "subscriber_cells",
    "services",
    "alarms",
    "incidents",
    "incident_alarms",
    "tickets",
    "ticket_notes",
    "ticket_status_changes",
    "churn_events",
    "offer_events",
    "kpi_samples",
    "bills",
    "usage",
)

SEGMENTS: Final = ("consumer", "smb", "enterprise")
#: TMF642 perceived severities, worst first.
SEVERITIES: Final = ("critical", "major", "minor", "warning", "indeterminate", "cleared")
ALARM_STATES: Final = ("raised", "updated", "cleared")
INCIDENT_STATES: Final = ("open", "acknowledged", "resolved", "closed", "merged")
TECHNOLOGIES: Final = ("2g", "3g", "4g", "5g")
#: What a KPI sample or an alarm may be about.
ENTITY_TYPES: Final = ("cell", "site", "resource", "service", "region", "subscriber", "account")


def check_kind(kind: str) -> str:
    """``kind`` if it is a canonical kind; ValueError naming the known ones otherwise (option validators)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    return kind


def check_entity_type(entity_type: str, what: str = "entity_type") -> str:
    """``entity_type`` if it is one the model knows; ValueError naming them otherwise."""
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"{what} {entity_type!r} is not one of {', '.join(ENTITY_TYPES)}")
    return entity_type

"""Enrichers: derived columns added to validated rows on ingest, by record kind."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from dashboard.sentiment import enrich_ticket_notes, enrich_tickets

#: A function that adds derived columns to validated rows of one kind (e.g. ticket sentiment).
Enricher = Callable[[pd.DataFrame], pd.DataFrame]


def default_enrichers() -> dict[str, Enricher]:
    """The enrichers every ingest runs with unless a caller passes its own.

    Tickets and ticket notes get a ``sentiment`` in [-1, 1] from the offline telecom scorer
    (subject + description for tickets, the text for notes); a score the source supplied is kept.
    """
    return {"tickets": enrich_tickets, "ticket_notes": enrich_ticket_notes}

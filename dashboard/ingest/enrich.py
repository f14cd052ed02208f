"""Enrichers: derived columns added to validated rows on ingest, by record kind."""

from __future__ import annotations

from dashboard.ingest.runner import Enricher


def default_enrichers() -> dict[str, Enricher]:
    """The enrichers every ingest runs with unless a caller passes its own.

    Tickets and ticket notes get a ``sentiment`` in [-1, 1] from the offline telecom scorer
    (subject + description for tickets, the text for notes); a score the source supplied is kept.
    """
    # Imported here so that importing the ingest package does not load the sentiment lexicon.
    from dashboard.analytics.sentiment import enrich_ticket_notes, enrich_tickets

    return {"tickets": enrich_tickets, "ticket_notes": enrich_ticket_notes}

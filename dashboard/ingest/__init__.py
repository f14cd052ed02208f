"""The ingest path: validation, enrichment, idempotent upsert, quarantine and run records."""

from dashboard.ingest.runner import Counts, Ingestor, RunSummary, load_state, run_connector, save_state
from dashboard.ingest.validate import Rejected, Validated, dedupe, validate

__all__ = [
    "Counts",
    "Ingestor",
    "Rejected",
    "RunSummary",
    "Validated",
    "dedupe",
    "load_state",
    "run_connector",
    "save_state",
    "validate",
]

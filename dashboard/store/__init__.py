"""The canonical store: schema, engine handle and migrations."""

from dashboard.store.db import Store, StoreError, normalise_url, redact
from dashboard.store.schema import CANONICAL_KINDS, metadata

__all__ = ["CANONICAL_KINDS", "Store", "StoreError", "metadata", "normalise_url", "redact"]

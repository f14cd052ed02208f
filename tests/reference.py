"""Where the tests find the shared reference set: ``$VANTAGE_SHARED_DIR``, else ``../shared``."""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable naming the shared folder (holding ``reference/`` and ``data/``).
SHARED_ENV = "VANTAGE_SHARED_DIR"
CHECKOUT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared folder: ``$VANTAGE_SHARED_DIR`` when set, else ``shared`` beside the checkout."""
    configured = os.environ.get(SHARED_ENV)
    return Path(configured).expanduser() if configured else CHECKOUT.parent / "shared"

"""Secrets Vantage needs for itself (the key that signs session cookies): from the environment when
set there, else generated once and kept in the store, so every web worker shares it and sessions
outlive a restart. Never written to files or logs."""

from __future__ import annotations

import os
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dashboard.store.db import Store
from dashboard.store.schema import app_secrets

SESSION_KEY_ENV = "VANTAGE_SECRET_KEY"
MIN_KEY_LENGTH = 32


def session_key(store: Store, *, now: datetime) -> str:
    """The session signing key: ``$VANTAGE_SECRET_KEY`` (at least 32 characters), else the store's."""
    env = os.environ.get(SESSION_KEY_ENV)
    if env:
        if len(env) < MIN_KEY_LENGTH:
            raise ValueError(
                f"${SESSION_KEY_ENV} is too short: expected at least {MIN_KEY_LENGTH} characters"
            )
        return env
    return stored_secret(store, "session_key", now=now)


def stored_secret(store: Store, name: str, *, now: datetime) -> str:
    """The store's secret ``name``, generated (64 hex digits) the first time it is asked for."""
    with store.connect() as conn:
        value = conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == name)).scalar()
    if value:
        return str(value)
    try:
        with store.begin() as conn:
            conn.execute(app_secrets.insert().values(name=name, value=secrets.token_hex(32), created_at=now))
    except IntegrityError:
        pass  # another worker made it first: read theirs
    with store.connect() as conn:
        return str(conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == name)).scalar_one())

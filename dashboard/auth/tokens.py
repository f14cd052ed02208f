"""API tokens: bearer credentials for people and services, scoped by role, expiring, revocable.

A token is ``vt_`` and 43 URL-safe characters (256 bits), shown once when it is made. The store
keeps only its SHA-256 digest (a token is random, so a fast digest is as safe as a slow one and the
lookup stays one indexed read), the first characters to tell tokens apart, its role, owner and
expiry. A token never has more rights than its owner: it stops working when its owner is disabled,
and its role is the lesser of the two.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, insert, select, update

from dashboard.auth import audit
from dashboard.auth.users import UserError, check_role
from dashboard.auth.users import get as get_user
from dashboard.privacy import ROLE_PERMISSIONS, Principal, Role
from dashboard.store.db import Store
from dashboard.store.schema import api_tokens

PREFIX = "vt_"
#: A token's use is written to the audit log at most this often (the wall polls every few seconds).
USE_AUDIT_EVERY = timedelta(hours=1)
MAX_DAYS = 366


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    owner: str
    role: Role
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _token(row: Any) -> Token:
    m = row._mapping
    return Token(
        id=m["id"],
        name=m["name"],
        owner=m["owner"],
        role=cast(Role, m["role"]),
        prefix=m["prefix"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
    )


def create(
    store: Store, name: str, *, owner: str, role: str, days: float, now: datetime, actor: str
) -> tuple[Token, str]:
    """A new token for ``owner`` (an existing user) with ``role`` (no more than the owner's),
    valid ``days``; returns it and the token text, which is never stored."""
    role_ = check_role(role)
    if not 0 < days <= MAX_DAYS:
        raise UserError(f"a token is valid for more than 0 and at most {MAX_DAYS} days, not {days}")
    name = " ".join(name.split())[:128]
    if not name:
        raise UserError("a token needs a name (what or who uses it)")
    with store.begin() as conn:
        user = get_user(conn, owner)
        if user is None or user.disabled:
            raise UserError(f"no active user {owner!r} to own the token")
        if not ROLE_PERMISSIONS[role_] <= ROLE_PERMISSIONS[user.role]:
            raise UserError(f"a token of {owner!r} ({user.role}) may not have the role {role_!r}")
        text = PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(8)
        conn.execute(
            insert(api_tokens).values(
                id=token_id,
                name=name,
                owner=owner,
                role=role_,
                digest=digest(text),
                prefix=text[:10],
                created_at=now,
                created_by=actor,
                expires_at=now + timedelta(days=days),
            )
        )
        audit.record(
            conn,
            actor=actor,
            action="token.create",
            at=now,
            target_type="token",
            target_id=token_id,
            detail={"name": name, "owner": owner, "role": role_, "days": days},
        )
        token = _token(conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).one())
    return token, text


def list_tokens(conn: Connection, *, owner: str | None = None) -> list[Token]:
    stmt = select(api_tokens).order_by(api_tokens.c.created_at.desc())
    if owner is not None:
        stmt = stmt.where(api_tokens.c.owner == owner)
    return [_token(r) for r in conn.execute(stmt)]


def revoke(store: Store, token_id: str, *, now: datetime, actor: str) -> Token:
    with store.begin() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise UserError(f"no token {token_id!r}")
        if row._mapping["revoked_at"] is None:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now))
            audit.record(
                conn, actor=actor, action="token.revoke", at=now, target_type="token", target_id=token_id
            )
        return _token(conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).one())


def verify(store: Store, text: str, *, now: datetime, client: str | None = None) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown, expired, revoked, owner disabled).
    Use is written to the audit log once per ``USE_AUDIT_EVERY`` per token."""
    if not text.startswith(PREFIX) or len(text) > 128:
        return None
    d = digest(text)
    with store.connect() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.digest == d)).first()
        if row is None or not hmac.compare_digest(row._mapping["digest"], d):
            return None
        token = _token(row)
        if token.state(now) != "active":
            return None
        owner = get_user(conn, token.owner)
    if owner is None or owner.disabled:
        return None
    # The lesser of the token's role and its owner's current one.
    role = token.role if ROLE_PERMISSIONS[token.role] <= ROLE_PERMISSIONS[owner.role] else owner.role
    if token.last_used_at is None or now - token.last_used_at >= USE_AUDIT_EVERY:
        with store.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token.id).values(last_used_at=now))
            audit.record(
                conn,
                actor=token.owner,
                action="token.use",
                at=now,
                target_type="token",
                target_id=token.id,
                detail={"name": token.name, "client": client},
            )
    return Principal(user=token.owner, role=role, via="token")


def find(conn: Connection, text: str) -> Token | None:
    """The token whose text is ``text``, whatever its state."""
    row = conn.execute(select(api_tokens).where(api_tokens.c.digest == digest(text))).first()
    return None if row is None else _token(row)


def get(conn: Connection, token_id: str) -> Token | None:
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    return None if row is None else _token(row)

"""Local users: argon2id password hashes, lock-out after repeated failures, and the session epoch
that ends every earlier session when a password changes or a user is disabled.

Single-sign-on users (OIDC) are kept here too, without a password, so the audit log and the roles
they last had are known; their role comes from the identity provider at each login.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, func, insert, select, update

from dashboard.auth import audit
from dashboard.errors import VantageError
from dashboard.privacy import ROLES, Principal, Role
from dashboard.store.db import Store
from dashboard.store.schema import users

#: argon2id with the library's defaults (RFC 9106's second recommended profile).
_HASHER = PasswordHasher()
#: A hash verified against when the user does not exist, so a wrong name costs as long as a wrong
#: password and timing does not tell which names exist.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
NAME_PATTERN = r"^[A-Za-z0-9._@+-]{1,128}$"


class UserError(VantageError):
    """A user could not be added or changed as asked (the message says why)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    source: str
    disabled: bool
    session_epoch: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def principal(self, via: str = "session") -> Principal:
        return Principal(user=self.name, role=self.role, via=via)


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt came to: the user, or why not (a reason for the log, never for the page)."""

    user: User | None
    reason: Literal["ok", "unknown", "wrong_password", "locked", "disabled", "no_password"]


def _user(row: Any) -> User:
    m = row._mapping
    return User(
        name=m["name"],
        role=cast(Role, m["role"]),
        source=m["source"],
        disabled=bool(m["disabled"]),
        session_epoch=int(m["session_epoch"]),
        locked_until=m["locked_until"],
        created_at=m["created_at"],
        last_login_at=m["last_login_at"],
    )


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")


def generate_password() -> str:
    """A random password of 20 URL-safe characters (about 120 bits)."""
    return secrets.token_urlsafe(15)


def get(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return None if row is None else _user(row)


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def add(store: Store, name: str, role: str, password: str, *, now: datetime, actor: str) -> User:
    """A new local user; UserError if the name is taken or the password too short."""
    if not re.match(NAME_PATTERN, name):
        raise UserError(f"user name {name!r}: expected 1-128 letters, digits or . _ @ + -")
    role_ = check_role(role)
    check_password(password)
    digest = _HASHER.hash(password)
    with store.begin() as conn:
        if get(conn, name) is not None:
            raise UserError(f"user {name!r} exists already")
        conn.execute(
            insert(users).values(
                name=name,
                role=role_,
                password_hash=digest,
                source="local",
                disabled=False,
                session_epoch=0,
                failed_logins=0,
                created_at=now,
                password_changed_at=now,
            )
        )
        audit.record(
            conn,
            actor=actor,
            action="user.add",
            at=now,
            target_type="user",
            target_id=name,
            detail={"role": role_},
        )
        user = get(conn, name)
    assert user is not None
    return user


def _change(
    store: Store,
    name: str,
    values: dict[str, Any],
    *,
    now: datetime,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
) -> User:
    with store.begin() as conn:
        if get(conn, name) is None:
            raise UserError(f"no user {name!r}")
        conn.execute(update(users).where(users.c.name == name).values(**values))
        audit.record(
            conn, actor=actor, action=action, at=now, target_type="user", target_id=name, detail=detail
        )
        user = get(conn, name)
    assert user is not None
    return user


def set_password(store: Store, name: str, password: str, *, now: datetime, actor: str) -> User:
    """A new password; every session of the user ends, and a lock-out is lifted."""
    check_password(password)
    return _change(
        store,
        name,
        {
            "password_hash": _HASHER.hash(password),
            "password_changed_at": now,
            "failed_logins": 0,
            "locked_until": None,
            "session_epoch": users.c.session_epoch + 1,
        },
        now=now,
        actor=actor,
        action="user.passwd",
    )


def set_role(store: Store, name: str, role: str, *, now: datetime, actor: str) -> User:
    role_ = check_role(role)
    return _change(
        store,
        name,
        {"role": role_, "session_epoch": users.c.session_epoch + 1},
        now=now,
        actor=actor,
        action="user.role",
        detail={"role": role_},
    )


def set_disabled(store: Store, name: str, disabled: bool, *, now: datetime, actor: str) -> User:
    """Disable (every session ends, tokens it owns stop working) or enable a user."""
    return _change(
        store,
        name,
        {
            "disabled": disabled,
            "session_epoch": users.c.session_epoch + 1,
            "failed_logins": 0,
            "locked_until": None,
        },
        now=now,
        actor=actor,
        action="user.disable" if disabled else "user.enable",
    )


def authenticate(
    store: Store,
    name: str,
    password: str,
    *,
    now: datetime,
    lockout_after: int,
    lockout_for: timedelta,
    client: str | None = None,
) -> LoginResult:
    """Check a password; count failures and lock the user out for ``lockout_for`` after
    ``lockout_after`` failures in a row. Writes ``login`` or ``login.failed`` to the audit log."""
    name = name[:128]
    password = password[:MAX_PASSWORD_LENGTH]
    with store.begin() as conn:
        row = conn.execute(select(users).where(users.c.name == name).with_for_update()).first()
        detail: dict[str, Any] = {"client": client, "method": "password"}
        if row is None:
            _verify(_DUMMY_HASH, password)
            result = LoginResult(None, "unknown")
        else:
            user = _user(row)
            stored = row._mapping["password_hash"]
            if user.disabled:
                _verify(_DUMMY_HASH, password)
                result = LoginResult(None, "disabled")
            elif user.locked_until is not None and user.locked_until > now:
                _verify(_DUMMY_HASH, password)
                result = LoginResult(None, "locked")
            elif not stored:
                _verify(_DUMMY_HASH, password)
                result = LoginResult(None, "no_password")
            elif _verify(stored, password):
                values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
                if _HASHER.check_needs_rehash(stored):
                    values["password_hash"] = _HASHER.hash(password)
                conn.execute(update(users).where(users.c.name == name).values(**values))
                result = LoginResult(get(conn, name), "ok")
            else:
                failed = int(row._mapping["failed_logins"]) + 1
                values = {"failed_logins": failed}
                if failed >= lockout_after:
                    values.update(failed_logins=0, locked_until=now + lockout_for)
                    detail["locked_for_s"] = int(lockout_for.total_seconds())
                conn.execute(update(users).where(users.c.name == name).values(**values))
                result = LoginResult(None, "wrong_password")
        if result.reason == "ok":
            audit.record(
                conn, actor=name, action="login", at=now, target_type="user", target_id=name, detail=detail
            )
        else:
            detail["reason"] = result.reason
            audit.record(
                conn,
                actor=name,
                action="login.failed",
                at=now,
                target_type="user",
                target_id=name,
                detail=detail,
            )
    return result


def _verify(digest: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(digest, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def sso_login(store: Store, name: str, role: Role, *, now: datetime, issuer: str, client: str | None) -> User:
    """A single-sign-on user, created or updated with the role the identity provider gave; refused
    (UserError) if a local user of that name exists or the user was disabled here."""
    with store.begin() as conn:
        existing = get(conn, name)
        if existing is not None and existing.source != "oidc":
            raise UserError(f"user {name!r} is a local user; single sign-on may not take it over")
        if existing is not None and existing.disabled:
            raise UserError(f"user {name!r} is disabled")
        if existing is None:
            conn.execute(
                insert(users).values(
                    name=name,
                    role=role,
                    password_hash=None,
                    source="oidc",
                    disabled=False,
                    session_epoch=0,
                    failed_logins=0,
                    created_at=now,
                    last_login_at=now,
                )
            )
        else:
            conn.execute(update(users).where(users.c.name == name).values(role=role, last_login_at=now))
        audit.record(
            conn,
            actor=name,
            action="login",
            at=now,
            target_type="user",
            target_id=name,
            detail={"client": client, "method": "oidc", "issuer": issuer, "role": role},
        )
        user = get(conn, name)
    assert user is not None
    return user


def ensure_first_admin(store: Store, password: str | None, *, now: datetime) -> str | None:
    """With no user at all, create ``admin`` with ``password`` (or a generated one, returned so the
    caller can show it once); with users already, do nothing and return None."""
    with store.connect() as conn:
        if count(conn) > 0:
            return None
    chosen = password or generate_password()
    try:
        add(store, "admin", "admin", chosen, now=now, actor="vantage")
    except UserError:
        if password is not None and len(password) < MIN_PASSWORD_LENGTH:
            raise
        return None  # another process created it first
    return chosen

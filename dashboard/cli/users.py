"""``vantage users`` and ``vantage tokens``: who may log in, and the API tokens of people and services.

Passwords are read from standard input (``--password-stdin``), from a prompt, or generated and shown
once; never from an argument, which other users of the host could read in the process list. A
token's text is shown once when it is made: the store keeps only its digest.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from dashboard.auth import tokens, users
from dashboard.auth.users import UserError
from dashboard.cli import common
from dashboard.privacy import ROLES


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


ACTOR = _actor()


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password to set, and whether it was generated (and so must be shown)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if args.generate or not sys.stdin.isatty():
        return users.generate_password(), True
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise UserError("the passwords differ")
    return first, False


def _run(func: object) -> int:
    try:
        return int(func())  # type: ignore[operator]
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def cmd_users_add(args: argparse.Namespace) -> int:
    def go() -> int:
        ctx = common.context(args)
        password, generated = _password(args)
        user = users.add(ctx.store, args.name, args.role, password, now=ctx.now(), actor=ACTOR)
        print(f"user {user.name} added ({user.role})")
        if generated:
            print(f"password (shown once): {password}")
        return 0

    return _run(go)


def cmd_users_passwd(args: argparse.Namespace) -> int:
    def go() -> int:
        ctx = common.context(args)
        password, generated = _password(args)
        users.set_password(ctx.store, args.name, password, now=ctx.now(), actor=ACTOR)
        print(f"password of {args.name} changed; its sessions have ended")
        if generated:
            print(f"password (shown once): {password}")
        return 0

    return _run(go)


def cmd_users_role(args: argparse.Namespace) -> int:
    def go() -> int:
        ctx = common.context(args)
        users.set_role(ctx.store, args.name, args.role, now=ctx.now(), actor=ACTOR)
        print(f"{args.name} is now {args.role}; its sessions have ended")
        return 0

    return _run(go)


def cmd_users_disable(args: argparse.Namespace) -> int:
    def go() -> int:
        ctx = common.context(args)
        users.set_disabled(ctx.store, args.name, not args.enable, now=ctx.now(), actor=ACTOR)
        print(
            f"{args.name} {'enabled' if args.enable else 'disabled; its sessions and tokens no longer work'}"
        )
        return 0

    return _run(go)


def cmd_users_list(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    with ctx.store.connect() as conn:
        rows = users.list_users(conn)
    now = ctx.now()
    print(f"{'name':24} {'role':9} {'source':6} {'state':9} last login")
    for u in rows:
        state = (
            "disabled" if u.disabled else "locked" if u.locked_until and u.locked_until > now else "active"
        )
        last = u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never"
        print(f"{u.name:24} {u.role:9} {u.source:6} {state:9} {last}")
    return 0


def cmd_tokens_add(args: argparse.Namespace) -> int:
    def go() -> int:
        ctx = common.context(args)
        token, text = tokens.create(
            ctx.store, args.name, owner=args.user, role=args.role, days=args.days, now=ctx.now(), actor=ACTOR
        )
        print(
            f"token {token.id} ({token.role}, owner {token.owner}) "
            f"valid until {token.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        print(f"token (shown once): {text}")
        return 0

    return _run(go)


def cmd_tokens_list(args: argparse.Namespace) -> int:
    ctx = common.context(args)
    now = ctx.now()
    with ctx.store.connect() as conn:
        rows = tokens.list_tokens(conn, owner=args.user)
    print(f"{'id':16} {'name':24} {'owner':16} {'role':9} {'state':8} {'expires':16} last used")
    for t in rows:
        last = t.last_used_at.isoformat(timespec="minutes") if t.last_used_at else "never"
        print(
            f"{t.id:16} {t.name[:24]:24} {t.owner[:16]:16} {t.role:9} {t.state(now):8} "
            f"{t.expires_at:%Y-%m-%d %H:%M} {last}"
        )
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    def go() -> int:
        ctx = common.context(args)
        tokens.revoke(ctx.store, args.id, now=ctx.now(), actor=ACTOR)
        print(f"token {args.id} revoked")
        return 0

    return _run(go)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="local users: add, change password or role, disable, list")
    us = p.add_subparsers(dest="users_command", required=True)
    add = us.add_parser("add", help="add a local user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    for q in (add, passwd := us.add_parser("passwd", help="set a user's password (ends its sessions)")):
        q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        q.add_argument("--generate", action="store_true", help="generate a password and show it once")
    add.set_defaults(func=cmd_users_add)
    passwd.add_argument("name")
    passwd.set_defaults(func=cmd_users_passwd)
    role = us.add_parser("role", help="change a user's role (ends its sessions)")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=cmd_users_role)
    dis = us.add_parser("disable", help="disable a user: its sessions end, its tokens stop working")
    dis.add_argument("name")
    dis.set_defaults(func=cmd_users_disable, enable=False)
    en = us.add_parser("enable", help="enable a disabled user")
    en.add_argument("name")
    en.set_defaults(func=cmd_users_disable, enable=True)
    us.add_parser("list", help="every user with role and state").set_defaults(func=cmd_users_list)

    p = sub.add_parser("tokens", help="API tokens: add (shown once), list, revoke")
    ts = p.add_subparsers(dest="tokens_command", required=True)
    add = ts.add_parser("add", help="make a token for a user or service account")
    add.add_argument("name", help="what uses it, e.g. 'noc-wall-3' or 'ticketing-sync'")
    add.add_argument("--user", required=True, help="the user it acts for (its rights cap the token's)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--days", type=float, default=90.0, help="valid for this many days (default 90, at most 366)"
    )
    add.set_defaults(func=cmd_tokens_add)
    ls = ts.add_parser("list", help="every token with its state")
    ls.add_argument("--user", help="only this user's tokens")
    ls.set_defaults(func=cmd_tokens_list)
    rv = ts.add_parser("revoke", help="revoke a token at once")
    rv.add_argument("id")
    rv.set_defaults(func=cmd_tokens_revoke)

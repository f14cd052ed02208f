"""Backup and restore of a store, online: the service keeps running while a backup is taken.

PostgreSQL: ``pg_dump`` in its custom format (one consistent snapshot, taken without blocking
writers), restored with ``pg_restore`` into an empty database or schema, after which
``vantage db upgrade`` brings an older backup up to the running release. A store kept in one
schema (``Store(schema=...)``) is dumped and restored as that schema alone.

SQLite: the engine's online backup API, page by page, so a backup taken while the scheduler writes
is a consistent copy of one moment (a plain file copy of a database in WAL mode is not).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url, text

from dashboard.store.db import Store, redact


class BackupError(RuntimeError):
    """A backup or restore that could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    revision: str | None


def backup(store: Store, path: str | Path) -> BackupResult:
    """Write a consistent backup of ``store`` to ``path`` (refusing to overwrite a file)."""
    target = Path(path)
    if target.exists():
        raise BackupError(f"{target}: already exists; choose a new file (a backup never overwrites one)")
    target.parent.mkdir(parents=True, exist_ok=True)
    revision = store.current_revision()
    if store.dialect == "sqlite":
        _sqlite_copy(_sqlite_path(store), target)
    elif store.dialect == "postgresql":
        args = ["--format=custom", "--no-owner", "--no-privileges", f"--file={target}"]
        if store.schema:
            args.append(f"--schema={store.schema}")
        _run_pg("pg_dump", store, args)
    else:
        raise BackupError(f"{redact(store.url)}: backups are made for SQLite and PostgreSQL stores only")
    return BackupResult(path=target, bytes=target.stat().st_size, revision=revision)


def restore(store: Store, path: str | Path) -> BackupResult:
    """Restore the backup at ``path`` into ``store``, which must hold no Vantage schema yet.

    Restoring over a live store would mix two histories; restore into a new database (or schema),
    check it, then point the service at it.
    """
    source = Path(path)
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    if store.current_revision() is not None:
        raise BackupError(
            f"{redact(store.url)}: already holds a Vantage store (revision {store.current_revision()}); "
            "restore into an empty database or schema"
        )
    if store.dialect == "sqlite":
        _sqlite_copy(source, _sqlite_path(store))
    elif store.dialect == "postgresql":
        if store.schema:
            with store.begin() as conn:  # pg_restore creates the schema itself
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{store.schema}"'))
        _run_pg("pg_restore", store, ["--no-owner", "--no-privileges", "--exit-on-error", str(source)])
    else:
        raise BackupError(f"{redact(store.url)}: backups are made for SQLite and PostgreSQL stores only")
    store.dispose()
    return BackupResult(path=source, bytes=source.stat().st_size, revision=store.current_revision())


def _sqlite_path(store: Store) -> Path:
    db = make_url(store.url).database
    if not db or db == ":memory:" or db.startswith("file:"):
        raise BackupError(f"{redact(store.url)}: only a SQLite store in a file can be backed up")
    return Path(db).expanduser()


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=4096)
        finally:
            dst.close()
    finally:
        src.close()


def _run_pg(tool: str, store: Store, args: list[str]) -> None:
    exe = shutil.which(tool)
    if exe is None:
        raise BackupError(
            f"{tool} is not on PATH: install the PostgreSQL client tools of the server's version"
        )
    url = make_url(store.url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password  # handed to the tool, never on its command line
    conn_args = [f"--dbname={url.database or ''}"]
    if url.host:
        conn_args.append(f"--host={url.host}")
    if url.port:
        conn_args.append(f"--port={url.port}")
    if url.username:
        conn_args.append(f"--username={url.username}")
    done = subprocess.run(
        [exe, *conn_args, "--no-password", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-800:]}")

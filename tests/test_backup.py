"""Backup and restore of a store, and migrations applied while the service runs."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from dashboard.store import Store
from dashboard.store.backup import BackupError, backup, restore
from dashboard.store.schema import accounts, cells, regions, subscribers
from tests.conftest import PG_URL, require_pg
from tests.incident_net import build_network


def _counts(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (cells, accounts, subscribers)
        }


def test_sqlite_backup_restores_the_same_store(sqlite_store: Store, tmp_path: Path) -> None:
    build_network(sqlite_store)
    before = _counts(sqlite_store)
    assert before["subscribers"] == 505
    done = backup(sqlite_store, tmp_path / "b" / "vantage.backup")
    assert done.bytes > 0 and done.revision == sqlite_store.current_revision()

    restored = Store(f"sqlite:///{tmp_path / 'restored.db'}")
    try:
        result = restore(restored, done.path)
        assert result.revision == sqlite_store.current_revision()
        assert _counts(restored) == before
    finally:
        restored.dispose()


def test_backup_never_overwrites_and_restore_refuses_a_store(sqlite_store: Store, tmp_path: Path) -> None:
    build_network(sqlite_store)
    done = backup(sqlite_store, tmp_path / "one.backup")
    with pytest.raises(BackupError, match="already exists"):
        backup(sqlite_store, done.path)
    with pytest.raises(BackupError, match="already holds a Vantage store"):
        restore(sqlite_store, done.path)
    with pytest.raises(BackupError, match="no such backup file"):
        restore(Store(f"sqlite:///{tmp_path / 'x.db'}"), tmp_path / "missing.backup")


def test_sqlite_backup_while_a_writer_runs_is_consistent(sqlite_store: Store, tmp_path: Path) -> None:
    """A backup taken during writes holds a whole number of committed transactions."""
    build_network(sqlite_store)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            with sqlite_store.begin() as conn:  # a torn copy would show an odd count
                for _ in range(2):
                    conn.execute(regions.insert().values(id=f"w{i}", source="t", name="w"))
                    i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.2)
        done = backup(sqlite_store, tmp_path / "during.backup")
    finally:
        stop.set()
        writer.join()
    restored = Store(f"sqlite:///{tmp_path / 'during.db'}")
    try:
        restore(restored, done.path)
        with restored.connect() as conn:
            written = conn.execute(select(func.count()).where(regions.c.source == "t")).scalar_one()
        assert written % 2 == 0
    finally:
        restored.dispose()


@pytest.mark.postgres
def test_postgresql_backup_restores_into_a_new_database(pg_store: Store, tmp_path: Path) -> None:
    build_network(pg_store)
    before = _counts(pg_store)
    done = backup(pg_store, tmp_path / "pg.backup")
    assert done.bytes > 0

    db = f"vt_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{db}"
    restored = Store(url, schema=pg_store.schema)
    try:
        result = restore(restored, done.path)
        assert result.revision == pg_store.current_revision()
        assert _counts(restored) == before
        restored.upgrade()  # a restored store takes the running release's migrations as any other
    finally:
        restored.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def test_the_cli_backs_up_and_names_what_it_wrote(sqlite_store: Store, tmp_path: Path) -> None:
    target = tmp_path / "cli.backup"
    cmd = [
        sys.executable,
        "-m",
        "dashboard.cli",
        "--database-url",
        sqlite_store.url,
        "db",
        "backup",
        str(target),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"backed up to {target}" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert again.returncode == 1 and "already exists" in again.stdout


def _pg_schema_store() -> tuple[Store, str]:
    require_pg()
    schema = f"vt_{uuid.uuid4().hex[:12]}"
    return Store(PG_URL, schema=schema), schema


def _drop(schema: str) -> None:
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
def test_processes_upgrading_at_once_take_turns() -> None:
    """Every web worker and scheduler applies migrations as it starts: on one fresh store at once."""
    stores = []
    store, schema = _pg_schema_store()
    stores = [store, Store(PG_URL, schema=schema), Store(PG_URL, schema=schema)]
    errors: list[BaseException] = []

    def up(s: Store) -> None:
        try:
            s.upgrade()
        except BaseException as err:
            errors.append(err)

    try:
        threads = [threading.Thread(target=up, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert {s.current_revision() for s in stores} == {store.current_revision()} != {None}
    finally:
        for s in stores:
            s.dispose()
        _drop(schema)


@pytest.mark.postgres
def test_a_migration_behind_a_long_read_steps_back_and_retries() -> None:
    """A reader holding a table keeps the migration from its lock: the upgrade rolls back and tries
    again instead of queueing every later query behind it, and succeeds once the reader is done."""
    store, schema = _pg_schema_store()
    store.upgrade("0009")
    reader = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    conn = reader.connect()
    txn = conn.begin()
    conn.execute(text("SELECT count(*) FROM incidents"))  # holds ACCESS SHARE until the transaction ends
    retried = threading.Event()
    seen: list[str] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())
            if "for a table lock" in record.getMessage():
                retried.set()

    def finish_read() -> None:
        retried.wait(120)  # the reader ends only once the migration has stepped back at least once
        txn.rollback()
        conn.close()

    watch = Watch(level=logging.WARNING)
    db_log = logging.getLogger("dashboard.store.db")
    db_log.addHandler(watch)
    ender = threading.Thread(target=finish_read)
    try:
        ender.start()
        store.upgrade("0010", lock_timeout_s=0.2)
        assert store.current_revision() == "0010"
        assert retried.is_set() and any("waited 0.2 s for a table lock" in m for m in seen)
    finally:
        retried.set()
        ender.join()
        db_log.removeHandler(watch)
        store.dispose()
        reader.dispose()
        _drop(schema)

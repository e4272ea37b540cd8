"""Work that only one instance may do at a time: scheduled submission, and processing one batch's
results. Job-level work needs no lock (every claim is a guarded transition); these are the
multi-step operations above a single job.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the duration of the
block (`pg_try_advisory_lock`). SQLite: an OS file lock (`flock`) on a file beside the database, one per
lock name, so that a `reviewer cycle` from cron and a `reviewer submit` by hand exclude each other too.
Both are released when the block ends or the process dies, however it dies: holding one proves that no
live process is inside the block, which is what lets recovery settle a dead process's work at once.

`exclusive` never waits (the loser skips the work: another instance is doing it); `serialized` waits its
turn, for work that every instance needs done but only one may do at a time (migrating the schema: whoever
comes second finds it done).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text

from reviewer.errors import DatabaseError, InstanceConflict


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Yields True if this instance holds `name` for the block, False if another one does."""
    if engine.dialect.name == "sqlite":
        with _file_lock(engine, name) as held:
            yield held
        return
    with engine.connect() as connection:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                connection.commit()


@contextmanager
def serialized(engine: Engine, name: str) -> Iterator[None]:
    """Waits until this instance holds `name`, and holds it for the block."""
    if engine.dialect.name == "sqlite":
        with _file_lock(engine, name, wait=True):
            yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _key(name)})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
            connection.commit()


@contextmanager
def _file_lock(engine: Engine, name: str, wait: bool = False) -> Iterator[bool]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield True  # a database only this process can open
        return
    path = Path(f"{database}.{hashlib.sha256(name.encode()).hexdigest()[:12]}.lock")
    with _private_open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _private_open(path: Path) -> IO[str]:
    """The lock file, created readable by its owner only (it sits beside a database of private diffs)."""
    try:
        return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "a+")
    except OSError as exc:  # a read-only or missing folder: one line, not a traceback
        raise DatabaseError(f"cannot open the lock file {path}: {exc.strerror}",
                            "make the database's folder writable by this user") from None


@contextmanager
def single_instance(engine: Engine) -> Iterator[None]:
    """On SQLite, refuse a second `reviewer run` on the same database file (an OS file lock, released
    when the process exits however it exits)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    path = Path(f"{database}.lock")
    handle: IO[str] = _private_open(path)  # closed in the finally below
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstanceConflict(
                f"another reviewer instance is already running on {database}",
                "SQLite supports one instance; run several on PostgreSQL (database_url: postgresql://...)",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()

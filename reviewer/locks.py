"""Work that only one instance may do at a time: scheduled submission, and processing one batch's
results. Job-level work needs no lock (every claim is a guarded transition); these are the
multi-step operations above a single job.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the duration of the
block (`pg_try_advisory_lock`); it is released when the block ends or the process dies. SQLite runs a
single instance (see `single_instance`), so the lock is always granted.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from sqlalchemy import Engine, text

from reviewer.errors import InstanceConflict


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Yields True if this instance holds `name` for the block, False if another one does."""
    if engine.dialect.name != "postgresql":
        yield True
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
def single_instance(engine: Engine) -> Iterator[None]:
    """On SQLite, refuse a second `reviewer run` on the same database file (an OS file lock, released
    when the process exits however it exits)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    path = Path(f"{database}.lock")
    handle: IO[str] = open(path, "a+")
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

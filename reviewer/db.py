"""Database plumbing: engine and sessions for SQLite (embedded default) and PostgreSQL (production),
exact UTC timestamps on both, stable constraint names, and Alembic as the only way the schema changes.

The schema itself is applied by `reviewer.migrate` (Alembic), which this module does not load: importing
the models costs no Alembic.

A SQLite database holds private diffs: its file is created readable by its owner only (0600) before
SQLite opens it, and SQLite gives its -wal and -shm files the database file's permissions. SQLite waits
`?timeout=SECONDS` (default 30) for a lock. Only SQLite and PostgreSQL URLs are accepted. A failure of the
database itself (missing, unreachable, read-only, full, locked) becomes one `DatabaseError` line with what
to do (`database_error`), at the edges that run commands and steps (cli.py, scheduler.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import URL, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from reviewer.errors import ConfigError, DatabaseError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SQLITE_TIMEOUT_SECONDS = 30.0
# The driver errors that are the database's condition, not a bug (IntegrityError and DataError stay bugs).
DATABASE_ERRORS = (OperationalError, InterfaceError, InternalError, ProgrammingError)
_HINTS = (  # (words in the driver's message, what to do), first match wins
    (("does not exist",), "create it, or correct database_url"),
    (("unable to open database file",), "check that its folder exists and that this user may write there"),
    (("read-only transaction",), "the server takes no writes (a standby, or default_transaction_read_only); "
                                 "point database_url at one that does"),
    (("readonly", "read-only"), "make the database file and its folder writable by this user"),
    (("disk is full", "no space left", "could not extend", "could not write"),
     "free disk space; nothing was recorded, the next run does this step again"),
    (("database is locked", "lock timeout", "could not obtain lock"),
     "another process holds the database; the next run tries again (SQLite waits ?timeout= seconds)"),
    (("connection refused", "could not connect", "connection failed", "timeout expired", "server closed"),
     "check that the database server is running and database_url"),
    (("permission denied", "password authentication failed"), "check the database user's rights in database_url"),
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite drops tzinfo; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver we ship), not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return on_connect


def _private_file(_dialect: Any, _record: Any, cargs: list[Any], _cparams: dict[str, Any]) -> None:
    """Before SQLite opens the file: create it readable by its owner only, if it does not exist yet."""
    path = cargs[0] if cargs else None
    if not isinstance(path, str) or not path or path == ":memory:" or path.startswith("file:"):
        return
    with suppress(OSError):  # it exists, or its folder is missing or read-only: SQLite then says so
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_engine(parsed: URL) -> Engine:
    try:
        seconds = float(parsed.query.get("timeout", SQLITE_TIMEOUT_SECONDS))  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError("database_url", "", "?timeout= must be a number of seconds") from None
    engine = create_engine(parsed.difference_update_query(["timeout"]), connect_args={"timeout": seconds})
    event.listen(engine, "do_connect", _private_file)
    event.listen(engine, "connect", _sqlite_pragmas(int(seconds * 1000)))
    return engine


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(normalize_url(url))
    except (ArgumentError, ValueError) as exc:  # what sqlalchemy raises for a malformed URL
        raise ConfigError("database_url", "", f"{url!r} is not a database URL ({exc}); "
                          "use sqlite:///reviewer.db or postgresql://user@host/db") from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ConfigError("database_url", "", f"{parsed.get_backend_name()!r} databases are not supported; "
                          "use sqlite:///reviewer.db or postgresql://user@host/db")
    try:
        return _sqlite_engine(parsed) if parsed.get_backend_name() == "sqlite" else create_engine(
            parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:  # a driver that is not installed (postgresql+psycopg2://)
        raise ConfigError("database_url", "", f"cannot use {parsed.drivername}: {exc}; "
                          "use postgresql:// (psycopg 3, installed)") from None


def shown_url(url: str) -> str:
    """The database URL as messages show it: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(an invalid URL)"


def database_error(exc: Exception, url: str | None = None) -> DatabaseError:
    """One line for a failure of the database itself (one of `DATABASE_ERRORS`), with what to do."""
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split("\n")[0].split()) or type(orig).__name__
    lowered = detail.lower()
    hint = next((h for words, h in _HINTS if any(w in lowered for w in words)),
                "check database_url and the database server")
    return DatabaseError(f"database {shown_url(url)}: {detail}" if url else f"database: {detail}", hint)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session

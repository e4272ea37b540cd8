"""The schema's only way to change: Alembic migrations from `migrations/` (shipped inside the package).

`check_schema_current` refuses to work on a database that is not at the migrations' head and names
the command that fixes it; `upgrade` applies pending migrations (backing a SQLite file up first, into a
file readable by its owner only, like the database).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine

from reviewer.errors import DatabaseError, SchemaOutOfDate


def migrations_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://"))).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(current, head)


def _backup_sqlite(engine: Engine, current: str) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    source = Path(database)
    if not source.exists():
        return None
    backup = source.with_name(f"{source.name}.bak-{current}")
    try:
        _private_copy(source, backup)
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseError(f"cannot back up {source} to {backup.name} before migrating: {exc}",
                            "make its folder writable and free some disk space; nothing was migrated") from None
    return backup


def _private_copy(source: Path, backup: Path) -> None:
    """A consistent copy made with SQLite's backup API (what is still in the -wal file included), into a
    file readable by its owner only: it holds the same private diffs as the database."""
    os.close(os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(backup, 0o600)  # an older backup of the same revision may have been created more open
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(backup)) as copy:
        original.backup(copy)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    before = current_revision(engine)
    if before == head_revision() and revision == "head":
        return before, before
    if before is not None:
        _backup_sqlite(engine, before)
    command.upgrade(alembic_config(engine), revision)
    return before, current_revision(engine) or ""


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)

"""The schema's only way to change: Alembic migrations from `migrations/` (shipped inside the package).

`check_schema_current` refuses to work on a database that is not at the migrations' head and names
the command that fixes it; `upgrade` applies pending migrations (backing a SQLite file up first, into a
file readable by its owner only, like the database).

Alembic is imported only by the functions that need it: `recorded_revision` reads the `alembic_version`
row with one query, so a command on a database at `HEAD_REVISION` (every start but the first after an
upgrade) never loads it. `HEAD_REVISION` is kept equal to the migrations' head by a test.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, inspect, text

from reviewer.errors import DatabaseError, SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

HEAD_REVISION = "0008"  # Alembic's head: update it with every new migration (tests/unit/test_cli_imports.py)
VERSION_TABLE = "alembic_version"


def migrations_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://"))).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def recorded_revision(engine: Engine) -> str | None:
    """The one revision in `alembic_version`, read without Alembic; None for no table, no row or several
    rows (the callers then ask Alembic, which knows what those mean)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


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
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
    return before, current_revision(engine) or ""


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)

"""Migrations on both engines: upgrade from empty, models match (alembic check), downgrade and
upgrade again with rows in place, and refusal to run on a database that is behind."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import inspect, text

from reviewer.db import make_engine
from reviewer.migrate import alembic_config, check_schema_current, current_revision, downgrade, head_revision, upgrade
from reviewer.errors import SchemaOutOfDate


def test_upgrade_from_empty_then_check(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(SchemaOutOfDate, match="reviewer db upgrade"):
        check_schema_current(engine)
    assert upgrade(engine) == (None, head_revision())
    check_schema_current(engine)
    command.check(alembic_config(engine))  # models and migrations agree
    assert {"review_jobs", "job_events", "batches", "results", "repo_states"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_downgrade_and_upgrade_round_trip_keeps_working(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert "review_jobs" not in inspect(engine).get_table_names()
    upgrade(engine)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO review_jobs (repository, pr_number, head_sha, base_ref, head_ref, title, author, body, url,"
            " labels, diff, diff_source, state, attempts, post_attempts, created_at, updated_at) VALUES"
            " ('a/b', 1, 'abc', 'main', 'f', 't', 'u', '', '', '', 'd', 'diff', 'queued', 0, 0, :now, :now)"),
            {"now": now})
    upgrade(engine)  # already at head: a no-op that keeps the rows
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM review_jobs")).scalar() == 1
    engine.dispose()


def test_sqlite_file_is_backed_up_before_an_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from reviewer.migrate import _backup_sqlite

    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    backup = _backup_sqlite(engine, "0001")
    assert backup is not None and backup.name == "r.db.bak-0001" and backup.stat().st_size > 0
    engine.dispose()

"""Migrations on both engines: upgrade from empty, models match (alembic check), a database seeded with
rows at the first revision upgraded one migration at a time (rows intact, new columns at their server
defaults, readable through the models), a downgrade to the first revision and back with rows in place,
and refusal to run on a database that is behind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from reviewer.db import make_engine, session_factory, transaction
from reviewer.errors import SchemaOutOfDate
from reviewer.migrate import alembic_config, check_schema_current, current_revision, downgrade, head_revision, upgrade
from reviewer.models import Batch, JobEvent, RepoState, Result, ReviewJob


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database of each kind, disposed even when the test fails."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_then_check(engine: Engine) -> None:
    with pytest.raises(SchemaOutOfDate, match="reviewer db upgrade"):
        check_schema_current(engine)
    assert upgrade(engine) == (None, head_revision())
    check_schema_current(engine)
    command.check(alembic_config(engine))  # models and migrations agree
    assert {"review_jobs", "job_events", "batches", "results", "repo_states"} <= set(inspect(engine).get_table_names())


def test_downgrade_to_base_and_upgrade_again_on_an_empty_database(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert "review_jobs" not in inspect(engine).get_table_names()
    assert upgrade(engine) == (None, head_revision())
    check_schema_current(engine)


# -------------------------------------------------------------------------------------------------
# Rows as the service wrote them at the first revision, and what must become of them.

T0 = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)

# The columns of each table as 0001_initial.py creates them: rows are written and compared through these
# only, so a later migration that drops, renames or mangles one of them fails the comparison.
FIRST_REVISION_COLUMNS: dict[str, set[str]] = {
    "batches": {"id", "anthropic_id", "state", "processing_status", "request_count", "owner", "error",
                "created_at", "submitted_at", "ended_at", "processed_at", "last_polled_at"},
    "repo_states": {"repository", "last_submitted_at", "last_collected_at"},
    "review_jobs": {"id", "repository", "pr_number", "head_sha", "base_sha", "base_ref", "head_ref", "title",
                    "author", "body", "url", "labels", "diff", "diff_source", "state", "reason", "attempts",
                    "lease_owner", "lease_expires_at", "batch_id", "model", "review_text", "post_attempts",
                    "github_review_id", "posted_url", "posted_at", "created_at", "updated_at"},
    "job_events": {"id", "job_id", "from_state", "to_state", "reason", "actor", "at"},
    "results": {"id", "batch_id", "job_id", "custom_id", "result_type", "is_batch", "model", "stop_reason",
                "text", "content_json", "error_type", "error_message", "input_tokens", "output_tokens",
                "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation_5m_tokens",
                "cache_creation_1h_tokens", "cost_micro_usd", "standard_cost_micro_usd", "cache_saved_micro_usd",
                "created_at"},
}
PRIMARY_KEYS = {"batches": "id", "repo_states": "repository", "review_jobs": "id", "job_events": "id",
                "results": "id"}

DIFF = (
    "diff --git a/src/app.py b/src/app.py\n"
    "--- a/src/app.py\n+++ b/src/app.py\n"
    "@@ -1,3 +1,4 @@\n import os\n+import sys  # caf\u00e9 \u2014 \u00fcml\u00e4ut\n def main():\n"
    "-    return 0\n+    return sys.argv and 0\n"
)

BATCHES: dict[str, dict[str, Any]] = {
    "ended": dict(anthropic_id="msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d", state="ended", processing_status="ended",
                  request_count=3, owner="host-a:4021", error=None, created_at=T0,
                  submitted_at=T0 + timedelta(seconds=2), ended_at=T0 + timedelta(hours=1, minutes=3),
                  processed_at=T0 + timedelta(hours=1, minutes=4), last_polled_at=T0 + timedelta(hours=1)),
    "submitted": dict(anthropic_id="msgbatch_01JzP8GQ2m3TdFv7b9XyQp6L", state="submitted",
                      processing_status="in_progress", request_count=1, owner="host-b:77", error=None,
                      created_at=T0 + timedelta(hours=2), submitted_at=T0 + timedelta(hours=2, seconds=1),
                      ended_at=None, processed_at=None, last_polled_at=T0 + timedelta(hours=2, minutes=5)),
    "abandoned": dict(anthropic_id=None, state="abandoned", processing_status=None, request_count=2,
                      owner="host-a:4021", error="APIConnectionError: Connection refused",
                      created_at=T0 + timedelta(hours=3), submitted_at=None, ended_at=None, processed_at=None,
                      last_polled_at=None),
}


def _job(number: int, sha: str, state: str, batch: str | None = None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        repository="acme/api", pr_number=number, head_sha=sha * 40, base_sha="0" * 40, base_ref="main",
        head_ref=f"feature/{number}", title=f"Pull request #{number}: r\u00e9sum\u00e9 parsing \u2192 faster",
        author="octocat", body="Fixes #12.\n\n- one\n- two\n", url=f"https://github.com/acme/api/pull/{number}",
        labels="bug,needs review", diff=DIFF, diff_source="diff", state=state, reason=None, attempts=0,
        lease_owner=None, lease_expires_at=None, model=None, review_text=None, post_attempts=0,
        github_review_id=None, posted_url=None, posted_at=None, created_at=T0 - timedelta(minutes=number),
        updated_at=T0 + timedelta(minutes=number),
    )
    row["_batch"] = batch
    row.update(values)
    return row


JOBS: dict[str, dict[str, Any]] = {
    "posted": _job(1, "a", "posted", "ended", attempts=1, model="claude-opus-4-7", post_attempts=1,
                   review_text="## Summary\nLooks good.\n\n- `src/app.py:2` unused import",
                   github_review_id=3_141_592_653_589,  # above 2**31: the column must stay BIGINT
                   posted_url="https://github.com/acme/api/pull/1#pullrequestreview-3141592653589",
                   posted_at=T0 + timedelta(hours=1, minutes=5)),
    "failed": _job(2, "b", "failed", "ended", attempts=3, model="claude-opus-4-7",
                   reason="invalid_request_error: prompt is too long"),
    "submitted": _job(3, "c", "submitted", "submitted", attempts=1, model="claude-sonnet-4-5"),
    "posting": _job(4, "d", "posting", "ended", attempts=1, model="claude-opus-4-7", post_attempts=2,
                    review_text="No issues found.", lease_owner="host-a:4021",
                    lease_expires_at=T0 + timedelta(hours=1, minutes=10)),
    "queued": _job(5, "e", "queued", base_sha=None, diff_source="files", labels=""),
}

EVENTS: dict[str, list[tuple[str | None, str, str | None]]] = {
    "posted": [(None, "queued", "collected"), ("queued", "submitting", None), ("submitting", "submitted", None),
               ("submitted", "answered", "succeeded"), ("answered", "posting", None), ("posting", "posted", None)],
    "failed": [(None, "queued", "collected"), ("queued", "submitting", None), ("submitting", "submitted", None),
               ("submitted", "failed", "invalid_request_error: prompt is too long")],
    "submitted": [(None, "queued", "collected"), ("queued", "submitting", None),
                  ("submitting", "queued", "batch never created"), ("queued", "submitting", None),
                  ("submitting", "submitted", None)],
    "posting": [(None, "queued", "collected"), ("submitted", "answered", "succeeded"), ("answered", "posting", None)],
    "queued": [(None, "queued", "collected")],
}

RESULTS: list[dict[str, Any]] = [
    dict(_job="posted", _batch="ended", result_type="succeeded", is_batch=True, model="claude-opus-4-7",
         stop_reason="end_turn", text=JOBS["posted"]["review_text"],
         content_json='[{"type": "text", "text": "## Summary"}]', error_type=None, error_message=None,
         input_tokens=12_345, output_tokens=678, cache_creation_input_tokens=2_000, cache_read_input_tokens=9_000,
         cache_creation_5m_tokens=2_000, cache_creation_1h_tokens=0, cost_micro_usd=123_456,
         standard_cost_micro_usd=246_912, cache_saved_micro_usd=81_000, created_at=T0 + timedelta(hours=1, minutes=4)),
    dict(_job="failed", _batch="ended", result_type="errored", is_batch=True, model=None, stop_reason=None,
         text=None, content_json=None, error_type="invalid_request_error", error_message="prompt is too long",
         input_tokens=0, output_tokens=0, cache_creation_input_tokens=0, cache_read_input_tokens=0,
         cache_creation_5m_tokens=None, cache_creation_1h_tokens=None, cost_micro_usd=0, standard_cost_micro_usd=0,
         cache_saved_micro_usd=0, created_at=T0 + timedelta(hours=1, minutes=4)),
    dict(_job="posting", _batch=None, result_type="succeeded", is_batch=False, model="claude-opus-4-7",
         stop_reason="max_tokens", text="No issues found.", content_json=None, error_type=None, error_message=None,
         input_tokens=800, output_tokens=2048, cache_creation_input_tokens=0, cache_read_input_tokens=0,
         cache_creation_5m_tokens=None, cache_creation_1h_tokens=None, cost_micro_usd=55_000,
         standard_cost_micro_usd=55_000, cache_saved_micro_usd=0, created_at=T0 + timedelta(hours=1, minutes=4)),
]

REPO_STATE = dict(repository="acme/api", last_submitted_at=T0 + timedelta(hours=2),
                  last_collected_at=T0 + timedelta(hours=2, minutes=30))


@dataclass
class SeedIds:
    batches: dict[str, int]
    jobs: dict[str, int]


def _tables(connection: Connection) -> dict[str, Table]:
    """The tables as the database has them now (reflected), not as the models describe them."""
    metadata = MetaData()
    metadata.reflect(connection, only=list(FIRST_REVISION_COLUMNS))
    return dict(metadata.tables)


def _seed_at_first_revision(connection: Connection, tables: dict[str, Table]) -> SeedIds:
    """What the service would have written at 0001: three batches, five jobs in different states with their
    events, result lines (batch and non-batch) and a repository's state. Ids are left to the database, so
    that PostgreSQL's sequences advance as they did in production."""
    def new_id(table: str, values: dict[str, Any]) -> int:
        key = connection.execute(insert(tables[table]).values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    batches = {key: new_id("batches", row) for key, row in BATCHES.items()}
    jobs = {}
    for key, row in JOBS.items():
        values = {k: v for k, v in row.items() if not k.startswith("_")}
        values["batch_id"] = batches[row["_batch"]] if row["_batch"] else None
        jobs[key] = new_id("review_jobs", values)
    for key, events in EVENTS.items():
        for n, (source, target, reason) in enumerate(events):
            connection.execute(insert(tables["job_events"]).values(
                job_id=jobs[key], from_state=source, to_state=target, reason=reason, actor="host-a:4021",
                at=T0 + timedelta(seconds=n)))
    for row in RESULTS:
        values = {k: v for k, v in row.items() if not k.startswith("_")}
        connection.execute(insert(tables["results"]).values(
            **values, job_id=jobs[row["_job"]], custom_id=f"job-{jobs[row['_job']]}",
            batch_id=batches[row["_batch"]] if row["_batch"] else None))
    connection.execute(insert(tables["repo_states"]).values(**REPO_STATE))
    return SeedIds(batches, jobs)


def _snapshot(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every 0001 table, 0001 columns only, exactly as the driver returns them."""
    snapshot = {}
    for table, columns in FIRST_REVISION_COLUMNS.items():
        names = ", ".join(sorted(columns))
        rows = connection.execute(text(f"SELECT {names} FROM {table} ORDER BY {PRIMARY_KEYS[table]}")).all()
        snapshot[table] = [tuple(row) for row in rows]
    return snapshot


def _column_values(connection: Connection, table: str, *columns: str) -> list[tuple[Any, ...]]:
    names = ", ".join(columns)
    return [tuple(row) for row in connection.execute(text(f"SELECT {names} FROM {table} ORDER BY id"))]


def _assert_models_read_the_seed(engine: Engine, ids: SeedIds) -> None:
    """The ORM, at head, reads back exactly what was written at 0001 (with tz-aware UTC datetimes)."""
    sessions = session_factory(engine)
    with sessions() as session:
        jobs = {job.id: job for job in session.scalars(select(ReviewJob))}
        assert set(jobs) == set(ids.jobs.values())
        for key, expected in JOBS.items():
            job = jobs[ids.jobs[key]]
            for name, value in expected.items():
                if not name.startswith("_"):
                    assert getattr(job, name) == value, (key, name)
            assert job.batch_id == (ids.batches[expected["_batch"]] if expected["_batch"] else None)
            assert [(e.from_state, e.to_state, e.reason) for e in job.events] == EVENTS[key]
            assert [e.at for e in job.events] == [T0 + timedelta(seconds=n) for n in range(len(EVENTS[key]))]
            assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
            # the later migrations' defaults, as the ORM sees them
            assert (job.config_source, job.reserved_micro_usd, job.express) == ("", 0, False)
            assert (job.review_diff, job.review_base_sha, job.previous_summary, job.repo_rules, job.omitted) == \
                (None, None, None, None, None)
        batches = {batch.id: batch for batch in session.scalars(select(Batch))}
        assert set(batches) == set(ids.batches.values())
        for key, expected in BATCHES.items():
            batch = batches[ids.batches[key]]
            assert {name: getattr(batch, name) for name in expected} == expected, key
            assert (batch.cancel_requested_at, batch.cancel_requested_by) == (None, None)
        results = session.scalars(select(Result).order_by(Result.id)).all()
        assert len(results) == len(RESULTS)
        for result, expected in zip(results, RESULTS, strict=True):
            assert result.job_id == ids.jobs[expected["_job"]]
            assert result.batch_id == (ids.batches[expected["_batch"]] if expected["_batch"] else None)
            assert result.custom_id == f"job-{result.job_id}"
            assert {name: getattr(result, name) for name in expected if not name.startswith("_")} == \
                {name: value for name, value in expected.items() if not name.startswith("_")}
        state = session.get_one(RepoState, "acme/api")
        assert (state.last_submitted_at, state.last_collected_at) == \
            (REPO_STATE["last_submitted_at"], REPO_STATE["last_collected_at"])


def test_upgrade_a_database_seeded_at_the_first_revision(engine: Engine) -> None:
    assert upgrade(engine, "0001") == (None, "0001")
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set(FIRST_REVISION_COLUMNS)
    with engine.begin() as connection:
        tables = _tables(connection)
        assert {name: {c.name for c in table.columns} for name, table in tables.items()} == FIRST_REVISION_COLUMNS
        ids = _seed_at_first_revision(connection, tables)
    with engine.connect() as connection:
        seeded = _snapshot(connection)
    assert {table: len(rows) for table, rows in seeded.items()} == {
        "batches": 3, "repo_states": 1, "review_jobs": 5, "job_events": sum(map(len, EVENTS.values())), "results": 3}

    # 0002: review-quality columns on jobs (config_source NOT NULL, backfilled with ''), pull_skips
    assert upgrade(engine, "0002") == ("0001", "0002")
    with engine.connect() as connection:
        assert _snapshot(connection) == seeded
        assert _column_values(connection, "review_jobs", "config_source", "review_diff", "review_base_sha",
                              "previous_summary", "repo_rules", "omitted") == [("", None, None, None, None, None)] * 5
        assert connection.execute(text("SELECT count(*) FROM pull_skips")).scalar() == 0

    # 0003: who asked to cancel a batch, NULL for the existing batches
    assert upgrade(engine, "0003") == ("0002", "0003")
    with engine.connect() as connection:
        assert _snapshot(connection) == seeded
        assert _column_values(connection, "batches", "cancel_requested_at", "cancel_requested_by") == \
            [(None, None)] * 3

    # 0004: reservations (NOT NULL, 0) and the express flag (NOT NULL, false) on jobs; budget_locks.
    # On SQLite this recreates review_jobs (a server default that is an expression), which job_events and
    # results reference: every job, event and result line must come through the copy.
    assert upgrade(engine, "0004") == ("0003", "0004")
    with engine.connect() as connection:
        assert _snapshot(connection) == seeded
        rows = _column_values(connection, "review_jobs", "reserved_micro_usd", "express")
        assert [(reserved, bool(express)) for reserved, express in rows] == [(0, False)] * 5
        assert all(express is not None for _, express in rows)
        assert connection.execute(text("SELECT count(*) FROM budget_locks")).scalar() == 0

    # 0005: the GitHub conditional-request cache, empty
    assert upgrade(engine, "0005") == ("0004", "0005")
    with engine.connect() as connection:
        assert _snapshot(connection) == seeded
        assert connection.execute(text("SELECT count(*) FROM http_cache")).scalar() == 0

    upgrade(engine)  # whatever came after 0005
    assert current_revision(engine) == head_revision()
    check_schema_current(engine)
    command.check(alembic_config(engine))  # the upgraded schema is what the models describe
    with engine.connect() as connection:
        assert _snapshot(connection) == seeded
    _assert_models_read_the_seed(engine, ids)

    # the upgraded database keeps working: ids continue, constraints survived the table copies
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        job = ReviewJob(repository="acme/api", pr_number=6, head_sha="f" * 40, diff="d", state="queued",
                        created_at=T0, updated_at=T0)
        session.add(job)
        session.flush()
        session.add(JobEvent(job_id=job.id, from_state=None, to_state="queued", at=T0))
        assert job.id > max(ids.jobs.values())
    # uq_review_jobs_repository_pr_number_head_sha, fk_job_events_job_id_review_jobs, uq_results_batch_id_custom_id
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        session.add(ReviewJob(repository="acme/api", pr_number=1, head_sha="a" * 40, state="queued"))
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        session.add(JobEvent(job_id=max(ids.jobs.values()) + 100, to_state="queued"))
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        session.add(Result(batch_id=ids.batches["ended"], job_id=ids.jobs["posted"],
                           custom_id=f"job-{ids.jobs['posted']}", result_type="succeeded"))


def test_downgrade_to_the_first_revision_and_back_with_rows_in_place(engine: Engine) -> None:
    """Rows written at head survive a downgrade to 0001 (which drops the later columns and tables, and
    on SQLite recreates review_jobs and batches) and the upgrade back to head, which refills the dropped
    columns with their server defaults."""
    upgrade(engine)
    with engine.begin() as connection:
        ids = _seed_at_first_revision(connection, _tables(connection))
        # values only the later revisions know about, which the downgrade is expected to drop
        connection.execute(text("UPDATE review_jobs SET express = :yes, reserved_micro_usd = 4200,"
                                " config_source = '.github/reviewer.yml' WHERE id = :id"),
                           {"yes": True, "id": ids.jobs["queued"]})
        connection.execute(text("UPDATE batches SET cancel_requested_by = 'ops' WHERE id = :id"),
                           {"id": ids.batches["submitted"]})
        connection.execute(text("INSERT INTO http_cache (url, etag, body, updated_at)"
                                " VALUES ('https://api.github.com/repos/acme/api/pulls', 'W/\"1\"', '[]', :at)"),
                           {"at": T0})
    with engine.connect() as connection:
        before = _snapshot(connection)

    downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert not {"pull_skips", "budget_locks", "http_cache"} & set(inspect(engine).get_table_names())
    assert {c["name"] for c in inspect(engine).get_columns("review_jobs")} == FIRST_REVISION_COLUMNS["review_jobs"]
    with engine.connect() as connection:
        assert _snapshot(connection) == before

    assert upgrade(engine) == ("0001", head_revision())
    check_schema_current(engine)
    with engine.connect() as connection:
        assert _snapshot(connection) == before
        assert connection.execute(text("SELECT count(*) FROM http_cache")).scalar() == 0
        rows = connection.execute(text("SELECT express, reserved_micro_usd, config_source FROM review_jobs")).all()
        assert len(rows) == len(JOBS) and {(bool(e), r, c) for e, r, c in rows} == {(False, 0, "")}
        canceled = connection.execute(text("SELECT count(*) FROM batches WHERE cancel_requested_by IS NOT NULL"))
        assert canceled.scalar() == 0
    _assert_models_read_the_seed(engine, ids)


def test_sqlite_file_is_backed_up_before_an_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from reviewer.migrate import _backup_sqlite

    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    backup = _backup_sqlite(engine, "0001")
    assert backup is not None and backup.name == "r.db.bak-0001" and backup.stat().st_size > 0
    engine.dispose()

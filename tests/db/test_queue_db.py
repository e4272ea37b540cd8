"""The state machine on a real database: guarded transitions, events, leases, and claims."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from reviewer.db import make_engine, session_factory, transaction
from reviewer.migrate import upgrade
from reviewer.errors import ConcurrentTransition
from reviewer.models import JobEvent, ReviewJob
from reviewer.queue import State, claimable, record_created, transition

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def add_job(sessions, number: int = 1, sha: str = "a" * 40) -> int:  # type: ignore[no-untyped-def]
    with transaction(sessions) as session:
        job = ReviewJob(repository="acme/api", pr_number=number, head_sha=sha, diff="d", state="queued",
                        created_at=NOW, updated_at=NOW)
        session.add(job)
        session.flush()
        record_created(session, job, "test", NOW)
        return job.id


def test_transition_writes_state_and_event(sessions) -> None:  # type: ignore[no-untyped-def]
    job_id = add_job(sessions)
    with transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.SKIPPED, now=NOW, reason="draft", actor="me")
    with sessions() as session:
        job = session.get_one(ReviewJob, job_id)
        assert (job.state, job.reason) == ("skipped", "draft")
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        assert [(e.from_state, e.to_state) for e in events] == [(None, "queued"), ("queued", "skipped")]
        assert events[-1].at == NOW  # UTC round-trips with its tzinfo on both engines


def test_second_transition_from_the_same_state_loses(sessions) -> None:  # type: ignore[no-untyped-def]
    job_id = add_job(sessions)
    with transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW + timedelta(minutes=5))
    with pytest.raises(ConcurrentTransition):
        with transaction(sessions) as session:
            transition(session, job_id, State.QUEUED, State.SUBMITTING, now=NOW, actor="b")


def test_forbidden_transition_is_refused(sessions) -> None:  # type: ignore[no-untyped-def]
    job_id = add_job(sessions)
    with pytest.raises(ValueError, match="not allowed"):
        with transaction(sessions) as session:
            transition(session, job_id, State.QUEUED, State.POSTED, now=NOW)


def test_unique_job_per_head(sessions) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import IntegrityError

    add_job(sessions)
    with pytest.raises(IntegrityError):
        add_job(sessions)
    add_job(sessions, sha="b" * 40)


def test_claimable_skips_live_leases_and_finds_expired_ones(sessions) -> None:  # type: ignore[no-untyped-def]
    held, expired, free = add_job(sessions, 1), add_job(sessions, 2), add_job(sessions, 3)
    with transaction(sessions) as session:
        transition(session, held, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW + timedelta(minutes=5))
        transition(session, expired, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW - timedelta(seconds=1))
    with sessions() as session:
        assert [j.id for j in claimable(session, State.SUBMITTING, now=NOW, leased_only=True)] == [expired]
        assert [j.id for j in claimable(session, State.QUEUED, now=NOW)] == [free]

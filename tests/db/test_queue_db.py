"""The state machines on a real database: guarded transitions, events, leases, claims, batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from reviewer.db import make_engine, session_factory, transaction
from reviewer.errors import ConcurrentTransition
from reviewer.migrate import upgrade
from reviewer.models import Batch, JobEvent, ReviewJob
from reviewer.queue import (
    BatchState,
    State,
    claimable,
    create_job,
    expired_leases,
    iter_claimable,
    new_batch,
    set_batch_state,
    transition,
    transition_many,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
Sessions = sessionmaker[Session]


@pytest.fixture
def sessions(database_url: str) -> Iterator[Sessions]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield session_factory(engine)
    assert engine.pool.checkedout() == 0, "a test left a connection checked out"  # type: ignore[attr-defined]
    engine.dispose()


def add_job(sessions: Sessions, number: int = 1, sha: str = "a" * 40, initial: State = State.QUEUED) -> int:
    with transaction(sessions) as session:
        job = ReviewJob(repository="acme/api", pr_number=number, head_sha=sha, diff="d", created_at=NOW,
                        updated_at=NOW)
        create_job(session, job, initial, now=NOW, actor="test", reason=None if initial == State.QUEUED else "empty")
        return job.id


def events_of(sessions: Sessions, job_id: int) -> list[tuple[str | None, str]]:
    with sessions() as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        return [(e.from_state, e.to_state) for e in events]


def test_transition_writes_state_and_event(sessions: Sessions) -> None:
    job_id = add_job(sessions)
    with transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.SKIPPED, now=NOW, reason="draft", actor="me")
    with sessions() as session:
        job = session.get_one(ReviewJob, job_id)
        assert (job.state, job.reason) == (State.SKIPPED, "draft")
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        assert [(e.from_state, e.to_state) for e in events] == [(None, "queued"), ("queued", "skipped")]
        assert events[-1].at == NOW  # UTC round-trips with its tzinfo on both engines


def test_a_job_created_skipped_has_its_first_event_from_no_state(sessions: Sessions) -> None:
    job_id = add_job(sessions, initial=State.SKIPPED)
    assert events_of(sessions, job_id) == [(None, "skipped")]
    with pytest.raises(ValueError, match="cannot be created posted"):
        add_job(sessions, 2, initial=State.POSTED)


def test_second_transition_from_the_same_state_loses(sessions: Sessions) -> None:
    job_id = add_job(sessions)
    with transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW + timedelta(minutes=5))
    with pytest.raises(ConcurrentTransition), transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.SUBMITTING, now=NOW, actor="b")


def test_forbidden_transition_is_refused(sessions: Sessions) -> None:
    job_id = add_job(sessions)
    with pytest.raises(ValueError, match="not allowed"), transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.POSTED, now=NOW)


def test_unique_job_per_head(sessions: Sessions) -> None:
    add_job(sessions)
    with pytest.raises(IntegrityError):
        add_job(sessions)
    add_job(sessions, sha="b" * 40)


def test_claimable_skips_live_leases_and_expired_leases_finds_only_expired(sessions: Sessions) -> None:
    held, expired, free = add_job(sessions, 1), add_job(sessions, 2), add_job(sessions, 3)
    with transaction(sessions) as session:
        transition(session, held, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW + timedelta(minutes=5))
        transition(session, expired, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW - timedelta(seconds=1))
    with sessions() as session:
        assert [j.id for j in expired_leases(session, State.SUBMITTING, now=NOW)] == [expired]
        assert [j.id for j in claimable(session, State.SUBMITTING, now=NOW)] == [expired]
        assert [j.id for j in claimable(session, State.QUEUED, now=NOW)] == [free]
        assert expired_leases(session, State.QUEUED, now=NOW) == []  # free is not expired


def test_a_transition_without_a_lease_clears_the_holder(sessions: Sessions) -> None:
    job_id = add_job(sessions)
    with transaction(sessions) as session:
        transition(session, job_id, State.QUEUED, State.SUBMITTING, now=NOW, actor="a",
                   lease_until=NOW + timedelta(minutes=5))
        transition(session, job_id, State.SUBMITTING, State.QUEUED, now=NOW, actor="a")
    with sessions() as session:
        job = session.get_one(ReviewJob, job_id)
        assert (job.lease_owner, job.lease_expires_at) == (None, None)


def test_iter_claimable_reads_in_chunks_and_sees_every_job_once(sessions: Sessions) -> None:
    ids = [add_job(sessions, n) for n in range(1, 8)]
    seen = [j.id for j in iter_claimable(sessions, State.QUEUED, clock=lambda: NOW, chunk=3)]
    assert seen == ids
    assert [j.id for j in iter_claimable(sessions, State.QUEUED, clock=lambda: NOW, repositories=["x/y"])] == []


def test_batch_states_move_only_along_the_table(sessions: Sessions) -> None:
    with transaction(sessions) as session:
        batch_id = new_batch(session, owner="a", now=NOW, custom_id_prefix="rvtest").id
    with transaction(sessions) as session:
        set_batch_state(session, batch_id, BatchState.CREATING, BatchState.SUBMITTED, anthropic_id="msgbatch_1")
    with pytest.raises(ConcurrentTransition, match="batch .* is no longer creating"):
        with transaction(sessions) as session:  # a second recorder of the same create loses
            set_batch_state(session, batch_id, BatchState.CREATING, BatchState.ABANDONED)
    with pytest.raises(ValueError, match="not allowed"), transaction(sessions) as session:
        set_batch_state(session, batch_id, BatchState.SUBMITTED, BatchState.CREATING)
    with transaction(sessions) as session:
        set_batch_state(session, batch_id, BatchState.SUBMITTED, BatchState.ENDED, processed_at=NOW)
    with sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.state, batch.anthropic_id, batch.processed_at) == (BatchState.ENDED, "msgbatch_1", NOW)


def test_transition_many_moves_only_jobs_still_in_the_source_state_with_one_event_each(sessions: Sessions) -> None:
    ids = [add_job(sessions, number) for number in range(1, 1202)]  # more than one IN chunk
    with transaction(sessions) as session:
        transition(session, ids[5], State.QUEUED, State.SKIPPED, now=NOW, reason="taken first")
    until = NOW + timedelta(minutes=10)
    with transaction(sessions) as session:
        moved = transition_many(session, ids, State.QUEUED, State.SUBMITTING, now=NOW, actor="me",
                                lease_until=until, reason="claimed", model="m")
    assert moved == set(ids) - {ids[5]}
    with sessions() as session:
        rows = {job.id: job for job in session.scalars(select(ReviewJob))}
        events = session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.to_state == "submitting"))
    assert rows[ids[5]].state == "skipped" and rows[ids[0]].state == "submitting"
    assert rows[ids[-1]].model == "m" and rows[ids[-1]].lease_owner == "me"
    assert events == len(moved)
    assert events_of(sessions, ids[0])[-1] == ("queued", "submitting")
    with transaction(sessions) as session:  # nothing left in the source state: nothing moves, no event
        assert transition_many(session, ids, State.QUEUED, State.SUBMITTING, now=NOW) == set()
    with pytest.raises(ValueError), transaction(sessions) as session:
        transition_many(session, ids, State.QUEUED, State.POSTED, now=NOW)

"""The review-job state machine. Every state change of a `ReviewJob` goes through `transition()`;
nothing else writes `ReviewJob.state`.

    queued ──claim──> submitting ──batch created──> submitted ──succeeded──> answered ──claim──> posting ──> posted
      │                  │                             │                                          │
      ├─> skipped        ├─ batch never created ─>     ├─ errored / expired / canceled ─> queued  ├─ closed or head moved ─> stale
      └─> stale          │  queued                     │  (attempts + 1), or failed at the limit  ├─ 5xx, or refused ─> answered
         (superseded     └─ express lane (standard     └─> failed (invalid request)               └─ PR gone, or refused max_attempts times ─> failed
          or closed)        API, synchronous) ─> answered or failed

Terminal: posted, skipped, stale, failed. `transition_many()` is the same guarded move for a chunk of jobs
in one statement (and one executemany of events), for the stages that move thousands at once. `transition()` is `UPDATE ... WHERE id = :id AND state =
:expected`: exactly one row changes or `ConcurrentTransition` is raised, so two workers can never both
move the same job. Claims add a lease (owner + expiry); a lease that expires (the worker crashed) makes
the job recoverable by the stage that owns that state.

`hold()` is the one write of a job's `reason` without a state change: why a queued job stays queued (over
a budget, `over_budget: wait`), for `reviewer status` and `explain`. It is not a transition and writes no
event (nothing moved); the job's next transition replaces the reason.

Batches have a lifecycle of their own, owned here as well: `BatchState`, `BATCH_TRANSITIONS` and
`set_batch_state()`, the only writer of `Batch.state`.

    creating ──API created it──> submitted ──results stored──> ended
      │        (or adopted)        ├─ the API no longer knows it (404) ─> missing
      │                            ├─ results archived before download ─> archived
      │                            └─ adopted, but its results are another deployment's ─> foreign
      └─ never created ─> abandoned
         (refused, 429, or a create without answer that the API has no trace of)

`creating` is written with the batch row *before* the create call, so a crash in between leaves a
trace that is settled against the API (settle.py). Terminal: ended, abandoned, missing, archived, foreign.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from reviewer.errors import ConcurrentTransition
from reviewer.models import Batch, JobEvent, ReviewJob

REVIEW_JOBS: Table = ReviewJob.__table__  # type: ignore[assignment]
JOB_EVENTS: Table = JobEvent.__table__  # type: ignore[assignment]
BATCHES: Table = Batch.__table__  # type: ignore[assignment]


class State(enum.StrEnum):
    """The states of a review job (see the diagram above)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    ANSWERED = "answered"
    POSTING = "posting"
    POSTED = "posted"
    SKIPPED = "skipped"
    STALE = "stale"
    FAILED = "failed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.SUBMITTING, State.SKIPPED, State.STALE, State.FAILED}),
    State.SUBMITTING: frozenset({State.SUBMITTED, State.QUEUED, State.ANSWERED, State.FAILED}),
    State.SUBMITTED: frozenset({State.ANSWERED, State.QUEUED, State.FAILED}),
    State.ANSWERED: frozenset({State.POSTING, State.STALE}),
    State.POSTING: frozenset({State.POSTED, State.STALE, State.ANSWERED, State.FAILED}),
    State.POSTED: frozenset(),
    State.SKIPPED: frozenset(),
    State.STALE: frozenset(),
    State.FAILED: frozenset(),
}
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
OPEN_STATES = frozenset(State) - TERMINAL
INITIAL = frozenset({State.QUEUED, State.SKIPPED})  # a job is created queued, or skipped at once (no changes)


class BatchState(enum.StrEnum):
    """The states of a Message Batch as this service sees it (see the diagram above)."""

    CREATING = "creating"
    SUBMITTED = "submitted"
    ENDED = "ended"
    ABANDONED = "abandoned"
    MISSING = "missing"
    ARCHIVED = "archived"
    FOREIGN = "foreign"


BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.CREATING: frozenset({BatchState.SUBMITTED, BatchState.ABANDONED}),
    BatchState.SUBMITTED: frozenset({BatchState.ENDED, BatchState.MISSING, BatchState.ARCHIVED, BatchState.FOREIGN}),
    BatchState.ENDED: frozenset(),
    BatchState.ABANDONED: frozenset(),
    BatchState.MISSING: frozenset(),
    BatchState.ARCHIVED: frozenset(),
    BatchState.FOREIGN: frozenset(),
}
BATCH_TERMINAL = frozenset(s for s, targets in BATCH_TRANSITIONS.items() if not targets)
BATCHES_IN_FLIGHT = frozenset({BatchState.CREATING, BatchState.SUBMITTED})  # they hold room in the batch queue


def allowed(source: State, target: State) -> bool:
    return target in TRANSITIONS[source]


def _event(session: Session, job_id: int, source: State | None, target: State, reason: str | None,
           actor: str | None, now: datetime) -> None:
    # Core statements, not ORM objects: a transition is on the hot path of every stage.
    session.execute(insert(JOB_EVENTS).values(job_id=job_id, from_state=source.value if source else None,
                                              to_state=target.value, reason=reason, actor=actor, at=now))


def create_job(session: Session, job: ReviewJob, initial: State, *, now: datetime, actor: str | None,
               reason: str | None = None) -> None:
    """Insert a new job in one of the `INITIAL` states, with its first event (from no state)."""
    if initial not in INITIAL:
        raise ValueError(f"a job cannot be created {initial.value}")
    job.state, job.reason = initial.value, reason
    session.add(job)
    session.flush()
    _event(session, job.id, None, initial, reason, actor, now)


def _moved(source: State, target: State, *, now: datetime, reason: str | None, actor: str | None,
           lease_until: datetime | None, **values: Any) -> dict[str, Any]:
    """The columns a move from `source` to `target` writes (refused if the table does not allow it): the
    state, its reason, the lease (held by `actor` until `lease_until`, or cleared) and `values`."""
    if not allowed(source, target):
        raise ValueError(f"transition {source.value} -> {target.value} is not allowed")
    lease = {"lease_owner": actor, "lease_expires_at": lease_until} if lease_until else {
        "lease_owner": None, "lease_expires_at": None}
    return {"state": target.value, "reason": reason, "updated_at": now, **lease, **values}


def transition(
    session: Session,
    job_id: int,
    source: State,
    target: State,
    *,
    now: datetime,
    reason: str | None = None,
    actor: str | None = None,
    lease_until: datetime | None = None,
    **values: Any,
) -> None:
    """Move one job from `source` to `target` or raise ConcurrentTransition; `values` are written too."""
    moved = _moved(source, target, now=now, reason=reason, actor=actor, lease_until=lease_until, **values)
    statement = (
        update(REVIEW_JOBS)
        .where(REVIEW_JOBS.c.id == job_id, REVIEW_JOBS.c.state == source.value)
        .values(**moved)
    )
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentTransition(job_id, source.value)
    _event(session, job_id, source, target, reason, actor, now)


def transition_many(
    session: Session,
    job_ids: Iterable[int],
    source: State,
    target: State,
    *,
    now: datetime,
    reason: str | None = None,
    actor: str | None = None,
    lease_until: datetime | None = None,
    **values: Any,
) -> set[int]:
    """Move every job of `job_ids` that is still in `source` to `target`, in one guarded UPDATE (per 500
    ids) with one event each; returns the ids that moved (the others were taken by another worker).
    `values` are written to every moved job; per-job columns are the caller's (`UPDATE ... WHERE id`
    once the jobs are its own)."""
    moved_values = _moved(source, target, now=now, reason=reason, actor=actor, lease_until=lease_until, **values)
    ids = list(job_ids)
    moved: set[int] = set()
    for start in range(0, len(ids), _SET_CHUNK):
        statement = (
            update(REVIEW_JOBS)
            .where(REVIEW_JOBS.c.id.in_(ids[start:start + _SET_CHUNK]), REVIEW_JOBS.c.state == source.value)
            .values(**moved_values)
            .returning(REVIEW_JOBS.c.id)
        )
        moved.update(session.scalars(statement))
    if moved:
        session.execute(insert(JOB_EVENTS), [
            {"job_id": job_id, "from_state": source.value, "to_state": target.value, "reason": reason,
             "actor": actor, "at": now} for job_id in sorted(moved)])
    return moved


_SET_CHUNK = 500  # ids per IN list: well under SQLite's 32,766 bound parameters


def hold(session: Session, job_id: int, reason: str, *, now: datetime) -> bool:
    """Record why queued job `job_id` waits, leaving its state alone; False if it is no longer queued."""
    statement = (update(REVIEW_JOBS).where(REVIEW_JOBS.c.id == job_id, REVIEW_JOBS.c.state == State.QUEUED.value)
                 .values(reason=reason, updated_at=now))
    return bool(session.execute(statement).rowcount == 1)  # type: ignore[attr-defined]


def claimable(session: Session, state: State, *, now: datetime, limit: int | None = None,
              repositories: Iterable[str] | None = None, after_id: int = 0) -> Sequence[ReviewJob]:
    """Jobs in `state` that nobody holds: no lease, or a lease that expired.

    On PostgreSQL the rows are locked with SKIP LOCKED so concurrent workers see disjoint sets; the
    guarded UPDATE in `transition()` is what makes a claim exclusive on every engine.
    """
    free = or_(ReviewJob.lease_expires_at.is_(None), ReviewJob.lease_expires_at < now)
    return _locked_rows(session, state, free, limit=limit, repositories=repositories, after_id=after_id)


def expired_leases(session: Session, state: State, *, now: datetime) -> Sequence[ReviewJob]:
    """Jobs in `state` whose holder let its lease expire (it crashed or hung): only those, not free ones."""
    expired = and_(ReviewJob.lease_expires_at.is_not(None), ReviewJob.lease_expires_at < now)
    return _locked_rows(session, state, expired)


def _locked_rows(session: Session, state: State, condition: ColumnElement[bool], *, limit: int | None = None,
                 repositories: Iterable[str] | None = None, after_id: int = 0) -> Sequence[ReviewJob]:
    query = (select(ReviewJob).where(ReviewJob.state == state.value, condition, ReviewJob.id > after_id)
             .order_by(ReviewJob.id))
    if repositories is not None:  # case-insensitive, as GitHub's names are
        query = query.where(func.lower(ReviewJob.repository).in_([name.lower() for name in repositories]))
    if limit is not None:
        query = query.limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


def iter_claimable(sessions: sessionmaker[Session], state: State, *, clock: Callable[[], datetime],
                   repositories: Iterable[str] | None = None, chunk: int = 1000) -> Iterator[ReviewJob]:
    """Every job claimable in `state`, read a chunk at a time (each chunk in its own short session)."""
    names = None if repositories is None else list(repositories)
    after_id = 0
    while True:
        with sessions() as session:
            jobs = claimable(session, state, now=clock(), limit=chunk, repositories=names, after_id=after_id)
        if not jobs:
            return
        after_id = jobs[-1].id
        yield from jobs


def lease(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


# --- batches --------------------------------------------------------------------------------------


def batch_allowed(source: BatchState, target: BatchState) -> bool:
    return target in BATCH_TRANSITIONS[source]


def new_batch(session: Session, *, owner: str | None, now: datetime, custom_id_prefix: str) -> Batch:
    """The row of a batch about to be created, in `creating`; flushed, so it has its id."""
    batch = Batch(state=BatchState.CREATING.value, request_count=0, owner=owner, created_at=now,
                  custom_id_prefix=custom_id_prefix)
    session.add(batch)
    session.flush()
    return batch


def set_batch_state(session: Session, batch_id: int, source: BatchState, target: BatchState,
                    **values: Any) -> None:
    """Move one batch from `source` to `target` or raise ConcurrentTransition; `values` are written too."""
    if not batch_allowed(source, target):
        raise ValueError(f"batch transition {source.value} -> {target.value} is not allowed")
    statement = (update(BATCHES).where(BATCHES.c.id == batch_id, BATCHES.c.state == source.value)
                 .values(state=target.value, **values))
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentTransition(batch_id, source.value, "batch")

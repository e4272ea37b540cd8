"""Stage 3, poll: check submitted batches; once a batch has ended, stream its results and store every
line (succeeded or not) with its usage and cost.

    succeeded                      -> the job is answered (the review text waits to be posted)
    errored (invalid_request)      -> failed: resending the same request would fail the same way
    errored (other), expired,
    canceled, or no line at all    -> queued again, until the repository's max_attempts, then failed

Results are handled in chunks of one transaction each; a line already stored (an earlier pass was
interrupted) is skipped, so polling again is always safe. A line whose custom_id names no job of this
batch, or is not this deployment's (another deployment on the same key), is logged, counted and never
stored or posted. An *adopted* batch (settle.py) whose lines are another deployment's was never ours:
it is marked foreign and its jobs are queued again without counting an attempt. A batch id that answers
404 right after creation is given time to appear.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ScalarSelect, String, Table, cast, insert, literal, select
from sqlalchemy.orm import Session

from reviewer.batches import BatchStatus, ResultLine
from reviewer.config import Settings
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ConfigError
from reviewer.jobs import LEGACY_PREFIX, job_id_from, result_values
from reviewer.locks import exclusive
from reviewer.models import Batch, Result, ResultType, ReviewJob
from reviewer.queue import REVIEW_JOBS, BatchState, State, set_batch_state, transition_many
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

log = logging.getLogger("reviewer.poll")
RESULTS: Table = Result.__table__  # type: ignore[assignment]  # Core inserts: no ORM bulk machinery per row
RESULTS_CHUNK = 1000  # result lines per transaction: a few statements each, whatever its size
NOT_FOUND_GRACE = timedelta(minutes=10)  # a just-created batch can answer 404 for a moment


def submitted_batches(rt: Runtime) -> list[Batch]:
    """Batches the API has and that have not been processed yet (what a poll looks at)."""
    with rt.sessions() as session:
        return list(session.scalars(select(Batch).where(Batch.state == BatchState.SUBMITTED).order_by(Batch.id)))


def poll_batches(rt: Runtime) -> StageReport:
    report = StageReport("poll")
    for batch in submitted_batches(rt):
        with exclusive(rt.engine, f"reviewer:batch:{batch.id}") as mine:
            if mine and _still_open(rt, batch.id):  # else another instance is handling it, or did
                _poll_one(rt, batch, report)
    return report


def _still_open(rt: Runtime, batch_id: int) -> bool:
    with rt.sessions() as session:
        return session.scalar(select(Batch.state).where(Batch.id == batch_id)) == BatchState.SUBMITTED


def _poll_one(rt: Runtime, batch: Batch, report: StageReport) -> None:
    assert batch.anthropic_id is not None
    try:
        status = rt.batches.retrieve(batch.anthropic_id)
    except AnthropicError as exc:
        _retrieve_failed(rt, batch, exc, report)
        return
    with transaction(rt.sessions) as session:
        row = session.get_one(Batch, batch.id)
        row.processing_status, row.last_polled_at = status.processing_status, rt.clock()
        row.ended_at = status.ended_at
    if status.processing_status != "ended":
        report.add(Count.BATCHES_IN_PROGRESS)
        return
    _process_results(rt, batch, status, report)


def _retrieve_failed(rt: Runtime, batch: Batch, exc: AnthropicError, report: StageReport) -> None:
    young = batch.submitted_at is not None and rt.clock() - batch.submitted_at < NOT_FOUND_GRACE
    if exc.status == 404 and young:
        report.add(Count.BATCHES_NOT_VISIBLE)
        return
    if exc.status == 404:
        _close_batch(rt, batch.id, BatchState.MISSING, "the API no longer knows this batch")
        _requeue_leftovers(rt, batch.id, "its batch disappeared from the API", report)
        report.error(f"batch {batch.anthropic_id} is unknown to the API; its jobs are queued again")
        return
    if exc.status == 401:
        raise exc
    report.error(f"batch {batch.anthropic_id}: {exc.message}")


def _process_results(rt: Runtime, batch: Batch, status: BatchStatus, report: StageReport) -> None:
    assert batch.anthropic_id is not None
    try:
        with rt.batches.results(batch.anthropic_id) as lines:
            for chunk in _chunks(lines, RESULTS_CHUNK):
                with transaction(rt.sessions) as session:
                    _store_chunk(rt, session, batch.id, chunk, report)
    except AnthropicError as exc:
        if status.archived_at is not None or exc.status in (404, 410):
            _close_batch(rt, batch.id, BatchState.ARCHIVED, "results are no longer downloadable")
            _requeue_leftovers(rt, batch.id, "its batch results were archived before download", report)
            report.error(f"batch {batch.anthropic_id}: results archived; its unanswered jobs are queued again")
            return
        report.error(f"batch {batch.anthropic_id}: {exc.message}; will poll again")
        return
    except _ForeignBatch as foreign:
        _disown(rt, batch, str(foreign), report)
        return
    _requeue_leftovers(rt, batch.id, "its batch ended without a result line for it", report)
    _close_batch(rt, batch.id, BatchState.ENDED, None)
    report.add(Count.BATCHES_ENDED)


def _disown(rt: Runtime, batch: Batch, sample: str, report: StageReport) -> None:
    """Drop a wrong adoption: the batch is marked foreign, and its jobs (which the API never received
    from us) go back to the queue with the attempt given back."""
    why = f"adopted batch {batch.anthropic_id} holds another deployment's requests (e.g. {sample!r})"
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch.id, BatchState.SUBMITTED, BatchState.FOREIGN, processed_at=rt.clock(),
                        error=why)
        for jobs in _submitted_jobs(session, batch.id):
            moves = [(_Move(State.QUEUED, f"{why}; queued again (the attempt is not counted)",
                            attempts=max(job.attempts - 1, 0), leaves_batch=True), job) for job in jobs]
            _move(rt, session, moves)
    report.error(f"{why}: the adoption is dropped and its {batch.request_count} jobs are queued again")


def _chunks(lines: Iterator[ResultLine], size: int) -> Iterator[list[ResultLine]]:
    chunk: list[ResultLine] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _ForeignBatch(Exception):
    """An adopted batch holds another deployment's requests: it was never this database's."""


@dataclass(frozen=True)
class _Job:
    """The columns of a job that storing its result needs (never its diff or prompt)."""

    id: int
    batch_id: int | None
    state: str
    attempts: int
    repository: str
    model: str | None


_JOB_COLUMNS = (ReviewJob.id, ReviewJob.batch_id, ReviewJob.state, ReviewJob.attempts, ReviewJob.repository,
                ReviewJob.model)


@dataclass(frozen=True)
class _Move:
    """Where a result sends its job, and why; moves that are equal go in one guarded UPDATE."""

    target: State
    reason: str
    attempts: int | None = None  # written too: an attempt given back
    leaves_batch: bool = False  # a disowned job: the batch was never its own
    answer_of: tuple[int, str] | None = None  # an answer: its text is in its result row of (batch, prefix)

    def values(self) -> dict[str, Any]:
        written: dict[str, Any] = {} if self.attempts is None else {"attempts": self.attempts}
        if self.leaves_batch:
            written["batch_id"] = None
        if self.answer_of is not None:  # in the same UPDATE as the state: one new row version per job
            written["review_text"] = _stored_text(*self.answer_of)
        return written


def _stored_text(batch_id: int, prefix: str) -> ScalarSelect[str | None]:
    """The text of the job's result row in `batch_id`, correlated with the UPDATE of the job: found by its
    custom_id (`<prefix>-<job id>`) through the unique index on (batch_id, custom_id), so one row at most,
    and looked up by index whatever the planner believes about the tables' sizes."""
    custom = literal(f"{prefix}-") + cast(REVIEW_JOBS.c.id, String)
    return (select(RESULTS.c.text).where(RESULTS.c.batch_id == batch_id, RESULTS.c.custom_id == custom)
            .scalar_subquery())


def _store_chunk(rt: Runtime, session: Session, batch_id: int, lines: list[ResultLine],
                 report: StageReport) -> None:
    """Store a chunk of result lines in a few statements whatever its size: at most three reads (the batch,
    the jobs' columns, the lines already stored), one executemany INSERT of the new Result rows, then one guarded
    UPDATE (`transition_many`) per distinct move, which also copies an answer's text from its stored row.
    A line whose custom_id is not this deployment's is never stored or applied; in an adopted batch it
    means the adoption was wrong."""
    batch = session.get_one(Batch, batch_id)
    prefix = batch.custom_id_prefix or LEGACY_PREFIX
    ids = {line.custom_id: job_id_from(line.custom_id, prefix) for line in lines}
    foreign = [custom for custom, job_id in ids.items() if job_id is None]
    if foreign and batch.adopted:
        raise _ForeignBatch(foreign[0])
    jobs = _jobs(session, [i for i in ids.values() if i is not None])
    stored = _stored(session, batch_id, [custom for custom, job_id in ids.items()
                                         if job_id in jobs and jobs[job_id].state != State.SUBMITTED.value])
    fresh = [(line, job) for line in lines if (job := _fresh(batch_id, line, ids, jobs, stored, report))]
    if not fresh:
        return
    now = rt.clock()
    session.execute(insert(RESULTS), [result_values(rt.settings, batch_id, job.id, job.model, line, now=now)
                                     for line, job in fresh])
    of = _Of(batch_id, prefix, batch.cancel_requested_at is not None)
    _move(rt, session, [(_decide(rt, line, job, of), job) for line, job in fresh
                        if job.state == State.SUBMITTED.value])


def _jobs(session: Session, job_ids: list[int]) -> dict[int, _Job]:
    if not job_ids:
        return {}
    return {row[0]: _Job(*row) for row in session.execute(select(*_JOB_COLUMNS).where(ReviewJob.id.in_(job_ids)))}


def _stored(session: Session, batch_id: int, customs: list[str]) -> set[str]:
    """Which of `customs` the batch has stored already. Only lines of jobs that left `submitted` are asked
    about: a line is stored in the same transaction that moves its job, so a job still submitted has none
    (and the first pass over a batch reads nothing here, where a plan made while `results` was small
    would scan every row stored so far, for every chunk)."""
    if not customs:
        return set()
    return set(session.scalars(select(Result.custom_id).where(Result.batch_id == batch_id,
                                                              Result.custom_id.in_(customs))))


def _fresh(batch_id: int, line: ResultLine, ids: dict[str, int | None], jobs: dict[int, _Job], stored: set[str],
           report: StageReport) -> _Job | None:
    """The job of a line to store, or None: not this deployment's, not of this batch, or already stored."""
    job_id = ids[line.custom_id]
    if job_id is None:
        log.warning("batch row %s: result %r is not this deployment's; ignored", batch_id, line.custom_id)
        report.add(Count.FOREIGN_RESULTS)
        return None
    job = jobs.get(job_id)
    if job is None or job.batch_id != batch_id:
        log.warning("batch row %s: result for unknown custom_id %r ignored", batch_id, line.custom_id)
        report.add(Count.UNKNOWN_RESULTS)
        return None
    if line.custom_id in stored:
        return None  # stored by an earlier, interrupted pass
    stored.add(line.custom_id)
    report.add(Count.results(line.type))
    return job


@dataclass(frozen=True)
class _Of:
    """The batch whose results are being stored, as deciding their moves needs it."""

    batch_id: int
    prefix: str
    canceled_by_operator: bool  # `reviewer batches cancel`: a canceled line spends no attempt
    limits: dict[str, int] = field(default_factory=dict)  # max_attempts per repository, looked up once


def _decide(rt: Runtime, line: ResultLine, job: _Job, of: _Of) -> _Move:
    """Where the result line sends its (submitted) job."""
    if line.type == ResultType.SUCCEEDED:
        if not (line.text or "").strip() and line.content_json in (None, "[]"):
            why = f"the model returned no content (stop_reason {line.stop_reason})"
            return _retry_or_fail(rt, job, why, of.limits)
        return _Move(State.ANSWERED, f"answered ({line.stop_reason})", answer_of=(of.batch_id, of.prefix))
    if line.type == ResultType.ERRORED and line.error_type == "invalid_request_error":
        return _Move(State.FAILED, f"the API rejected the request: {line.error_message}")
    if line.type == ResultType.CANCELED and of.canceled_by_operator:
        return _Move(State.QUEUED, CANCELED_BY_OPERATOR, attempts=max(job.attempts - 1, 0))
    errored = line.type == ResultType.ERRORED
    detail = f"{line.error_type}: {line.error_message}" if errored else f"request {line.type}"
    return _retry_or_fail(rt, job, detail, of.limits)


# the reason `jobs.requeue_canceled` writes, for a canceled line of a batch an operator canceled
CANCELED_BY_OPERATOR = "its batch was canceled by an operator; queued again (the attempt is not counted)"


def _retry_or_fail(rt: Runtime, job: _Job, why: str, limits: dict[str, int]) -> _Move:
    limit = limits.get(job.repository)
    if limit is None:
        limit = limits[job.repository] = max_attempts(rt.settings, job.repository)
    if job.attempts >= limit:
        return _Move(State.FAILED, f"gave up after {job.attempts} attempts; last: {why}")
    return _Move(State.QUEUED, f"{why}; queued again (attempt {job.attempts} of {limit})")


def _move(rt: Runtime, session: Session, moves: list[tuple[_Move, _Job]]) -> None:
    """Apply the moves of submitted jobs, equal ones in one guarded UPDATE (`transition_many`)."""
    groups: dict[_Move, list[int]] = {}
    for move, job in moves:
        groups.setdefault(move, []).append(job.id)
    for move, job_ids in groups.items():
        transition_many(session, job_ids, State.SUBMITTED, move.target, now=rt.clock(), actor=rt.actor,
                        reason=move.reason, **move.values())


def max_attempts(settings: Settings, repository: str) -> int:
    """The repository's max_attempts; 1 for a repository no longer configured (spend no more on it)."""
    try:
        return settings.repo(repository).max_attempts
    except ConfigError:
        return 1


def _submitted_jobs(session: Session, batch_id: int) -> Iterator[list[_Job]]:
    """The jobs of the batch still in `submitted`, a chunk at a time (in id order)."""
    after = 0
    while True:
        rows = session.execute(select(*_JOB_COLUMNS).where(
            ReviewJob.batch_id == batch_id, ReviewJob.state == State.SUBMITTED.value, ReviewJob.id > after)
            .order_by(ReviewJob.id).limit(RESULTS_CHUNK)).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [_Job(*row) for row in rows]


def _requeue_leftovers(rt: Runtime, batch_id: int, why: str, report: StageReport) -> None:
    limits: dict[str, int] = {}
    with transaction(rt.sessions) as session:
        for jobs in _submitted_jobs(session, batch_id):
            _move(rt, session, [(_retry_or_fail(rt, job, why, limits), job) for job in jobs])
            report.add(Count.WITHOUT_RESULT, len(jobs))


def _close_batch(rt: Runtime, batch_id: int, state: BatchState, error: str | None) -> None:
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch_id, BatchState.SUBMITTED, state, processed_at=rt.clock(), error=error)

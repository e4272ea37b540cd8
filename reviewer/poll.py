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
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewer.batches import BatchStatus, ResultLine
from reviewer.config import Settings
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ConfigError
from reviewer.jobs import (
    LEGACY_PREFIX,
    canceled_by_operator,
    job_id_from,
    jobs_of_batch,
    requeue_canceled,
    result_row,
)
from reviewer.locks import exclusive
from reviewer.models import Batch, Result, ResultType, ReviewJob
from reviewer.queue import BatchState, State, set_batch_state, transition
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

log = logging.getLogger("reviewer.poll")
RESULTS_CHUNK = 500
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
        for job in jobs_of_batch(session, batch.id, State.SUBMITTED):
            transition(session, job.id, State.SUBMITTED, State.QUEUED, now=rt.clock(), actor=rt.actor,
                       attempts=max(job.attempts - 1, 0), batch_id=None,
                       reason=f"{why}; queued again (the attempt is not counted)")
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


def _store_chunk(rt: Runtime, session: Session, batch_id: int, lines: list[ResultLine],
                 report: StageReport) -> None:
    """Store a chunk of result lines: three reads for the whole chunk, one guarded UPDATE per job, and
    the inserts sent together at commit (no autoflush per line). A line whose custom_id is not this
    deployment's is never stored or applied; in an adopted batch it means the adoption was wrong."""
    batch = session.get_one(Batch, batch_id)
    prefix = batch.custom_id_prefix or LEGACY_PREFIX
    ids = {line.custom_id: job_id_from(line.custom_id, prefix) for line in lines}
    foreign = [custom for custom, job_id in ids.items() if job_id is None]
    if foreign and batch.adopted:
        raise _ForeignBatch(foreign[0])
    wanted = [i for i in ids.values() if i is not None]
    jobs = {j.id: j for j in session.scalars(select(ReviewJob).where(ReviewJob.id.in_(wanted)))}
    stored = set(session.scalars(select(Result.custom_id).where(
        Result.batch_id == batch_id, Result.custom_id.in_(list(ids)))))
    with session.no_autoflush:
        for line in lines:
            if ids[line.custom_id] is None:
                log.warning("batch row %s: result %r is not this deployment's; ignored", batch_id, line.custom_id)
                report.add(Count.FOREIGN_RESULTS)
                continue
            job = jobs.get(ids[line.custom_id] or 0)
            if job is None or job.batch_id != batch_id:
                log.warning("batch row %s: result for unknown custom_id %r ignored", batch_id, line.custom_id)
                report.add(Count.UNKNOWN_RESULTS)
                continue
            if line.custom_id in stored:
                continue  # stored by an earlier, interrupted pass
            stored.add(line.custom_id)
            session.add(result_row(rt.settings, batch_id, job, line, now=rt.clock()))
            report.add(Count.results(line.type))
            if job.state == State.SUBMITTED.value:
                _apply(rt, session, job, line)


def _apply(rt: Runtime, session: Session, job: ReviewJob, line: ResultLine) -> None:
    now = rt.clock()
    if line.type == ResultType.SUCCEEDED:
        if not (line.text or "").strip() and line.content_json in (None, "[]"):
            _retry_or_fail(rt, session, job, f"the model returned no content (stop_reason {line.stop_reason})")
            return
        transition(session, job.id, State.SUBMITTED, State.ANSWERED, now=now, actor=rt.actor,
                   review_text=line.text, reason=f"answered ({line.stop_reason})")
    elif line.type == ResultType.ERRORED and line.error_type == "invalid_request_error":
        transition(session, job.id, State.SUBMITTED, State.FAILED, now=now, actor=rt.actor,
                   reason=f"the API rejected the request: {line.error_message}")
    elif line.type == ResultType.CANCELED and canceled_by_operator(session, job):
        requeue_canceled(session, job, now=now, actor=rt.actor)  # `reviewer batches cancel`: no attempt is spent
    else:
        errored = line.type == ResultType.ERRORED
        detail = f"{line.error_type}: {line.error_message}" if errored else f"request {line.type}"
        _retry_or_fail(rt, session, job, detail)


def _retry_or_fail(rt: Runtime, session: Session, job: ReviewJob, why: str) -> None:
    limit = max_attempts(rt.settings, job.repository)
    if job.attempts >= limit:
        transition(session, job.id, State.SUBMITTED, State.FAILED, now=rt.clock(), actor=rt.actor,
                   reason=f"gave up after {job.attempts} attempts; last: {why}")
    else:
        transition(session, job.id, State.SUBMITTED, State.QUEUED, now=rt.clock(), actor=rt.actor,
                   reason=f"{why}; queued again (attempt {job.attempts} of {limit})")


def max_attempts(settings: Settings, repository: str) -> int:
    """The repository's max_attempts; 1 for a repository no longer configured (spend no more on it)."""
    try:
        return settings.repo(repository).max_attempts
    except ConfigError:
        return 1


def _requeue_leftovers(rt: Runtime, batch_id: int, why: str, report: StageReport) -> None:
    with transaction(rt.sessions) as session:
        for job in jobs_of_batch(session, batch_id, State.SUBMITTED):
            _retry_or_fail(rt, session, job, why)
            report.add(Count.WITHOUT_RESULT)


def _close_batch(rt: Runtime, batch_id: int, state: BatchState, error: str | None) -> None:
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch_id, BatchState.SUBMITTED, state, processed_at=rt.clock(), error=error)

"""Stage 3, poll: check submitted batches; once a batch has ended, stream its results and store every
line (succeeded or not) with its usage and cost.

    succeeded                      -> the job is answered (the review text waits to be posted)
    errored (invalid_request)      -> failed: resending the same request would fail the same way
    errored (other), expired,
    canceled, or no line at all    -> queued again, until the repository's max_attempts, then failed

Results are handled in chunks of one transaction each; a line already stored (an earlier pass was
interrupted) is skipped, so polling again is always safe. A line whose custom_id names no job of this
batch is logged and ignored. A batch id that answers 404 right after creation is given time to appear.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewer.batchops import canceled_by_operator, requeue_canceled
from reviewer.batches import BatchStatus, ResultLine
from reviewer.cost import cost_of
from reviewer.db import transaction
from reviewer.errors import AnthropicError
from reviewer.locks import exclusive
from reviewer.models import Batch, Result, ReviewJob
from reviewer.queue import State, transition
from reviewer.runtime import Runtime, StageReport
from reviewer.submit import job_id_from

log = logging.getLogger("reviewer.poll")
RESULTS_CHUNK = 500
NOT_FOUND_GRACE = timedelta(minutes=10)  # a just-created batch can answer 404 for a moment


def open_batches(rt: Runtime) -> list[Batch]:
    with rt.sessions() as session:
        return list(session.scalars(select(Batch).where(Batch.state == "submitted").order_by(Batch.id)))


def poll_batches(rt: Runtime) -> StageReport:
    report = StageReport("poll")
    for batch in open_batches(rt):
        with exclusive(rt.engine, f"reviewer:batch:{batch.id}") as mine:
            if mine and _still_open(rt, batch.id):  # else another instance is handling it, or did
                _poll_one(rt, batch, report)
    return report


def _still_open(rt: Runtime, batch_id: int) -> bool:
    with rt.sessions() as session:
        return session.scalar(select(Batch.state).where(Batch.id == batch_id)) == "submitted"


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
        report.add("batches in progress")
        return
    _process_results(rt, batch, status, report)


def _retrieve_failed(rt: Runtime, batch: Batch, exc: AnthropicError, report: StageReport) -> None:
    young = batch.submitted_at is not None and rt.clock() - batch.submitted_at < NOT_FOUND_GRACE
    if exc.status == 404 and young:
        report.add("batches not visible yet")
        return
    if exc.status == 404:
        _close_batch(rt, batch.id, "missing", "the API no longer knows this batch")
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
            _close_batch(rt, batch.id, "archived", "results are no longer downloadable")
            _requeue_leftovers(rt, batch.id, "its batch results were archived before download", report)
            report.error(f"batch {batch.anthropic_id}: results archived; its unanswered jobs are queued again")
            return
        report.error(f"batch {batch.anthropic_id}: {exc.message}; will poll again")
        return
    _requeue_leftovers(rt, batch.id, "its batch ended without a result line for it", report)
    _close_batch(rt, batch.id, "ended", None)
    report.add("batches ended")


def _chunks(lines: Iterator[ResultLine], size: int) -> Iterator[list[ResultLine]]:
    chunk: list[ResultLine] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _store_chunk(rt: Runtime, session: Session, batch_id: int, lines: list[ResultLine],
                 report: StageReport) -> None:
    """Store a chunk of result lines: two reads for the whole chunk, one guarded UPDATE per job, and
    the inserts sent together at commit (no autoflush per line)."""
    ids = {line.custom_id: job_id_from(line.custom_id) for line in lines}
    wanted = [i for i in ids.values() if i is not None]
    jobs = {j.id: j for j in session.scalars(select(ReviewJob).where(ReviewJob.id.in_(wanted)))}
    stored = set(session.scalars(select(Result.custom_id).where(
        Result.batch_id == batch_id, Result.custom_id.in_(list(ids)))))
    with session.no_autoflush:
        for line in lines:
            job = jobs.get(ids[line.custom_id] or 0)
            if job is None or job.batch_id != batch_id:
                log.warning("batch row %s: result for unknown custom_id %r ignored", batch_id, line.custom_id)
                report.add("unknown results ignored")
                continue
            if line.custom_id in stored:
                continue  # stored by an earlier, interrupted pass
            stored.add(line.custom_id)
            session.add(result_row(rt, batch_id, job, line))
            report.add(f"results {line.type}")
            if job.state == State.SUBMITTED.value:
                _apply(rt, session, job, line)


def result_row(rt: Runtime, batch_id: int | None, job: ReviewJob, line: ResultLine, batch: bool = True) -> Result:
    row = Result(batch_id=batch_id, job_id=job.id, custom_id=line.custom_id, result_type=line.type,
                 is_batch=batch, model=line.model or job.model, stop_reason=line.stop_reason, text=line.text,
                 content_json=line.content_json, error_type=line.error_type, error_message=line.error_message,
                 created_at=rt.clock())
    usage = line.usage
    if line.type == "succeeded" and usage is not None:
        price = rt.settings.prices.models.get(row.model or "") or rt.settings.prices.models.get(job.model or "")
        row.input_tokens, row.output_tokens = usage.input_tokens, usage.output_tokens
        row.cache_creation_input_tokens = usage.cache_creation_input_tokens
        row.cache_read_input_tokens = usage.cache_read_input_tokens
        row.cache_creation_5m_tokens = usage.cache_creation_5m_tokens
        row.cache_creation_1h_tokens = usage.cache_creation_1h_tokens
        if price is not None:
            cost = cost_of(usage, price, batch=batch)
            row.cost_micro_usd, row.standard_cost_micro_usd = cost.batch_micro_usd, cost.standard_micro_usd
            row.cache_saved_micro_usd = cost.cache_saved_micro_usd
        else:
            log.error("no price for model %r: result of job %s recorded without cost", row.model, job.id)
    return row


def _apply(rt: Runtime, session: Session, job: ReviewJob, line: ResultLine) -> None:
    now = rt.clock()
    if line.type == "succeeded":
        if not (line.text or "").strip() and line.content_json in (None, "[]"):
            _retry_or_fail(rt, session, job, f"the model returned no content (stop_reason {line.stop_reason})")
            return
        transition(session, job.id, State.SUBMITTED, State.ANSWERED, now=now, actor=rt.actor,
                   review_text=line.text, reason=f"answered ({line.stop_reason})")
    elif line.type == "errored" and line.error_type == "invalid_request_error":
        transition(session, job.id, State.SUBMITTED, State.FAILED, now=now, actor=rt.actor,
                   reason=f"the API rejected the request: {line.error_message}")
    elif line.type == "canceled" and canceled_by_operator(session, job):
        requeue_canceled(rt, session, job)  # `reviewer batches cancel`: no attempt is spent
    else:
        detail = f"{line.error_type}: {line.error_message}" if line.type == "errored" else "request " + line.type
        _retry_or_fail(rt, session, job, detail)


def _retry_or_fail(rt: Runtime, session: Session, job: ReviewJob, why: str) -> None:
    limit = _max_attempts(rt, job)
    if job.attempts >= limit:
        transition(session, job.id, State.SUBMITTED, State.FAILED, now=rt.clock(), actor=rt.actor,
                   reason=f"gave up after {job.attempts} attempts; last: {why}")
    else:
        transition(session, job.id, State.SUBMITTED, State.QUEUED, now=rt.clock(), actor=rt.actor,
                   reason=f"{why}; queued again (attempt {job.attempts} of {limit})")


def _max_attempts(rt: Runtime, job: ReviewJob) -> int:
    for repo in rt.settings.repositories:
        if repo.name == job.repository:
            return repo.max_attempts
    return 1  # repository no longer configured: do not spend more on it


def _requeue_leftovers(rt: Runtime, batch_id: int, why: str, report: StageReport) -> None:
    with transaction(rt.sessions) as session:
        jobs = session.scalars(select(ReviewJob).where(
            ReviewJob.batch_id == batch_id, ReviewJob.state == State.SUBMITTED.value)).all()
        for job in jobs:
            _retry_or_fail(rt, session, job, why)
            report.add("without result")


def _close_batch(rt: Runtime, batch_id: int, state: str, error: str | None) -> None:
    with transaction(rt.sessions) as session:
        row = session.get_one(Batch, batch_id)
        row.state, row.processed_at, row.error = state, rt.clock(), error

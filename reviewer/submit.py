"""Stage 2, submit: queued jobs become Anthropic Message Batches (custom_id = "rv<deployment>-<job id>",
see jobs.py).

Crash safety: the batch row is written and the jobs moved to `submitting` *before* the API call, and the
batch id is recorded after it. `create` is sent without SDK retries (the API has no idempotency key). A
create without a definite answer is settled in the same run, and a row left `creating` by a dead process
at the next submission, under the submit lock (settle.py): the batch is adopted if the API made it (no
job is submitted twice), else the jobs go back to the queue (no job is lost). A failed create stops this
run's submission; what is already answered is still polled and posted.

Limits: at most 100,000 requests and 256 MB per batch; a larger queue becomes several batches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.budget import BudgetGate
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ConcurrentTransition, ConfigError, TemplateError
from reviewer.jobs import Prepared, prepare_request
from reviewer.locks import exclusive
from reviewer.models import Batch, ReviewJob, repo_state
from reviewer.queue import BATCHES_IN_FLIGHT, State, hold, iter_claimable, lease, new_batch, transition
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime
from reviewer.settle import abandon, create_outcome, record_submitted, settle_ambiguous, settle_interrupted

log = logging.getLogger("reviewer.submit")
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024 - 1024 * 1024  # leave room for the envelope
CLAIM_CHUNK = 1000


class _CreateFailed(Exception):
    """A create failed (and was settled): this run sends no further batch."""


@dataclass
class _Pending:
    jobs: list[tuple[int, Prepared]] = field(default_factory=list)
    size: int = 0
    capacity: int = MAX_BATCH_REQUESTS  # what the organisation's batch queue still takes


def submit_queued(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    report = StageReport("submit")
    names = rt.repository_names(repositories)
    rt.require_batches()
    with exclusive(rt.engine, "reviewer:submit") as mine:
        if not mine:
            report.note("another instance is submitting right now; its batch will carry these jobs")
            return report
        settle_interrupted(rt, report)  # holding the lock proves their creators are gone
        _submit_locked(rt, names, report)
    return report


def _submit_locked(rt: Runtime, names: list[str], report: StageReport) -> None:
    pending = _Pending(capacity=_queue_capacity(rt))
    try:
        for job in iter_claimable(rt.sessions, State.QUEUED, clock=rt.clock, repositories=names, chunk=CLAIM_CHUNK):
            pending = _add_job(rt, job, pending, report)
        if pending.jobs:
            _send(rt, pending, report)
    except _CreateFailed:
        return  # the jobs not sent stay queued for the next submission
    with transaction(rt.sessions) as session:
        for name in names:
            repo_state(session, name).last_submitted_at = rt.clock()


def _queue_capacity(rt: Runtime) -> int:
    """Requests the batch queue still takes: the configured limit minus what our batches hold."""
    with rt.sessions() as session:
        held = session.scalar(select(func.coalesce(func.sum(Batch.request_count), 0))
                              .where(Batch.state.in_(list(BATCHES_IN_FLIGHT)))) or 0
    return max(rt.settings.anthropic.max_queued_requests - int(held), 0)


def _add_job(rt: Runtime, job: ReviewJob, pending: _Pending, report: StageReport) -> _Pending:
    try:
        prepared = prepare_request(job, rt.settings, rt.custom_id_prefix)
    except (TemplateError, ConfigError) as exc:
        report.error(f"{job.repository}#{job.pr_number}: {exc.message}; the job stays queued")
        return pending
    if isinstance(prepared, str):
        _skip(rt, job, prepared, report)
        return pending
    if pending.capacity <= len(pending.jobs):
        report.add(Count.WAITING_FOR_QUEUE_ROOM)
        return pending
    size = len(json.dumps(prepared.request))
    if pending.jobs and (len(pending.jobs) >= MAX_BATCH_REQUESTS or pending.size + size > MAX_BATCH_BYTES):
        capacity = pending.capacity - _send(rt, pending, report)
        pending = _Pending(capacity=capacity)
    pending.jobs.append((job.id, prepared))
    pending.size += size
    return pending


def _skip(rt: Runtime, job: ReviewJob, reason: str, report: StageReport) -> None:
    try:
        with transaction(rt.sessions) as session:
            transition(session, job.id, State.QUEUED, State.SKIPPED, now=rt.clock(), actor=rt.actor, reason=reason)
    except ConcurrentTransition:
        return  # another submitter took it
    report.add(Count.SKIPPED)
    report.note(f"{job.repository}#{job.pr_number} skipped: {reason}")


def _send(rt: Runtime, pending: _Pending, report: StageReport) -> int:
    """Create one batch from `pending`; returns how many requests it holds."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        gate = BudgetGate.open(session, rt.settings, {p.repository for _, p in pending.jobs}, now)
        batch = new_batch(session, owner=rt.actor, now=now, custom_id_prefix=rt.custom_id_prefix)
        claimed = _claim(rt, session, batch.id, pending, gate, report)
        batch.request_count = len(claimed)
        batch_row_id = batch.id
        if not claimed:
            session.delete(batch)  # nothing to send: leave no empty batch behind
    for line in gate.check_warnings():
        report.note(line)
        log.warning("%s", line)
    requests = [p.request for job_id, p in pending.jobs if job_id in claimed]
    if not requests:
        return 0
    try:
        anthropic_id = rt.batches.create(requests).id
    except AnthropicError as exc:
        adopted = _create_failed(rt, batch_row_id, len(requests), exc, report)
        if adopted is None and (exc.status in (401, 403) or exc.status is None):
            raise  # a wrong key or an unreachable API is the same for every batch: stop with one line
        if adopted is None:
            raise _CreateFailed from None
        anthropic_id = adopted
    else:
        record_submitted(rt, batch_row_id, anthropic_id)
    report.add(Count.SUBMITTED, len(requests))
    report.add(Count.BATCHES)
    report.note(f"batch {anthropic_id}: {len(requests)} requests")
    return len(requests)


def _create_failed(rt: Runtime, batch_row_id: int, size: int, exc: AnthropicError,
                   report: StageReport) -> str | None:
    """Settle a failed create now; returns the batch's id if the API had made it after all (adopted).
    A refusal made nothing (the jobs are queued again), an ambiguous failure is looked up; nothing waits
    for a lease."""
    outcome = create_outcome(exc)
    if outcome == "ambiguous":
        report.note(f"batch of {size} requests: {exc.message}; looking for it")
        adopted = settle_ambiguous(rt, batch_row_id, report)
        if adopted is None:
            report.error(f"batch of {size} requests not submitted ({exc.message}); its jobs are queued again")
        return adopted
    abandon(rt, batch_row_id, exc.message)
    if outcome == "queue full":
        report.note(f"{size} jobs wait for the next submission: {exc.message}")
    else:
        report.error(f"batch of {size} requests not submitted: {exc.message}; its jobs are queued again")
    return None


def _claim(rt: Runtime, session: Session, batch_id: int, pending: _Pending, gate: BudgetGate,
           report: StageReport) -> set[int]:
    claimed: set[int] = set()
    until = lease(rt.clock(), rt.settings.intervals.lease_seconds)
    for job_id, prepared in pending.jobs:
        refused = gate.admit(prepared.repository, prepared.reserved)
        if refused is not None:
            _over_budget(rt, session, job_id, refused, report)
            continue
        try:
            transition(session, job_id, State.QUEUED, State.SUBMITTING, now=rt.clock(), actor=rt.actor,
                       lease_until=until, batch_id=batch_id, reason=f"being submitted in local batch {batch_id}",
                       model=prepared.model, omitted=prepared.omitted, reserved_micro_usd=prepared.reserved)
        except ConcurrentTransition:
            gate.release(prepared.repository, prepared.reserved)  # another submitter took it
            continue
        claimed.add(job_id)
    return claimed


def _over_budget(rt: Runtime, session: Session, job_id: int, why: str, report: StageReport) -> None:
    if rt.settings.budget.over_budget == "skip":
        try:
            transition(session, job_id, State.QUEUED, State.SKIPPED, now=rt.clock(), actor=rt.actor, reason=why)
        except ConcurrentTransition:
            return  # another submitter took it
        report.add(Count.SKIPPED_BUDGET)
    else:
        hold(session, job_id, f"waiting for budget: {why}", now=rt.clock())  # shown by `reviewer status`
        report.add(Count.WAITING_FOR_BUDGET)
    report.note(f"job {job_id}: {why}")

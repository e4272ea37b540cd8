"""Stage 2, submit: queued jobs become Anthropic Message Batches (custom_id = "job-<id>", see jobs.py).

Crash safety: the batch row is written and the jobs moved to `submitting` (with a lease) *before* the
API call, and the batch id is recorded after it. If the process dies in between, the next run finds the
`creating` row once its lease expired and reconciles it against the API's batch list: a batch with the
same number of requests created at that moment is adopted (no job is submitted twice); if there is none,
the jobs go back to the queue (no job is lost). `create` is sent without SDK retries for the same reason.

Limits: at most 100,000 requests and 256 MB per batch; a larger queue becomes several batches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.budget import BudgetGate
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ConcurrentTransition, ConfigError, TemplateError
from reviewer.jobs import Prepared, jobs_of_batch, prepare_request
from reviewer.locks import exclusive
from reviewer.models import Batch, ReviewJob, repo_state
from reviewer.queue import BATCHES_IN_FLIGHT, BatchState, State, iter_claimable, lease, new_batch, set_batch_state, transition
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

log = logging.getLogger("reviewer.submit")
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024 - 1024 * 1024  # leave room for the envelope
CLAIM_CHUNK = 1000
RECONCILE_SKEW = timedelta(minutes=2)


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
        reconcile_orphans(rt, report)
        _submit_locked(rt, names, report)
    return report


def _submit_locked(rt: Runtime, names: list[str], report: StageReport) -> None:
    pending = _Pending(capacity=_queue_capacity(rt))
    for job in iter_claimable(rt.sessions, State.QUEUED, clock=rt.clock, repositories=names, chunk=CLAIM_CHUNK):
        pending = _add_job(rt, job, pending, report)
    if pending.jobs:
        _send(rt, pending, report)
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
        prepared = prepare_request(job, rt.settings)
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
        batch = new_batch(session, owner=rt.actor, now=now)
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
        created = rt.batches.create(requests)
    except AnthropicError as exc:
        if exc.status == 429:  # the organisation's batch queue is full: nothing was created; wait
            _abandon(rt, batch_row_id, exc.message)
            report.note(f"{len(requests)} jobs wait for the next submission: {exc.message}")
            return 0
        if exc.status is not None and not exc.retryable:
            _abandon(rt, batch_row_id, exc.message)  # refused: nothing was created
        report.error(f"batch of {len(requests)} requests not submitted: {exc.message}")
        raise
    _record_submitted(rt, batch_row_id, created.id)
    report.add(Count.SUBMITTED, len(requests))
    report.add(Count.BATCHES)
    report.note(f"batch {created.id}: {len(requests)} requests")
    return len(requests)


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
        report.add(Count.WAITING_FOR_BUDGET)
    report.note(f"job {job_id}: {why}")


def _record_submitted(rt: Runtime, batch_row_id: int, anthropic_id: str) -> None:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch_row_id, BatchState.CREATING, BatchState.SUBMITTED, anthropic_id=anthropic_id,
                        submitted_at=now, processing_status="in_progress")
        for job in jobs_of_batch(session, batch_row_id, State.SUBMITTING):
            transition(session, job.id, State.SUBMITTING, State.SUBMITTED, now=now, actor=rt.actor,
                       reason=f"in batch {anthropic_id}", attempts=job.attempts + 1)


def _abandon(rt: Runtime, batch_row_id: int, why: str) -> None:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch_row_id, BatchState.CREATING, BatchState.ABANDONED, error=why)
        for job in jobs_of_batch(session, batch_row_id, State.SUBMITTING):
            transition(session, job.id, State.SUBMITTING, State.QUEUED, now=now, actor=rt.actor,
                       reason=f"batch was not created ({why}); queued again", batch_id=None)


def reconcile_orphans(rt: Runtime, report: StageReport) -> None:
    """Batches whose creation was interrupted: adopt what the API created, requeue what it did not."""
    cutoff = rt.clock() - timedelta(seconds=rt.settings.intervals.lease_seconds)
    with rt.sessions() as session:
        orphans = session.scalars(select(Batch).where(Batch.state == BatchState.CREATING, Batch.created_at < cutoff)
                                  .order_by(Batch.id)).all()
        known = set(session.scalars(select(Batch.anthropic_id).where(Batch.anthropic_id.is_not(None))))
    if not orphans:
        return
    try:
        remote = rt.batches.list_since(min(o.created_at for o in orphans) - RECONCILE_SKEW)
    except AnthropicError as exc:
        report.error(f"cannot reconcile {len(orphans)} interrupted batch(es) yet: {exc.message}")
        return
    for orphan in orphans:
        match = next((b for b in sorted(remote, key=lambda b: b.created_at)
                      if b.id not in known and b.request_total == orphan.request_count
                      and b.created_at >= orphan.created_at - RECONCILE_SKEW), None)
        if match is None:
            _abandon(rt, orphan.id, "creation was interrupted and the API has no such batch")
            report.note(f"local batch {orphan.id}: never created; its {orphan.request_count} jobs are queued again")
        else:
            known.add(match.id)
            _record_submitted(rt, orphan.id, match.id)
            report.note(f"local batch {orphan.id}: creation was interrupted; adopted {match.id}")
            report.add(Count.ADOPTED_BATCHES)

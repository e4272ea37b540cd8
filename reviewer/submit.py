"""Stage 2, submit: queued jobs become Anthropic Message Batches (custom_id = "rv<deployment>-<job id>",
see jobs.py).

Crash safety: the batch row is written and the jobs moved to `submitting` *before* the API call, and the
batch id is recorded after it. `create` is sent without SDK retries (the API has no idempotency key). A
create without a definite answer is settled in the same run, and a row left `creating` by a dead process
at the next submission, under the submit lock (settle.py): the batch is adopted if the API made it (no
job is submitted twice), else the jobs go back to the queue (no job is lost). A failed create stops this
run's submission; what is already answered is still polled and posted.

Limits: at most 100,000 requests and 250,000,000 bytes per batch (the API's 256 MB read as decimal, less
a margin); a larger queue becomes several batches, each filled up to a limit.

Flow, in constant memory: the queue is read a chunk (CLAIM_CHUNK jobs, fewer past CLAIM_BYTES of diffs)
at a time; a chunk is prepared outside any transaction (repository rules worked out once per run, trim,
render, JSON: `RequestBuilder`), then claimed in one short transaction (the budget gate, one guarded
UPDATE per 500 ids, one executemany of the per-job columns; the batch row in `creating` with the first
chunk), and its requests are appended to the batch's create body, spooled to a temporary file
(spool.py). The create streams that file. A chunk that would overflow the batch is split: what fits
completes it, the batch is created, the rest starts the next one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from reviewer.budget import BudgetGate
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ConcurrentTransition, ConfigError, TemplateError
from reviewer.jobs import Prepared, RequestBuilder, request_json
from reviewer.locks import exclusive
from reviewer.models import Batch, ReviewJob, repo_state
from reviewer.queue import (
    BATCHES,
    BATCHES_IN_FLIGHT,
    REVIEW_JOBS,
    State,
    hold,
    iter_claimable,
    lease,
    new_batch,
    transition,
    transition_many,
)
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime
from reviewer.settle import abandon, create_outcome, record_submitted, settle_ambiguous, settle_interrupted
from reviewer.spool import RequestSpool

log = logging.getLogger("reviewer.submit")
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 250_000_000  # the API's 256 MB as decimal bytes (the stricter reading), less a margin
CLAIM_CHUNK = 1000
CLAIM_BYTES = 16 * 1024 * 1024  # of diffs per chunk: what is prepared before it is claimed
# the columns each claimed job gets of its own, once it is ours (bind names must differ from the columns)
_JOB_COLUMNS = (update(REVIEW_JOBS).where(REVIEW_JOBS.c.id == bindparam("b_id"))
                .values(model=bindparam("b_model"), omitted=bindparam("b_omitted"),
                        reserved_micro_usd=bindparam("b_reserved")))


class _CreateFailed(Exception):
    """A create failed (and was settled): this run sends no further batch."""


@dataclass(frozen=True)
class _Ready:
    """A prepared job: its request as it goes into the body, and what is recorded about it (the request's
    dicts are not kept: the JSON is the only copy of the prompt held until the chunk is claimed)."""

    job_id: int
    repository: str
    model: str
    omitted: str
    reserved: int
    entry: bytes

    @classmethod
    def of(cls, job_id: int, prepared: Prepared) -> _Ready:
        return cls(job_id, prepared.repository, prepared.model, prepared.omitted, prepared.reserved,
                   request_json(prepared))


@dataclass
class _Batch:
    """The batch being filled: its row (written with its first claim) and its spooled body."""

    row_id: int | None = None
    spool: RequestSpool = field(default_factory=RequestSpool)
    warnings: list[str] = field(default_factory=list)  # of its last budget gate: committed only grows


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
    run = _Submission(rt, report)
    try:
        for chunk in _chunks(iter_claimable(rt.sessions, State.QUEUED, clock=rt.clock, repositories=names,
                                            chunk=CLAIM_CHUNK)):
            run.add(chunk)
        run.send()
    except _CreateFailed:
        return  # the jobs not sent stay queued for the next submission
    finally:
        run.close()
    with transaction(rt.sessions) as session:
        for name in names:
            repo_state(session, name).last_submitted_at = rt.clock()


def _chunks(jobs: Iterator[ReviewJob]) -> Iterator[list[ReviewJob]]:
    """The jobs in chunks of CLAIM_CHUNK, or fewer when their diffs pass CLAIM_BYTES (large reviews)."""
    chunk: list[ReviewJob] = []
    size = 0
    for job in jobs:
        chunk.append(job)
        size += len(job.review_diff or job.diff)
        if len(chunk) >= CLAIM_CHUNK or size >= CLAIM_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _queue_capacity(rt: Runtime) -> int:
    """Requests the batch queue still takes: the configured limit minus what our batches hold."""
    with rt.sessions() as session:
        held = session.scalar(select(func.coalesce(func.sum(Batch.request_count), 0))
                              .where(Batch.state.in_(list(BATCHES_IN_FLIGHT)))) or 0
    return max(rt.settings.anthropic.max_queued_requests - int(held), 0)


class _Submission:
    """One run's batches, filled a chunk of jobs at a time."""

    def __init__(self, rt: Runtime, report: StageReport) -> None:
        self.rt, self.report = rt, report
        self.builder = RequestBuilder(rt.settings, rt.custom_id_prefix)
        self.room = _queue_capacity(rt)  # requests the organisation's batch queue still takes
        self.batch = _Batch()

    def add(self, jobs: Sequence[ReviewJob]) -> None:
        ready = self._within_room(self._prepare(jobs))
        while ready:
            fitting = self._fitting(ready)
            self._claim(ready[:fitting])
            ready = ready[fitting:]
            if ready:  # the batch is full: the rest goes into the next one
                self.send()

    def send(self) -> None:
        """Create the batch being filled (if it holds anything) and start the next one."""
        batch, self.batch = self.batch, _Batch()
        try:
            for line in batch.warnings:
                self.report.note(line)
                log.warning("%s", line)
            if batch.row_id is not None:
                self.room -= _create(self.rt, batch.row_id, batch.spool, self.report)
        finally:
            batch.spool.close()

    def close(self) -> None:
        self.batch.spool.close()

    def _prepare(self, jobs: Sequence[ReviewJob]) -> list[_Ready]:
        """The chunk's requests, outside any transaction; a job not worth a request is skipped."""
        ready: list[_Ready] = []
        skips: list[tuple[ReviewJob, str]] = []
        for job in jobs:
            try:
                prepared = self.builder.prepare(job)
            except (TemplateError, ConfigError) as exc:
                self.report.error(f"{job.repository}#{job.pr_number}: {exc.message}; the job stays queued")
                continue
            if isinstance(prepared, str):
                skips.append((job, prepared))
            else:
                ready.append(_Ready.of(job.id, prepared))
        if skips:
            _skip(self.rt, skips, self.report)
        return ready

    def _within_room(self, ready: list[_Ready]) -> list[_Ready]:
        """What the batch queue still takes of `ready` (the rest waits, queued)."""
        room = max(self.room - self.batch.spool.count, 0)
        if len(ready) > room:
            self.report.add(Count.WAITING_FOR_QUEUE_ROOM, len(ready) - room)
        return ready[:room]

    def _fitting(self, ready: Sequence[_Ready]) -> int:
        """How many of `ready` (from the first) the batch still takes; an empty batch takes its first
        request whatever its size."""
        spool, total = self.batch.spool, 0
        for n, item in enumerate(ready):
            total += len(item.entry)
            if spool.count + n + 1 > MAX_BATCH_REQUESTS or spool.size_with(n + 1, total) > MAX_BATCH_BYTES:
                return n if n or spool.count else 1
        return len(ready)

    def _claim(self, ready: Sequence[_Ready]) -> None:
        """Move `ready` into the batch (its row made with the first of them) in one transaction, then
        append the requests of those that are now ours to its body."""
        if not ready:
            return
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            gate = BudgetGate.open(session, self.rt.settings, {r.repository for r in ready}, now)
            made, row_id = None, self.batch.row_id
            if row_id is None:
                made = new_batch(session, owner=self.rt.actor, now=now, custom_id_prefix=self.rt.custom_id_prefix)
                row_id = made.id
            mine = _claim(self.rt, session, row_id, ready, gate, self.report)
            if mine:
                session.execute(update(BATCHES).where(BATCHES.c.id == row_id)
                                .values(request_count=BATCHES.c.request_count + len(mine)))
            elif made is not None:
                session.delete(made)  # nothing to send: leave no empty batch behind
        if mine:
            self.batch.row_id = row_id
        self.batch.warnings = gate.check_warnings()
        for item in mine:
            self.batch.spool.add(item.entry)


def _skip(rt: Runtime, skips: Sequence[tuple[ReviewJob, str]], report: StageReport) -> None:
    """Skip a chunk's jobs that are not worth a request, one guarded UPDATE per reason."""
    by_reason: defaultdict[str, list[int]] = defaultdict(list)
    for job, reason in skips:
        by_reason[reason].append(job.id)
    with transaction(rt.sessions) as session:
        moved = set().union(*(transition_many(session, ids, State.QUEUED, State.SKIPPED, now=rt.clock(),
                                              actor=rt.actor, reason=reason) for reason, ids in by_reason.items()))
    for job, reason in skips:
        if job.id in moved:  # else another submitter took it
            report.add(Count.SKIPPED)
            report.note(f"{job.repository}#{job.pr_number} skipped: {reason}")


def _claim(rt: Runtime, session: Session, batch_id: int, ready: Sequence[_Ready], gate: BudgetGate,
           report: StageReport) -> list[_Ready]:
    """The jobs of `ready` admitted by the budgets and moved to `submitting` in batch `batch_id`, with
    their own columns written; the others are held for budget, skipped, or were taken by another."""
    admitted = []
    for item in ready:
        refused = gate.admit(item.repository, item.reserved)
        if refused is None:
            admitted.append(item)
        else:
            _over_budget(rt, session, item.job_id, refused, report)
    now = rt.clock()
    moved = transition_many(session, [r.job_id for r in admitted], State.QUEUED, State.SUBMITTING, now=now,
                            actor=rt.actor, lease_until=lease(now, rt.settings.intervals.lease_seconds),
                            batch_id=batch_id, reason=f"being submitted in local batch {batch_id}")
    mine = [r for r in admitted if r.job_id in moved]
    for item in admitted:
        if item.job_id not in moved:
            gate.release(item.repository, item.reserved)  # another submitter took it
    if mine:
        session.execute(_JOB_COLUMNS, [{"b_id": r.job_id, "b_model": r.model, "b_omitted": r.omitted,
                                        "b_reserved": r.reserved} for r in mine])
    return mine


def _create(rt: Runtime, batch_row_id: int, spool: RequestSpool, report: StageReport) -> int:
    """Create the batch of row `batch_row_id` from its spooled body; returns how many requests it holds."""
    size = spool.count
    try:
        anthropic_id = rt.batches.create(spool.body()).id
    except AnthropicError as exc:
        adopted = _create_failed(rt, batch_row_id, size, exc, report)
        if adopted is None and (exc.status in (401, 403) or exc.status is None):
            raise  # a wrong key or an unreachable API is the same for every batch: stop with one line
        if adopted is None:
            raise _CreateFailed from None
        anthropic_id = adopted
    else:
        record_submitted(rt, batch_row_id, anthropic_id)
    report.add(Count.SUBMITTED, size)
    report.add(Count.BATCHES)
    report.note(f"batch {anthropic_id}: {size} requests")
    return size


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

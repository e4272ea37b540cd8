"""The outcome of a batch create, recorded, and settled at once when there is no definite answer.

The API has no idempotency key, so a create that failed without a definite answer (a 5xx, a timeout, a
dropped connection, or a process killed between the call and its record) may or may not have made a
batch. That is never left to a timer:

- the caller's own ambiguous create is settled in the same run, after a short grace for a request still
  in flight (`anthropic.create_grace_seconds`);
- a `creating` row left by a dead process is settled by the next submission: it holds the submit lock
  (`locks.exclusive`), which proves that no other process is inside a create;
- settling lists the API's batches created around that moment and adopts the one with the same number
  of requests that no row of this database knows, or, if there is none, abandons the row and queues its
  jobs again. An adopted batch is marked `adopted`: poll checks that its results carry this deployment's
  custom_ids and drops it (the jobs are queued again) if they do not.

A definite refusal (4xx, 529 overloaded, 429 queue full) created nothing: its jobs are queued again at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from sqlalchemy import select

from reviewer.batches import BatchStatus
from reviewer.db import transaction
from reviewer.errors import AnthropicError
from reviewer.jobs import job_ids_of_batch
from reviewer.models import Batch
from reviewer.queue import REVIEW_JOBS, BatchState, State, set_batch_state, transition_many
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

RECONCILE_SKEW = timedelta(minutes=2)  # clocks of this host and of the API may differ by this much
CreateOutcome = Literal["queue full", "refused", "ambiguous"]


def create_outcome(exc: AnthropicError) -> CreateOutcome:
    """What a failed create means: nothing made and wait (429), nothing made (another definite refusal),
    or unknown (no answer, or a server error that may have come after the batch was made)."""
    if exc.status == 429:
        return "queue full"
    if exc.status is not None and (exc.status < 500 or exc.status == 529):
        return "refused"
    return "ambiguous"


def record_submitted(rt: Runtime, batch_row_id: int, anthropic_id: str, *, adopted: bool = False) -> None:
    now = rt.clock()
    how = "adopted after an interrupted create" if adopted else "created"
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch_row_id, BatchState.CREATING, BatchState.SUBMITTED, anthropic_id=anthropic_id,
                        submitted_at=now, processing_status="in_progress", adopted=adopted)
        transition_many(session, job_ids_of_batch(session, batch_row_id, State.SUBMITTING), State.SUBMITTING,
                        State.SUBMITTED, now=now, actor=rt.actor, reason=f"in batch {anthropic_id} ({how})",
                        attempts=REVIEW_JOBS.c.attempts + 1)


def abandon(rt: Runtime, batch_row_id: int, why: str) -> None:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        set_batch_state(session, batch_row_id, BatchState.CREATING, BatchState.ABANDONED, error=why)
        transition_many(session, job_ids_of_batch(session, batch_row_id, State.SUBMITTING), State.SUBMITTING,
                        State.QUEUED, now=now, actor=rt.actor, reason=f"batch was not created ({why}); queued again",
                        batch_id=None)


def settle_interrupted(rt: Runtime, report: StageReport) -> None:
    """Every `creating` row: the caller holds the submit lock, so their creators are gone."""
    with rt.sessions() as session:
        orphans = session.scalars(select(Batch).where(Batch.state == BatchState.CREATING).order_by(Batch.id)).all()
    if orphans:
        settle(rt, orphans, report, "its create was interrupted")


def settle_ambiguous(rt: Runtime, batch_row_id: int, report: StageReport) -> str | None:
    """This run's own create failed without a definite answer: give a request still in flight a moment,
    then look. Returns the id of the batch adopted, if the API had made it."""
    time.sleep(rt.settings.anthropic.create_grace_seconds)
    with rt.sessions() as session:
        row = session.get_one(Batch, batch_row_id)
    return settle(rt, [row], report, "its create got no definite answer").get(batch_row_id)


def settle(rt: Runtime, orphans: Sequence[Batch], report: StageReport, why: str) -> dict[int, str]:
    """Adopt what the API made for each row, abandon (and requeue) the rest; returns the adopted batch
    id per row. If the API cannot be asked now, the rows stay `creating` for the next submission."""
    with rt.sessions() as session:
        known = set(session.scalars(select(Batch.anthropic_id).where(Batch.anthropic_id.is_not(None))))
    try:
        remote = rt.batches.list_since(min(o.created_at for o in orphans) - RECONCILE_SKEW)
    except AnthropicError as exc:
        report.error(f"cannot settle {len(orphans)} batch create(s) yet ({why}): {exc.message}")
        return {}
    adopted: dict[int, str] = {}
    for orphan in orphans:
        match = _match(orphan, remote, known)
        if match is None:
            abandon(rt, orphan.id, f"{why} and the API has no such batch")
            report.note(f"local batch {orphan.id}: {why}; never created, its {orphan.request_count} jobs are "
                        "queued again")
        else:
            known.add(match.id)
            adopted[orphan.id] = match.id
            record_submitted(rt, orphan.id, match.id, adopted=True)
            report.note(f"local batch {orphan.id}: {why}; adopted {match.id}")
            report.add(Count.ADOPTED_BATCHES)
    return adopted


def _match(orphan: Batch, remote: Sequence[BatchStatus], known: set[str | None]) -> BatchStatus | None:
    """The earliest unknown batch with the row's request count, made no earlier than the row (less skew)."""
    return next((b for b in sorted(remote, key=lambda b: b.created_at)
                 if b.id not in known and b.request_total == orphan.request_count
                 and b.created_at >= orphan.created_at - RECONCILE_SKEW), None)

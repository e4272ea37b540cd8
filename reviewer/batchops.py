"""Operator actions on batches, for `reviewer batches`: list them with what their stored results say, and
cancel one that is still running.

A cancel is recorded on the batch row (`cancel_requested_at`, `cancel_requested_by`) *before* the API is
asked, so that however the process ends, poll can tell an operator's cancel from other `canceled` lines:
the jobs of that batch go back to the queue with their attempt given back (`jobs.requeue_canceled`), so a
cancel never pushes a job toward max_attempts or `failed`. The record is removed again when the API
refuses the cancel. Requests that already finished before the cancel keep their result (a succeeded one
is answered and posted as usual).

Only a batch that is still `submitted` can be canceled. Ended, archived (results no longer downloadable),
abandoned (never created) and missing batches are shown as such and never retried; asking to cancel one
is one clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.choices import LIST_LIMIT
from reviewer.cost import format_usd
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ReviewerError
from reviewer.models import Batch, Result, ResultType
from reviewer.queue import BatchState
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

FINISHED: dict[str, str] = {
    BatchState.ENDED: "has already ended",
    BatchState.ARCHIVED: "has ended and its results were archived",
    BatchState.ABANDONED: "was never created (abandoned)",
    BatchState.MISSING: "is no longer known to the API",
    BatchState.FOREIGN: "belongs to another deployment (it was adopted by mistake and dropped)",
}


@dataclass(frozen=True)
class BatchView:
    id: int
    anthropic_id: str | None
    state: str
    processing_status: str | None
    requests: int
    counts: Mapping[str, int]
    cost: int
    created_at: datetime
    ended_at: datetime | None
    cancel_requested_at: datetime | None


# listing ------------------------------------------------------------------------------------------------


def _result_counts(session: Session, batch_ids: list[int]) -> tuple[dict[int, dict[str, int]], dict[int, int]]:
    query = (select(Result.batch_id, Result.result_type, func.count(), func.sum(Result.cost_micro_usd))
             .where(Result.batch_id.in_(batch_ids)).group_by(Result.batch_id, Result.result_type))
    counts: dict[int, dict[str, int]] = {}
    costs: dict[int, int] = {}
    for batch_id, kind, n, cost in session.execute(query):
        if batch_id is None:  # excluded by the query; narrows the type
            continue
        counts.setdefault(batch_id, {})[kind] = n
        costs[batch_id] = costs.get(batch_id, 0) + int(cost or 0)
    return counts, costs


def list_batches(session: Session, limit: int = LIST_LIMIT) -> list[BatchView]:
    """The newest `limit` batches, newest first, with counts and cost from their stored result lines."""
    batches = session.scalars(select(Batch).order_by(Batch.id.desc()).limit(limit)).all()
    counts, costs = _result_counts(session, [b.id for b in batches])
    return [BatchView(b.id, b.anthropic_id, b.state, b.processing_status, b.request_count, counts.get(b.id, {}),
                      costs.get(b.id, 0), b.created_at, b.ended_at, b.cancel_requested_at) for b in batches]


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def format_batches(views: Sequence[BatchView]) -> str:
    if not views:
        return "no batches yet"
    header = (f"{'local':>6} {'anthropic id':<34} {'state':<10} {'status':<12} {'requests':>8} "
              f"{'ok':>7} {'errored':>7} {'expired':>7} {'canceled':>8} {'cost':>11}  {'created':<16}  {'ended':<16}")
    lines = [header, "-" * len(header)]
    for v in views:
        ok, errored, expired, canceled = (v.counts.get(kind, 0) for kind in ResultType)
        note = f"  cancel requested {_when(v.cancel_requested_at)}" if v.cancel_requested_at else ""
        lines.append(f"{v.id:>6} {v.anthropic_id or '-':<34} {v.state:<10} {v.processing_status or '-':<12} "
                     f"{v.requests:>8,} {ok:>7,} {errored:>7,} {expired:>7,} {canceled:>8,} "
                     f"{format_usd(v.cost, 4):>11}  {_when(v.created_at):<16}  {_when(v.ended_at):<16}{note}".rstrip())
    return "\n".join(lines)


# cancel -------------------------------------------------------------------------------------------------


def find_batch(session: Session, ident: str) -> Batch:
    """A batch by its Anthropic id (`msgbatch_...`) or its local id (a number)."""
    batch = session.scalars(select(Batch).where(Batch.anthropic_id == ident)).first()
    if batch is None and ident.isdigit():
        batch = session.get(Batch, int(ident))
    if batch is None:
        raise ReviewerError(f"no batch {ident!r}", "see `reviewer batches` for Anthropic and local ids")
    return batch


def _label(batch: Batch) -> str:
    return f"{batch.anthropic_id} (local {batch.id})" if batch.anthropic_id else f"local {batch.id}"


def _check_cancelable(batch: Batch) -> str:
    """The Anthropic id of a batch that can still be canceled, or a ReviewerError that says why not."""
    if batch.state in FINISHED:
        raise ReviewerError(f"batch {_label(batch)} {FINISHED[batch.state]}; there is nothing to cancel")
    if batch.state != BatchState.SUBMITTED or batch.anthropic_id is None:
        raise ReviewerError(f"batch {_label(batch)} is still being created ({batch.state}); nothing to cancel yet",
                            "try again once `reviewer batches` shows its Anthropic id")
    return batch.anthropic_id


def _record_request(rt: Runtime, batch_id: int, at: datetime | None, by: str | None) -> None:
    with transaction(rt.sessions) as session:
        row = session.get_one(Batch, batch_id)
        row.cancel_requested_at, row.cancel_requested_by = at, by


def cancel_batch(rt: Runtime, ident: str) -> StageReport:
    """Ask the API to cancel a running batch; its unfinished requests come back to the queue when it ends."""
    with rt.sessions() as session:
        batch = find_batch(session, ident)
    anthropic_id = _check_cancelable(batch)
    _record_request(rt, batch.id, rt.clock(), rt.actor)
    try:
        status = rt.batches.cancel(anthropic_id)
    except AnthropicError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            _record_request(rt, batch.id, None, None)  # refused: nothing was canceled
        raise
    with transaction(rt.sessions) as session:
        session.get_one(Batch, batch.id).processing_status = status.processing_status
    report = StageReport("cancel")
    report.add(Count.BATCHES_CANCELED)
    report.note(f"batch {_label(batch)} is {status.processing_status}: its {batch.request_count:,} requests come "
                "back to the queue when it ends (the next poll), without counting an attempt")
    return report

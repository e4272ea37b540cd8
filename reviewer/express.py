"""The express lane: a pull request labelled with the repository's `express_label` (default
`review-now`) is reviewed at once through the standard Messages API instead of waiting for the batch
window. It costs the standard price, which the ledger records as such (`is_batch` false), and the
budgets apply to it exactly as to batches (worst case reserved before the call).

A failed express call puts the job back in the queue without the express flag, so it goes with the
next batch rather than retrying at full price.
"""

from __future__ import annotations

from sqlalchemy import select

from reviewer.budget import BudgetGate, worst_case
from reviewer.db import transaction
from reviewer.errors import AnthropicError, ConcurrentTransition, ConfigError, TemplateError
from reviewer.jobs import Prepared, custom_id, effective_settings, prepare_request, result_row
from reviewer.models import ReviewJob
from reviewer.queue import State, lease, transition
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime


def review_express(rt: Runtime) -> StageReport:
    report = StageReport("express")
    with rt.sessions() as session:
        jobs = session.scalars(select(ReviewJob).where(ReviewJob.state == State.QUEUED.value,
                                                       ReviewJob.express.is_(True)).order_by(ReviewJob.id)).all()
    for job in jobs:
        _review_one(rt, job, report)
    return report


def _claim(rt: Runtime, job: ReviewJob, prepared: Prepared, report: StageReport) -> bool:
    reserved = worst_case(prepared.input_tokens, effective_settings(rt.settings, job), rt.settings, batch=False)
    with transaction(rt.sessions) as session:
        gate = BudgetGate.open(session, rt.settings, {job.repository}, rt.clock())
        refused = gate.admit(job.repository, reserved)
        if refused is not None:
            report.add(Count.WAITING_FOR_BUDGET)
            report.note(f"{job.repository}#{job.pr_number}: express review not sent: {refused}")
            return False
        try:
            transition(session, job.id, State.QUEUED, State.SUBMITTING, now=rt.clock(), actor=rt.actor,
                       lease_until=lease(rt.clock(), rt.settings.intervals.lease_seconds), model=prepared.model,
                       omitted=prepared.omitted, reserved_micro_usd=reserved, attempts=job.attempts + 1,
                       reason="sent through the standard API (express label)")
        except ConcurrentTransition:
            return False  # another instance took it
    return True


def _review_one(rt: Runtime, job: ReviewJob, report: StageReport) -> None:
    name = f"{job.repository}#{job.pr_number}"
    try:
        prepared = prepare_request(job, rt.settings, rt.custom_id_prefix)
    except (TemplateError, ConfigError) as exc:
        report.error(f"{name}: {exc.message}")
        return
    if isinstance(prepared, str) or not _claim(rt, job, prepared, report):
        return  # too large to review: the batch submission skips it with its reason
    params = dict(prepared.request["params"])
    params["system"] = [{k: v for k, v in block.items() if k != "cache_control"} for block in params["system"]]
    try:
        line = rt.batches.create_message(custom_id(rt.custom_id_prefix, job.id) + "-express", params)
    except AnthropicError as exc:
        _back_to_queue(rt, job, exc.message)
        report.error(f"{name}: express review failed ({exc.message}); it goes with the next batch")
        return
    with transaction(rt.sessions) as session:
        session.add(result_row(rt.settings, None, job, line, now=rt.clock(), batch=False))
        transition(session, job.id, State.SUBMITTING, State.ANSWERED, now=rt.clock(), actor=rt.actor,
                   review_text=line.text, reason=f"answered by the standard API ({line.stop_reason})")
    report.add(Count.ANSWERED)
    report.note(f"{name}: reviewed through the standard API at once (express label)")


def _back_to_queue(rt: Runtime, job: ReviewJob, why: str) -> None:
    with transaction(rt.sessions) as session:
        transition(session, job.id, State.SUBMITTING, State.QUEUED, now=rt.clock(), actor=rt.actor,
                   express=False, reason=f"express review failed ({why}); queued for the next batch")


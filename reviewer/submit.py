"""Stage 2, submit: queued jobs become Anthropic Message Batches (custom_id = "job-<id>").

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
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.budget import BudgetGate, worst_case
from reviewer.config import RepoSettings, Settings
from reviewer.db import transaction
from reviewer.review.diffs import changed_files, number_new_side
from reviewer.errors import AnthropicError, ConfigError, ReviewerError, TemplateError
from reviewer.review.parse import REVIEW_TOOL, TOOL_NAME
from reviewer.rules import REPO_CONFIG_PATH, apply_rules, rules_from_json
from reviewer.review.trim import DEFAULT_IGNORES, FittedDiff, estimate_tokens, fit_diff
from reviewer.locks import exclusive
from reviewer.models import Batch, ReviewJob, repo_state
from reviewer.queue import State, iter_claimable, lease, transition
from reviewer.review.render import render_prompt
from reviewer.runtime import Runtime, StageReport

log = logging.getLogger("reviewer.submit")
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024 - 1024 * 1024  # leave room for the envelope
CLAIM_CHUNK = 1000
RECONCILE_SKEW = timedelta(minutes=2)
PROMPT_OVERHEAD_TOKENS = 8_000  # system prompt, tool schema and PR metadata around the diff


def custom_id(job_id: int) -> str:
    return f"job-{job_id}"


def job_id_from(custom: str) -> int | None:
    prefix, _, number = custom.partition("-")
    return int(number) if prefix == "job" and number.isdigit() else None


def effective_settings(settings: Settings, job: ReviewJob) -> RepoSettings:
    """The repository's central settings with the rules it had on its default branch at collection."""
    repo = settings.repo(job.repository)
    if not job.repo_rules:
        return repo
    return apply_rules(repo, rules_from_json(job.repo_rules), settings, f"{job.repository}:{REPO_CONFIG_PATH}")


def template_variables(job: ReviewJob, repo: RepoSettings, fitted: FittedDiff) -> dict[str, Any]:
    return {
        "repo": job.repository,
        "pr": {"number": job.pr_number, "title": job.title, "author": job.author, "body": job.body,
               "url": job.url, "base_ref": job.base_ref, "head_ref": job.head_ref, "head_sha": job.head_sha,
               "labels": [label for label in job.labels.split(",") if label]},
        "diff": number_new_side(fitted.diff),
        "files": list(fitted.kept) or changed_files(fitted.diff),
        "omitted": [{"path": o.path, "reason": o.reason} for o in fitted.omitted],
        "instructions": repo.instructions,
        "model": repo.model,
        "incremental": job.review_base_sha is not None,
        "since_sha": job.review_base_sha or "",
        "previous_summary": job.previous_summary or "",
    }


@dataclass(frozen=True)
class Prepared:
    request: dict[str, Any]
    repository: str
    model: str
    omitted: str  # JSON [[path, reason], ...]
    input_tokens: int  # estimated
    reserved: int  # worst-case micro-USD held against the budgets while in flight


def prepare_request(job: ReviewJob, settings: Settings) -> Prepared | str:
    """The batch request for a job, or the reason it is skipped (too large to review)."""
    repo = effective_settings(settings, job)
    price = settings.prices.price(repo.model)
    room = price.context_window - repo.max_tokens - PROMPT_OVERHEAD_TOKENS
    fitted = fit_diff(job.review_diff or job.diff, ignore=DEFAULT_IGNORES + repo.ignore,
                      budget_tokens=max(min(repo.token_budget, room), 1000), hard_limit_tokens=repo.hard_limit_tokens)
    if fitted.over_hard_limit:
        return (f"the reviewable diff is over the hard limit of {repo.hard_limit_tokens:,} tokens; "
                "split the pull request or raise hard_limit_tokens")
    if not fitted.kept and fitted.omitted and fitted.tokens == 0:
        return "every changed file is ignored (" + "; ".join(f"{o.path}: {o.reason}" for o in fitted.omitted[:5]) + ")"
    prompt = render_prompt(repo.template, template_variables(job, repo, fitted), settings.prompts_dir)
    system: dict[str, Any] = {"type": "text", "text": prompt.system}
    if repo.prompt_caching:  # tools + system prompt are the prefix every request of the repository shares
        system["cache_control"] = {"type": "ephemeral", "ttl": repo.cache_ttl}
    params = {
        "model": repo.model,
        "max_tokens": repo.max_tokens,
        "system": [system],
        "messages": [{"role": "user", "content": prompt.user}],
        "tools": [REVIEW_TOOL],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    }
    tokens = estimate_tokens(json.dumps(REVIEW_TOOL)) + estimate_tokens(prompt.system) + estimate_tokens(prompt.user)
    omitted = json.dumps([[o.path, o.reason] for o in fitted.omitted])
    return Prepared({"custom_id": custom_id(job.id), "params": params}, job.repository, repo.model, omitted,
                    tokens, worst_case(tokens, repo, settings, batch=True))


@dataclass
class _Pending:
    jobs: list[tuple[int, Prepared]] = field(default_factory=list)
    size: int = 0
    capacity: int = MAX_BATCH_REQUESTS  # what the organisation's batch queue still takes


def submit_queued(rt: Runtime, repositories: Iterable[str] | None = None, *, dry_run: bool = False) -> StageReport:
    report = StageReport("submit" + (" (dry run)" if dry_run else ""))
    names = list(repositories) if repositories is not None else [r.name for r in rt.settings.repositories]
    names = [n for n in names if any(r.name == n for r in rt.settings.repositories)]
    if dry_run:
        from reviewer.estimate import estimate_queued

        estimate_queued(rt, names, report)
        return report
    rt.batches  # a missing API key must fail before any job is claimed
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
                              .where(Batch.state.in_(["creating", "submitted"]))) or 0
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
        report.add("waiting for queue room")
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
    except ReviewerError:
        return
    report.add("skipped")
    report.note(f"{job.repository}#{job.pr_number} skipped: {reason}")


def _send(rt: Runtime, pending: _Pending, report: StageReport) -> int:
    """Create one batch from `pending`; returns how many requests it holds."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        gate = BudgetGate.open(session, rt.settings, {p.repository for _, p in pending.jobs}, now)
        batch = Batch(state="creating", request_count=0, owner=rt.actor, created_at=now)
        session.add(batch)
        session.flush()
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
    report.add("submitted", len(requests))
    report.add("batches")
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
        except ReviewerError:
            gate.release(prepared.repository, prepared.reserved)  # another submitter took it
            continue
        claimed.add(job_id)
    return claimed


def _over_budget(rt: Runtime, session: Session, job_id: int, why: str, report: StageReport) -> None:
    if rt.settings.budget.over_budget == "skip":
        try:
            transition(session, job_id, State.QUEUED, State.SKIPPED, now=rt.clock(), actor=rt.actor, reason=why)
        except ReviewerError:
            return
        report.add("skipped (budget)")
    else:
        report.add("waiting for budget")
    report.note(f"job {job_id}: {why}")


def _record_submitted(rt: Runtime, batch_row_id: int, anthropic_id: str) -> None:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        batch = session.get_one(Batch, batch_row_id)
        batch.anthropic_id, batch.state, batch.submitted_at = anthropic_id, "submitted", now
        batch.processing_status = "in_progress"
        for job in _jobs_of(session, batch_row_id, State.SUBMITTING):
            transition(session, job.id, State.SUBMITTING, State.SUBMITTED, now=now, actor=rt.actor,
                       reason=f"in batch {anthropic_id}", attempts=job.attempts + 1)


def _abandon(rt: Runtime, batch_row_id: int, why: str) -> None:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        batch = session.get_one(Batch, batch_row_id)
        batch.state, batch.error = "abandoned", why
        for job in _jobs_of(session, batch_row_id, State.SUBMITTING):
            transition(session, job.id, State.SUBMITTING, State.QUEUED, now=now, actor=rt.actor,
                       reason=f"batch was not created ({why}); queued again", batch_id=None)


def _jobs_of(session: Session, batch_row_id: int, state: State) -> Sequence[ReviewJob]:
    return session.scalars(select(ReviewJob).where(
        ReviewJob.batch_id == batch_row_id, ReviewJob.state == state.value)).all()


def reconcile_orphans(rt: Runtime, report: StageReport) -> None:
    """Batches whose creation was interrupted: adopt what the API created, requeue what it did not."""
    cutoff = rt.clock() - timedelta(seconds=rt.settings.intervals.lease_seconds)
    with rt.sessions() as session:
        orphans = session.scalars(select(Batch).where(Batch.state == "creating", Batch.created_at < cutoff)
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
            report.add("adopted batches")

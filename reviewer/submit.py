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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewer.config import RepoSettings, Settings
from reviewer.cost import cost_of, format_usd, Usage
from reviewer.db import transaction
from reviewer.diffs import changed_files, number_new_side
from reviewer.errors import AnthropicError, ReviewerError, TemplateError
from reviewer.models import Batch, ReviewJob, repo_state
from reviewer.queue import State, claimable, lease, transition
from reviewer.render import render_prompt
from reviewer.runtime import Runtime, StageReport

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024 - 1024 * 1024  # leave room for the envelope
CLAIM_CHUNK = 1000
RECONCILE_SKEW = timedelta(minutes=2)
CHARS_PER_TOKEN = 4  # rough estimate used for dry runs until tokens are counted


def custom_id(job_id: int) -> str:
    return f"job-{job_id}"


def job_id_from(custom: str) -> int | None:
    prefix, _, number = custom.partition("-")
    return int(number) if prefix == "job" and number.isdigit() else None


def template_variables(job: ReviewJob, repo: RepoSettings) -> dict[str, Any]:
    return {
        "repo": job.repository,
        "pr": {"number": job.pr_number, "title": job.title, "author": job.author, "body": job.body,
               "url": job.url, "base_ref": job.base_ref, "head_ref": job.head_ref, "head_sha": job.head_sha,
               "labels": [label for label in job.labels.split(",") if label]},
        "diff": number_new_side(job.diff),
        "files": changed_files(job.diff),
        "instructions": repo.instructions,
        "model": repo.model,
    }


def build_request(job: ReviewJob, repo: RepoSettings, settings: Settings) -> dict[str, Any]:
    prompt = render_prompt(repo.template, template_variables(job, repo), settings.prompts_dir)
    return {
        "custom_id": custom_id(job.id),
        "params": {
            "model": repo.model,
            "max_tokens": repo.max_tokens,
            "system": [{"type": "text", "text": prompt.system}],
            "messages": [{"role": "user", "content": prompt.user}],
        },
    }


@dataclass
class _Pending:
    requests: list[dict[str, Any]]
    job_ids: list[int]
    models: list[str]
    size: int = 0


def submit_queued(rt: Runtime, repositories: Iterable[str] | None = None, *, dry_run: bool = False) -> StageReport:
    report = StageReport("submit" + (" (dry run)" if dry_run else ""))
    if not dry_run:
        rt.batches  # a missing API key must fail before any job is claimed
        reconcile_orphans(rt, report)
    names = list(repositories) if repositories is not None else [r.name for r in rt.settings.repositories]
    names = [n for n in names if any(r.name == n for r in rt.settings.repositories)]
    if dry_run:
        _dry_run(rt, names, report)
        return report
    pending = _Pending([], [], [])
    after_id = 0
    while True:
        with rt.sessions() as session:
            jobs = claimable(session, State.QUEUED, now=rt.clock(), limit=CLAIM_CHUNK,
                             repositories=names, after_id=after_id)
        if not jobs:
            break
        after_id = jobs[-1].id
        for job in jobs:
            pending = _add_job(rt, job, pending, report)
    if pending.requests:
        _send(rt, pending, report)
    with transaction(rt.sessions) as session:
        for name in names:
            repo_state(session, name).last_submitted_at = rt.clock()
    return report


def _add_job(rt: Runtime, job: ReviewJob, pending: _Pending, report: StageReport) -> _Pending:
    repo = rt.settings.repo(job.repository)
    try:
        request = build_request(job, repo, rt.settings)
    except TemplateError as exc:
        report.error(f"{job.repository}#{job.pr_number}: {exc.message}; the job stays queued")
        return pending
    size = len(json.dumps(request))
    if pending.requests and (len(pending.requests) >= MAX_BATCH_REQUESTS or pending.size + size > MAX_BATCH_BYTES):
        _send(rt, pending, report)
        pending = _Pending([], [], [])
    pending.requests.append(request)
    pending.job_ids.append(job.id)
    pending.models.append(repo.model)
    pending.size += size
    return pending


def _send(rt: Runtime, pending: _Pending, report: StageReport) -> None:
    now = rt.clock()
    until = lease(now, rt.settings.intervals.lease_seconds)
    with transaction(rt.sessions) as session:
        batch = Batch(state="creating", request_count=0, owner=rt.actor, created_at=now)
        session.add(batch)
        session.flush()
        claimed = _claim(rt, session, batch.id, pending, until)
        batch.request_count = len(claimed)
        batch_row_id = batch.id
    requests = [r for r, job_id in zip(pending.requests, pending.job_ids) if job_id in claimed]
    if not requests:
        _abandon(rt, batch_row_id, "every job was claimed by another instance first")
        return
    try:
        created = rt.batches.create(requests)
    except AnthropicError as exc:
        if exc.status is not None and not exc.retryable or exc.status == 429:
            _abandon(rt, batch_row_id, exc.message)  # refused: nothing was created
        report.error(f"batch of {len(requests)} requests not submitted: {exc.message}")
        raise
    _record_submitted(rt, batch_row_id, created.id)
    report.add("submitted", len(requests))
    report.add("batches")
    report.note(f"batch {created.id}: {len(requests)} requests")


def _claim(rt: Runtime, session: Session, batch_id: int, pending: _Pending, until: Any) -> set[int]:
    claimed: set[int] = set()
    for job_id, model in zip(pending.job_ids, pending.models):
        try:
            transition(session, job_id, State.QUEUED, State.SUBMITTING, now=rt.clock(), actor=rt.actor,
                       lease_until=until, batch_id=batch_id, model=model,
                       reason=f"being submitted in local batch {batch_id}")
        except ReviewerError:
            continue  # another submitter took it
        claimed.add(job_id)
    return claimed


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


def _dry_run(rt: Runtime, names: list[str], report: StageReport) -> None:
    with rt.sessions() as session:
        jobs = session.scalars(select(ReviewJob).where(ReviewJob.state == State.QUEUED.value,
                                                       ReviewJob.repository.in_(names))).all()
    for name in names:
        repo = rt.settings.repo(name)
        price = rt.settings.prices.price(repo.model)
        mine = [j for j in jobs if j.repository == name]
        if not mine:
            continue
        tokens = sum(_estimate_tokens(build_request(j, repo, rt.settings)) for j in mine)
        typical = cost_of(Usage(tokens, repo.max_tokens * len(mine) // 4), price)
        worst = cost_of(Usage(tokens, repo.max_tokens * len(mine)), price)
        report.add("would submit", len(mine))
        report.note(f"{name}: {len(mine)} requests to {repo.model}, ~{tokens:,} input tokens (estimated at "
                    f"{CHARS_PER_TOKEN} characters a token); batch {format_usd(typical.batch_micro_usd)} if "
                    f"output is a quarter of max_tokens, at most {format_usd(worst.batch_micro_usd)} "
                    f"(standard API: {format_usd(typical.standard_micro_usd)} / {format_usd(worst.standard_micro_usd)})")


def _estimate_tokens(request: dict[str, Any]) -> int:
    params = request["params"]
    chars = sum(len(b["text"]) for b in params["system"]) + sum(len(m["content"]) for m in params["messages"])
    return -(-chars // CHARS_PER_TOKEN)

"""Stage 4, post: each answered job becomes one review (event COMMENT) on its pull request.

The review is composed from the structured answer (compose.py): findings become inline comments
where GitHub accepts them, the rest goes into the body; if GitHub still refuses the inline comments
(422), the review is posted again with every finding in the body, and the reason is recorded.

Before posting, the pull request is read again: closed, or a head that moved on, makes the job stale
(the new head is collected as its own job), so a review is never posted on code it did not read.
Posting is idempotent: the body carries a hidden marker naming the job; a job whose earlier attempt may
have reached GitHub (the process died, or the POST failed without an answer) first looks for its
marker among the service's own reviews and records that review instead of posting again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from reviewer.review.body import Footer, marker
from reviewer.review.compose import ReviewContext, compose_review, demote_inline, known_fingerprints
from reviewer.db import transaction
from reviewer.review.diffs import DiffIndex, index_diff
from reviewer.errors import AuthFailed, ConcurrentTransition, GitHubError, RateLimited, Unreachable
from reviewer.github import PostedReview
from reviewer.jobs import effective_settings, latest_result
from reviewer.models import ReviewJob
from reviewer.review.parse import ReviewDraft, parse_review
from reviewer.queue import State, expired_leases, iter_claimable, lease, transition
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

CLAIM_CHUNK = 100


def post_answered(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    report = StageReport("post")
    _release_expired(rt, report)
    names = None if repositories is None else list(repositories)
    for job in iter_claimable(rt.sessions, State.ANSWERED, clock=rt.clock, repositories=names, chunk=CLAIM_CHUNK):
        if not _post_one(rt, job, report):
            break  # rate limited: the rest waits for the next run
    return report


def _release_expired(rt: Runtime, report: StageReport) -> None:
    """Jobs left in `posting` by a worker that died go back to `answered`; their next attempt looks
    for the marker first, because the dead worker's POST may have landed."""
    with transaction(rt.sessions) as session:
        for job in expired_leases(session, State.POSTING, now=rt.clock()):
            transition(session, job.id, State.POSTING, State.ANSWERED, now=rt.clock(), actor=rt.actor,
                       reason="an earlier posting attempt was interrupted; will check before posting again")
            report.add(Count.INTERRUPTED_POSTS)


def _claim(rt: Runtime, job: ReviewJob) -> bool:
    try:
        with transaction(rt.sessions) as session:
            transition(session, job.id, State.ANSWERED, State.POSTING, now=rt.clock(), actor=rt.actor,
                       lease_until=lease(rt.clock(), rt.settings.intervals.lease_seconds),
                       post_attempts=job.post_attempts + 1, reason="posting")
    except ConcurrentTransition:
        return False
    return True


def _finish(rt: Runtime, job: ReviewJob, target: State, reason: str, **values: Any) -> None:
    with transaction(rt.sessions) as session:
        transition(session, job.id, State.POSTING, target, now=rt.clock(), actor=rt.actor, reason=reason,
                   **values)


def _post_one(rt: Runtime, job: ReviewJob, report: StageReport) -> bool:
    """Returns False when GitHub asks us to slow down."""
    if not _claim(rt, job):
        return True
    name = f"{job.repository}#{job.pr_number}"
    try:
        outcome = _check_and_post(rt, job)
    except (AuthFailed, Unreachable) as exc:
        _finish(rt, job, State.ANSWERED, f"not posted: {exc.message}")
        raise  # the same for every job: stop the run
    except RateLimited as exc:
        _finish(rt, job, State.ANSWERED, f"rate limited; will post later ({exc.message})")
        report.error(f"{name}: {exc.message}")
        return False
    except GitHubError as exc:
        permanent = exc.status in (404, 410, 422)
        _finish(rt, job, State.FAILED if permanent else State.ANSWERED,
                f"GitHub refused the review: {exc.message}" if permanent else f"not posted yet: {exc.message}")
        report.error(f"{name}: {exc.message}")
        report.add(Count.FAILED if permanent else Count.DEFERRED)
        return True
    report.add(outcome)
    return True


def _check_and_post(rt: Runtime, job: ReviewJob) -> Count:
    name = f"{job.repository}#{job.pr_number}"
    pr = rt.github.get_pull(job.repository, job.pr_number)
    if pr.state != "open":
        _finish(rt, job, State.STALE, f"pull request was {'merged' if pr.merged else 'closed'} before posting")
        return Count.STALE
    if pr.head_sha != job.head_sha:
        _finish(rt, job, State.STALE, f"head moved from {job.head_sha[:7]} to {pr.head_sha[:7]}; "
                "the new head is reviewed as its own job")
        return Count.STALE
    job_marker = marker(job.id, job.head_sha)
    if job.post_attempts >= 1:  # (the snapshot before this claim) an earlier attempt may have landed
        existing = rt.github.find_review_with_marker(job.repository, job.pr_number, job_marker)
        if existing is not None:
            _record_posted(rt, job, existing, "found the review an earlier attempt had posted")
            return Count.ALREADY_POSTED
    draft, index, ctx = _prepare(rt, job, job_marker)
    composed = compose_review(draft, index, ctx)
    comments = [c.as_github() for c in composed.comments]
    try:
        posted = rt.github.post_review(job.repository, job.pr_number, job.head_sha, composed.body, comments)
    except GitHubError as exc:
        if exc.status != 422 or not comments:
            raise
        # GitHub rejects the whole review without saying which comment: post it once more with every
        # finding in the body (a 422 created nothing, so this cannot duplicate).
        composed = demote_inline(draft, index, ctx, exc.message)
        posted = rt.github.post_review(job.repository, job.pr_number, job.head_sha, composed.body, [])
        _record_posted(rt, job, posted, f"posted review {posted.id} on {name} without inline comments: "
                       f"GitHub refused them ({exc.message})")
        return Count.POSTED_WITHOUT_INLINE
    detail = (f"{len(composed.comments)} inline, {composed.outside} outside the diff, "
              f"{composed.repeated} repeated findings left out")
    _record_posted(rt, job, posted, f"posted review {posted.id} on {name} ({detail})")
    return Count.POSTED


def _record_posted(rt: Runtime, job: ReviewJob, review: PostedReview, reason: str) -> None:
    _finish(rt, job, State.POSTED, reason, github_review_id=review.id, posted_url=review.html_url,
            posted_at=rt.clock())


def _prepare(rt: Runtime, job: ReviewJob, job_marker: str) -> tuple[ReviewDraft, DiffIndex, ReviewContext]:
    with rt.sessions() as session:
        result = latest_result(session, job.id)
        reviewed_before = session.scalar(select(ReviewJob.id).where(
            ReviewJob.repository == job.repository, ReviewJob.pr_number == job.pr_number,
            ReviewJob.state == State.POSTED.value, ReviewJob.id != job.id).limit(1)) is not None
    draft = (parse_review(result.content_json, result.stop_reason, result.text) if result
             else parse_review(None, None, job.review_text))
    repo = effective_settings(rt.settings, job)
    footer = Footer(
        model=(result.model if result else None) or job.model or repo.model,
        cost_micro_usd=result.cost_micro_usd if result else 0,
        standard_cost_micro_usd=result.standard_cost_micro_usd if result else 0,
        head_sha=job.head_sha,
        batch=result.is_batch if result else True,
    )
    known = known_fingerprints(rt.github.own_texts(job.repository, job.pr_number)) if reviewed_before else frozenset()
    ctx = ReviewContext(
        footer=footer, marker=job_marker,
        config_line=f"config: {job.config_source or rt.settings.source} · template {repo.template} · "
                    f"severity ≥ {repo.severity_threshold} · {repo.review_mode} mode",
        max_inline=repo.max_inline_comments, severity_threshold=repo.severity_threshold,
        known_fingerprints=known, omitted=tuple((p, r) for p, r in json.loads(job.omitted or "[]")),
        since_sha=job.review_base_sha,
    )
    return draft, index_diff(job.diff), ctx

"""Stage 4, post: each answered job becomes one review (event COMMENT) on its pull request.

The review is composed from the structured answer (compose.py): findings become inline comments
where GitHub accepts them, the rest goes into the body; if GitHub still refuses the inline comments
(422), the review is posted again with every finding in the body, and the reason is recorded.

Before posting, the pull request is checked again: closed, or a head that moved on, makes the job stale
(the new head is collected as its own job), so a review is never posted on code it did not read. The
check reads the repository's listing of open pull requests, at most `github.freshness_seconds` old (it is
listed again, conditionally, when older: an unchanged listing is a free 304), instead of one GET per pull
request; a pull request missing from it is read on its own, to tell closed or merged from gone.
Posting is idempotent: the body carries a hidden marker naming the job; a job whose earlier attempt may
have reached GitHub (the process died, or the POST failed without an answer) first looks for its
marker among the service's own reviews and records that review instead of posting again. The claim
commits before the POST and the record after it; a job's record commits in one transaction with the
next job's claim (one transaction per job), and the run commits the last record when it ends.

A review that was paid for is never dropped on one refusal. Only a definite "this pull request is gone"
(404 or 410 when it is read again) fails the job at once; closed or moved on makes it stale. Any other
4xx (a 422 on the review, a 403 that is not a rate limit) is a refusal: the job goes back to `answered`
with the reason (`reviewer status`, `reviewer explain`) and is tried again by the next run, until it was
refused `max_attempts` times (the repository's); refusals are counted from the job's events (reason
`REFUSED ...`), so attempts lost to a rate limit, a 5xx or a crash never use one up. A 5xx, or no
answer, is tried again by the next run without counting.

The review is public: its footer names the config file by its name only (`public_source`), never its path
on the server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.db import transaction
from reviewer.errors import AuthFailed, ConcurrentTransition, ConfigError, GitHubError, RateLimited, Unreachable
from reviewer.github import DbPageCache, PostedReview, PullSummary
from reviewer.jobs import effective_settings, latest_result
from reviewer.models import JobEvent, ReviewJob
from reviewer.queue import State, expired_leases, iter_claimable, lease, transition
from reviewer.report import Count, StageReport
from reviewer.review.body import Footer, marker
from reviewer.review.compose import ReviewContext, compose_review, demote_inline, known_fingerprints
from reviewer.review.diffs import DiffIndex, index_diff
from reviewer.review.parse import ReviewDraft, parse_review
from reviewer.runtime import Runtime

CLAIM_CHUNK = 100
REFUSED = "GitHub refused the review"  # the reason of every refusal event; `_refusals` counts them
_CENTRAL_PATH = re.compile(r"^(.*?)(?= \+ | \(|$)")  # config_source starts with the central file's path


class _PullGone(GitHubError):
    """The pull request answered 404 or 410 when read again: it is gone (or the token lost sight of it)."""


def post_answered(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    report = StageReport("post")
    _release_expired(rt, report)
    names = None if repositories is None else list(repositories)
    finishes = _Finishes(rt)
    try:
        for job in iter_claimable(rt.sessions, State.ANSWERED, clock=rt.clock, repositories=names,
                                  chunk=CLAIM_CHUNK):
            if not _post_one(rt, job, report, finishes):
                break  # rate limited: the rest waits for the next run
    finally:
        finishes.commit()
    return report


class _Finishes:
    """The finishing transition of the job last handled, committed together with the next job's claim:
    one transaction per job instead of two. The claim still commits before its POST and the finish
    after the POST it records (nothing but database work lies between that POST and the commit); the
    run commits the last one when it ends, however it ends."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._pending: list[tuple[int, State, str, datetime, dict[str, Any]]] = []

    def add(self, job: ReviewJob, target: State, reason: str, values: dict[str, Any]) -> None:
        self._pending.append((job.id, target, reason, self.rt.clock(), values))

    def apply(self, session: Session) -> None:
        pending, self._pending = self._pending, []
        for job_id, target, reason, now, values in pending:
            transition(session, job_id, State.POSTING, target, now=now, actor=self.rt.actor, reason=reason,
                       **values)

    def commit(self) -> None:
        if self._pending:
            with transaction(self.rt.sessions) as session:
                self.apply(session)


def _release_expired(rt: Runtime, report: StageReport) -> None:
    """Jobs left in `posting` by a worker that died go back to `answered`; their next attempt looks
    for the marker first, because the dead worker's POST may have landed."""
    with transaction(rt.sessions) as session:
        for job in expired_leases(session, State.POSTING, now=rt.clock()):
            transition(session, job.id, State.POSTING, State.ANSWERED, now=rt.clock(), actor=rt.actor,
                       reason="an earlier posting attempt was interrupted; will check before posting again")
            report.add(Count.INTERRUPTED_POSTS)


def _claim(rt: Runtime, job: ReviewJob, finishes: _Finishes) -> bool:
    """Claim `job` (and commit the previous job's finish with it)."""
    with transaction(rt.sessions) as session:
        finishes.apply(session)
        try:
            transition(session, job.id, State.ANSWERED, State.POSTING, now=rt.clock(), actor=rt.actor,
                       lease_until=lease(rt.clock(), rt.settings.intervals.lease_seconds),
                       post_attempts=job.post_attempts + 1, reason="posting")
        except ConcurrentTransition:
            return False  # its UPDATE changed no row: the previous finish still commits
    return True


def _finish(finishes: _Finishes, job: ReviewJob, target: State, reason: str, **values: Any) -> None:
    finishes.add(job, target, reason, values)


def _post_one(rt: Runtime, job: ReviewJob, report: StageReport, finishes: _Finishes) -> bool:
    """Returns False when GitHub asks us to slow down."""
    if not _claim(rt, job, finishes):
        return True
    name = f"{job.repository}#{job.pr_number}"
    try:
        outcome = _check_and_post(rt, job, finishes)
    except (AuthFailed, Unreachable) as exc:
        _finish(finishes, job, State.ANSWERED, f"not posted: {exc.message}")
        raise  # the same for every job: stop the run
    except RateLimited as exc:
        _finish(finishes, job, State.ANSWERED, f"rate limited; will post later ({exc.message})")
        report.error(f"{name}: {exc.message}")
        return False
    except GitHubError as exc:
        report.error(f"{name}: {exc.message}")
        report.add(_not_posted(rt, job, exc, finishes))
        return True
    report.add(outcome)
    return True


def _not_posted(rt: Runtime, job: ReviewJob, exc: GitHubError, finishes: _Finishes) -> Count:
    """GitHub answered with an error: failed (the PR is gone), refused (counted) or deferred (5xx)."""
    if isinstance(exc, _PullGone):
        _finish(finishes, job, State.FAILED, f"the pull request is gone: {exc.message}")
        return Count.FAILED
    if exc.status is None or exc.status >= 500:
        _finish(finishes, job, State.ANSWERED, f"not posted yet: {exc.message}")
        return Count.DEFERRED
    limit, refusals = _max_attempts(rt, job), _refusals(rt, job.id) + 1
    if refusals >= limit:
        _finish(finishes, job, State.FAILED,
                f"{REFUSED} {refusals} times (max_attempts {limit}); last: {exc.message}")
        return Count.FAILED
    _finish(finishes, job, State.ANSWERED, f"{REFUSED} (refusal {refusals} of {limit}; tried again by the next "
            f"run): {exc.message}")
    return Count.REFUSED


def _refusals(rt: Runtime, job_id: int) -> int:
    """How many times GitHub refused this job's review before (each refusal is an event)."""
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(JobEvent).where(
            JobEvent.job_id == job_id, JobEvent.from_state == State.POSTING.value,
            JobEvent.to_state == State.ANSWERED.value, JobEvent.reason.startswith(REFUSED, autoescape=True))) or 0


def _max_attempts(rt: Runtime, job: ReviewJob) -> int:
    """The repository's max_attempts; 1 for a repository no longer configured."""
    try:
        return effective_settings(rt.settings, job).max_attempts
    except ConfigError:
        return 1


def _check_and_post(rt: Runtime, job: ReviewJob, finishes: _Finishes) -> Count:
    name = f"{job.repository}#{job.pr_number}"
    pr = _read_pull(rt, job)
    if pr.state != "open":
        _finish(finishes, job, State.STALE, f"pull request was {'merged' if pr.merged else 'closed'} before posting")
        return Count.STALE
    if pr.head_sha != job.head_sha:
        _finish(finishes, job, State.STALE, f"head moved from {job.head_sha[:7]} to {pr.head_sha[:7]}; "
                "the new head is reviewed as its own job")
        return Count.STALE
    job_marker = marker(job.id, job.head_sha)
    if job.post_attempts >= 1:  # (the snapshot before this claim) an earlier attempt may have landed
        existing = rt.github.find_review_with_marker(job.repository, job.pr_number, job_marker)
        if existing is not None:
            _record_posted(finishes, job, existing, "found the review an earlier attempt had posted")
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
        _record_posted(finishes, job, posted, f"posted review {posted.id} on {name} without inline comments: "
                       f"GitHub refused them ({exc.message})")
        return Count.POSTED_WITHOUT_INLINE
    detail = (f"{len(composed.comments)} inline, {composed.outside} outside the diff, "
              f"{composed.repeated} repeated findings left out")
    _record_posted(finishes, job, posted, f"posted review {posted.id} on {name} ({detail})")
    return Count.POSTED


def _read_pull(rt: Runtime, job: ReviewJob) -> PullSummary:
    """The pull request as it is now (as listed at most `github.freshness_seconds` ago while it is open);
    404 or 410 raise `_PullGone`."""
    listed = _listed_open(rt, job)
    if listed is not None:
        return listed
    try:
        return rt.github.get_pull(job.repository, job.pr_number)  # closed, merged or gone: only it can say
    except GitHubError as exc:
        if exc.status in (404, 410):
            raise _PullGone(exc.message, exc.hint, exc.status) from None
        raise


def _listed_open(rt: Runtime, job: ReviewJob) -> PullSummary | None:
    """The pull request in its repository's listing of open pull requests, None when it is not listed
    (or the listing answers 404 or 410: then the pull request's own answer says whether it is gone)."""
    try:
        pulls = rt.github.open_pulls_within(job.repository, rt.settings.github.freshness_seconds,
                                            cache=DbPageCache(rt.sessions))
    except GitHubError as exc:
        if exc.status in (404, 410):
            return None
        raise
    return pulls.get(job.pr_number)


def _record_posted(finishes: _Finishes, job: ReviewJob, review: PostedReview, reason: str) -> None:
    _finish(finishes, job, State.POSTED, reason, github_review_id=review.id, posted_url=review.html_url,
            posted_at=finishes.rt.clock())


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
        config_line=f"config: {public_source(job.config_source or rt.settings.source)} · template {repo.template} · "
                    f"severity ≥ {repo.severity_threshold} · {repo.review_mode} mode",
        max_inline=repo.max_inline_comments, severity_threshold=repo.severity_threshold,
        known_fingerprints=known, omitted=tuple((p, r) for p, r in json.loads(job.omitted or "[]")),
        unlisted=job.unlisted_files or 0, since_sha=job.review_base_sha,
    )
    return draft, index_diff(job.diff), ctx


def public_source(source: str) -> str:
    """The config as a public review names it: the central file by its name only, never its path on the
    server (`/etc/reviewer/prod.yml + .github/reviewer.yml (default branch)` -> `prod.yml + ...`)."""
    return _CENTRAL_PATH.sub(lambda found: PurePath(found.group(1)).name or found.group(1), source, count=1)

"""Stage 1, collect: list each configured repository's open pull requests and queue one review job per
new head commit, with its diff and metadata.

Invariants: one job per (repository, PR, head commit), so collecting twice queues nothing twice, and a
PR whose head already has a job costs no diff fetch. A queued job whose PR moved on (new head) or
closed is marked stale before any money is spent on it; jobs already submitted are checked again
right before posting.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reviewer.config import RepoSettings
from reviewer.db import transaction
from reviewer.errors import AuthFailed, GitHubError, Unreachable
from reviewer.github import PullSummary
from reviewer.models import ReviewJob, repo_state
from reviewer.queue import State, record_created, transition
from reviewer.runtime import Runtime, StageReport


def collect_pulls(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    report = StageReport("collect")
    wanted = set(repositories) if repositories is not None else None
    for repo in rt.settings.repositories:
        if wanted is None or repo.name in wanted:
            _collect_repository(rt, repo, report)
    return report


def _collect_repository(rt: Runtime, repo: RepoSettings, report: StageReport) -> None:
    try:
        pulls = rt.github.list_open_pulls(repo.name)
    except (AuthFailed, Unreachable):
        raise  # wrong for every repository alike: stop, do not report it once per repository
    except GitHubError as exc:
        report.error(f"{repo.name}: {exc.message}")
        return
    report.add("pull requests seen", len(pulls))
    with transaction(rt.sessions) as session:
        known = _known_heads(session, repo.name, [p.number for p in pulls])
        _retire_closed(rt, session, repo.name, {p.number for p in pulls}, report)
        repo_state(session, repo.name).last_collected_at = rt.clock()
    for pr in pulls:
        if (pr.number, pr.head_sha) in known:
            report.add("unchanged")
        elif pr.draft and repo.skip_drafts:
            report.add("drafts skipped")
            report.note(f"{repo.name}#{pr.number} is a draft; it is reviewed once marked ready")
        else:
            _queue_pull(rt, repo, pr, report)


def _known_heads(session: Session, repository: str, numbers: list[int]) -> set[tuple[int, str]]:
    if not numbers:
        return set()
    rows = session.execute(
        select(ReviewJob.pr_number, ReviewJob.head_sha).where(
            ReviewJob.repository == repository, ReviewJob.pr_number.in_(numbers))
    )
    return {(number, sha) for number, sha in rows}


def _retire_closed(rt: Runtime, session: Session, repository: str, open_numbers: set[int],
                   report: StageReport) -> None:
    """Queued jobs of PRs that are no longer open will never be posted: stop them before they cost."""
    queued = session.scalars(select(ReviewJob).where(
        ReviewJob.repository == repository, ReviewJob.state == State.QUEUED.value))
    for job in queued:
        if job.pr_number not in open_numbers:
            transition(session, job.id, State.QUEUED, State.STALE, now=rt.clock(), actor=rt.actor,
                       reason="pull request was closed before review")
            report.add("stale (closed)")


def _queue_pull(rt: Runtime, repo: RepoSettings, pr: PullSummary, report: StageReport) -> None:
    try:
        diff, source = rt.github.fetch_diff(repo.name, pr.number)
    except (AuthFailed, Unreachable):
        raise
    except GitHubError as exc:
        report.error(f"{repo.name}#{pr.number}: {exc.message}")
        return
    now = rt.clock()
    job = ReviewJob(
        repository=repo.name, pr_number=pr.number, head_sha=pr.head_sha, base_sha=pr.base_sha,
        base_ref=pr.base_ref, head_ref=pr.head_ref, title=pr.title, author=pr.author, body=pr.body,
        url=pr.url, labels=",".join(pr.labels), diff=diff, diff_source=source,
        state=State.QUEUED.value, created_at=now, updated_at=now,
    )
    if not diff.strip():
        job.state, job.reason = State.SKIPPED.value, "the pull request has no changes to review"
    try:
        with transaction(rt.sessions) as session:
            session.add(job)
            session.flush()
            record_created(session, job, rt.actor, now)
            _supersede(rt, session, job, report)
    except IntegrityError:
        report.add("unchanged")  # another instance queued the same head a moment earlier
        return
    report.add("queued" if job.state == State.QUEUED.value else "skipped")
    if source == "files":
        report.note(f"{repo.name}#{pr.number}: diff too large for GitHub's diff endpoint; built from the file list")


def _supersede(rt: Runtime, session: Session, new: ReviewJob, report: StageReport) -> None:
    older = session.scalars(select(ReviewJob).where(
        ReviewJob.repository == new.repository, ReviewJob.pr_number == new.pr_number,
        ReviewJob.state == State.QUEUED.value, ReviewJob.id != new.id))
    for job in older:
        transition(session, job.id, State.QUEUED, State.STALE, now=rt.clock(), actor=rt.actor,
                   reason=f"superseded by a newer head {new.head_sha[:7]} before review")
        report.add("stale (superseded)")

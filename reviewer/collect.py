"""Stage 1, collect: list each configured repository's open pull requests and queue one review job per
new head commit, with its diff and metadata.

Invariants: one job per (repository, PR, head commit), so collecting twice queues nothing twice, and a
PR whose head already has a job costs no diff fetch. The repository's own rules (`.github/reviewer.yml`)
are read from its default branch, once per repository per pass. Pull requests that the skip rules
exclude (drafts, bots, labels, titles, authors) get no job; the reason is recorded in `pull_skips` and
shown by `status`. A queued job whose PR moved on or closed is marked stale before any money is spent.
In incremental mode, a new head of an already reviewed PR is reviewed on the diff since that review.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reviewer.config import RepoSettings, ReviewRules
from reviewer.db import transaction
from reviewer.errors import AuthFailed, ConcurrentTransition, ConfigError, GitHubError, Unreachable
from reviewer.github import DbPageCache, PullSummary
from reviewer.models import PullSkip, Result, ReviewJob, repo_state
from reviewer.review.parse import parse_review
from reviewer.queue import State, record_created, transition
from reviewer.rules import REPO_CONFIG_PATH, apply_rules, parse_repo_rules, rules_to_json, skip_reason
from reviewer.runtime import Runtime, StageReport


@dataclass(frozen=True)
class _RepoView:
    """A repository's effective settings for this pass, and where they came from."""

    settings: RepoSettings
    rules: ReviewRules | None
    source: str


def collect_pulls(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    report = StageReport("collect")
    wanted = set(repositories) if repositories is not None else None
    for repo in rt.settings.repositories:
        if wanted is None or repo.name in wanted:
            _collect_repository(rt, repo, report)
    return report


def _collect_repository(rt: Runtime, repo: RepoSettings, report: StageReport) -> None:
    try:
        pulls = rt.github.list_open_pulls(repo.name, cache=DbPageCache(rt.sessions))  # 304s cost no quota
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
    new = []
    for pr in pulls:
        if (pr.number, pr.head_sha) not in known:
            new.append(pr)
            continue
        report.add("unchanged")
        if repo.express_label and repo.express_label in pr.labels:
            _expedite(rt, repo.name, pr)
    if new:
        _collect_new(rt, repo, new, report)


def _collect_new(rt: Runtime, repo: RepoSettings, pulls: list[PullSummary], report: StageReport) -> None:
    """New heads: read the repository's rules (only now, so an unchanged repository costs no request),
    then skip or queue each pull request."""
    try:
        view = _repo_view(rt, repo, report)
    except (AuthFailed, Unreachable):
        raise
    except GitHubError as exc:
        report.error(f"{repo.name}: {exc.message}")
        return
    for pr in pulls:
        reason = skip_reason(pr, view.settings.skip)
        if reason is not None:
            _record_skip(rt, repo.name, pr, reason, report)
        else:
            _queue_pull(rt, view, pr, report)


def _repo_view(rt: Runtime, repo: RepoSettings, report: StageReport) -> _RepoView:
    if not repo.read_repo_config:
        return _RepoView(repo, None, rt.settings.source)
    text = rt.github.read_default_branch_file(repo.name, REPO_CONFIG_PATH)
    if text is None:
        return _RepoView(repo, None, rt.settings.source)
    source = f"{repo.name}:{REPO_CONFIG_PATH}"
    try:
        rules = parse_repo_rules(text, source)
        return _RepoView(apply_rules(repo, rules, rt.settings, source), rules,
                         f"{rt.settings.source} + {REPO_CONFIG_PATH} (default branch)")
    except ConfigError as exc:
        report.error(f"{exc.message}; reviewing {repo.name} with the central config until it is fixed")
        return _RepoView(repo, None, f"{rt.settings.source} ({REPO_CONFIG_PATH} invalid, ignored)")


def _expedite(rt: Runtime, repository: str, pr: PullSummary) -> None:
    """The express label was added after the head was queued: send it at once after all."""
    with transaction(rt.sessions) as session:
        session.execute(update(ReviewJob).where(
            ReviewJob.repository == repository, ReviewJob.pr_number == pr.number, ReviewJob.head_sha == pr.head_sha,
            ReviewJob.state == State.QUEUED.value, ReviewJob.express.is_(False)).values(express=True))


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
            _retire(rt, session, job, "pull request was closed before review", report, "stale (closed)")
    session.execute(delete(PullSkip).where(PullSkip.repository == repository,
                                           PullSkip.pr_number.not_in(open_numbers or {0})))


def _record_skip(rt: Runtime, repository: str, pr: PullSummary, reason: str, report: StageReport) -> None:
    with transaction(rt.sessions) as session:
        skip = session.get(PullSkip, (repository, pr.number))
        if skip is None:
            session.add(PullSkip(repository=repository, pr_number=pr.number, head_sha=pr.head_sha,
                                 reason=reason, at=rt.clock()))
        elif (skip.head_sha, skip.reason) != (pr.head_sha, reason):
            skip.head_sha, skip.reason, skip.at = pr.head_sha, reason, rt.clock()
        else:
            report.add("skipped")
            return
    report.add("skipped")
    report.note(f"{repository}#{pr.number} not reviewed: {reason}")


def _queue_pull(rt: Runtime, view: _RepoView, pr: PullSummary, report: StageReport) -> None:
    name = view.settings.name
    try:
        diff, source = rt.github.fetch_diff(name, pr.number)
        previous = _last_posted(rt, name, pr.number) if view.settings.review_mode == "incremental" else None
        since = rt.github.compare_diff(name, previous.head_sha, pr.head_sha) if previous else None
    except (AuthFailed, Unreachable):
        raise
    except GitHubError as exc:
        report.error(f"{name}#{pr.number}: {exc.message}")
        return
    now = rt.clock()
    job = ReviewJob(
        repository=name, pr_number=pr.number, head_sha=pr.head_sha, base_sha=pr.base_sha,
        base_ref=pr.base_ref, head_ref=pr.head_ref, title=pr.title, author=pr.author, body=pr.body,
        url=pr.url, labels=",".join(pr.labels), diff=diff, diff_source=source,
        repo_rules=rules_to_json(view.rules), config_source=view.source,
        express=bool(view.settings.express_label) and view.settings.express_label in pr.labels,
        state=State.QUEUED.value, created_at=now, updated_at=now,
    )
    if previous is not None and since and since.strip():
        job.review_diff, job.review_base_sha = since, previous.head_sha
        job.previous_summary = _summary_of(rt, previous.id)
    if not diff.strip():
        job.state, job.reason = State.SKIPPED.value, "the pull request has no changes to review"
    try:
        with transaction(rt.sessions) as session:
            session.add(job)
            session.flush()
            record_created(session, job, rt.actor, now)
            _supersede(rt, session, job, report)
            session.execute(delete(PullSkip).where(PullSkip.repository == name, PullSkip.pr_number == pr.number))
    except IntegrityError:
        report.add("unchanged")  # another instance queued the same head a moment earlier
        return
    report.add("queued" if job.state == State.QUEUED.value else "skipped")
    if source == "files":
        report.note(f"{name}#{pr.number}: diff too large for GitHub's diff endpoint; built from the file list")
    if job.review_base_sha:
        report.note(f"{name}#{pr.number}: incremental review of the changes since {job.review_base_sha[:7]}")


def _last_posted(rt: Runtime, repository: str, number: int) -> ReviewJob | None:
    with rt.sessions() as session:
        return session.scalars(select(ReviewJob).where(
            ReviewJob.repository == repository, ReviewJob.pr_number == number,
            ReviewJob.state == State.POSTED.value).order_by(ReviewJob.id.desc()).limit(1)).first()


def _summary_of(rt: Runtime, job_id: int) -> str | None:
    with rt.sessions() as session:
        result = session.scalars(select(Result).where(Result.job_id == job_id, Result.result_type == "succeeded")
                                 .order_by(Result.id.desc()).limit(1)).first()
    if result is None:
        return None
    return parse_review(result.content_json, result.stop_reason, result.text).summary or None


def _supersede(rt: Runtime, session: Session, new: ReviewJob, report: StageReport) -> None:
    older = session.scalars(select(ReviewJob).where(
        ReviewJob.repository == new.repository, ReviewJob.pr_number == new.pr_number,
        ReviewJob.state == State.QUEUED.value, ReviewJob.id != new.id))
    for job in older:
        _retire(rt, session, job, f"superseded by a newer head {new.head_sha[:7]} before review", report,
                "stale (superseded)")


def _retire(rt: Runtime, session: Session, job: ReviewJob, reason: str, report: StageReport, count: str) -> None:
    try:
        with session.begin_nested():
            transition(session, job.id, State.QUEUED, State.STALE, now=rt.clock(), actor=rt.actor, reason=reason)
    except ConcurrentTransition:
        return  # another instance claimed or retired it first
    report.add(count)


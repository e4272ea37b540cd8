"""Stage 1, collect: list each configured repository's open pull requests and queue one review job per
new head commit, with its diff and metadata.

Invariants: one job per (repository, PR, head commit), so collecting twice queues nothing twice, and a
PR whose head already has a job costs no diff fetch. The repository's own rules (`.github/reviewer.yml`)
are read from its default branch, once per repository per pass, as untrusted input (bounded, see
rules.py): a file that is refused leaves the central config in force for every key, is reported in one
short line, and is kept in `repo_states.rules_problem` for `status` until it is fixed. A job of a pull
request whose files GitHub did not all list (over 3,000) records how many were left out. Pull requests
that the skip rules exclude (drafts, bots, labels, titles, authors) get no job; the reason is recorded
in `pull_skips` and shown by `status`. A queued job whose PR moved on or closed is marked stale before any
money is spent. In incremental mode, a new head of an already reviewed PR is reviewed on the diff since
that review. New jobs are committed `QUEUE_CHUNK` at a time, each in a savepoint of its own (a head
another instance queued first is skipped alone); a pass that stops early still queues what it fetched.

A job's repository is the configured spelling of the name, never GitHub's `full_name` (which may differ in
case). An entry whose name changed case only keeps its queue: its rows are renamed to the new spelling at
its next collection (`repo_states`, one row per repository, shows the old spelling), so nothing is
reviewed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from reviewer.config import RepoSettings, ReviewRules
from reviewer.db import transaction
from reviewer.errors import AuthFailed, ConcurrentTransition, ConfigError, GitHubError, Unreachable
from reviewer.github import DbPageCache, PullSummary
from reviewer.jobs import latest_result
from reviewer.models import PullSkip, RepoState, ReviewJob, repo_state
from reviewer.queue import State, create_job, transition
from reviewer.report import Count, StageReport
from reviewer.review.parse import parse_review
from reviewer.rules import (
    MAX_RULES_BYTES,
    REPO_CONFIG_PATH,
    apply_rules,
    check_size,
    one_line,
    parse_repo_rules,
    rules_to_json,
    skip_reason,
)
from reviewer.runtime import Runtime

T = TypeVar("T")
QUEUE_CHUNK = 50  # new jobs committed per transaction (a pass that stops early loses no fetched diff)
LOOKUP_CHUNK = 500  # pull request numbers per IN (...) of a lookup


@dataclass(frozen=True)
class _RepoView:
    """A repository's effective settings for this pass, and where they came from."""

    settings: RepoSettings
    rules: ReviewRules | None
    source: str


def collect_pulls(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    report = StageReport("collect")
    for name in rt.repository_names(repositories):  # an unknown name is an error, any case matches
        _collect_repository(rt, rt.settings.repo(name), report)
    return report


def _guarded(report: StageReport, name: str, call: Callable[[], T]) -> T | None:
    """`call()`, or None with its GitHub error reported against `name`. Auth and connection failures
    are wrong for every repository alike: they stop the run instead of being reported once per item."""
    try:
        return call()
    except (AuthFailed, Unreachable):
        raise
    except GitHubError as exc:
        report.error(f"{name}: {exc.message}")
        return None


def _collect_repository(rt: Runtime, repo: RepoSettings, report: StageReport) -> None:
    cache = DbPageCache(rt.sessions)  # 304s cost no quota
    pulls = _guarded(report, repo.name, lambda: rt.github.list_open_pulls(repo.name, cache=cache))
    if pulls is None:
        return
    report.add(Count.PULLS_SEEN, len(pulls))
    with transaction(rt.sessions) as session:
        _adopt_spelling(session, repo.name)
        known = _known_heads(session, repo.name, [p.number for p in pulls])
        _retire_closed(rt, session, repo.name, {p.number for p in pulls}, report)
        repo_state(session, repo.name).last_collected_at = rt.clock()
    new = []
    for pr in pulls:
        if (pr.number, pr.head_sha) not in known:
            new.append(pr)
            continue
        report.add(Count.UNCHANGED)
        if repo.express_label and repo.express_label in pr.labels:
            _expedite(rt, repo.name, pr)
    if new:
        _collect_new(rt, repo, new, report)


def _collect_new(rt: Runtime, repo: RepoSettings, pulls: list[PullSummary], report: StageReport) -> None:
    """New heads: read the repository's rules (only now, so an unchanged repository costs no request),
    then skip or queue each pull request."""
    view = _guarded(report, repo.name, lambda: _repo_view(rt, repo, report))
    if view is None:
        return
    previous = _last_posted(rt, repo.name, [p.number for p in pulls]) \
        if view.settings.review_mode == "incremental" else {}
    fetched: list[tuple[PullSummary, _Fetched]] = []
    try:
        for pr in pulls:
            reason = skip_reason(pr, view.settings.skip)
            if reason is not None:
                _record_skip(rt, repo.name, pr, reason, report)
            elif (pulled := _fetch_guarded(rt, view, pr, previous.get(pr.number), report)) is not None:
                fetched.append((pr, pulled))
            if len(fetched) >= QUEUE_CHUNK:
                chunk, fetched = fetched, []
                _queue_pulls(rt, view, chunk, report)
    finally:
        _queue_pulls(rt, view, fetched, report)  # what was fetched is queued however the pass ends


def _repo_view(rt: Runtime, repo: RepoSettings, report: StageReport) -> _RepoView:
    view, problem = _rules_view(rt, repo)
    if problem is not None:
        report.error(problem)
    _remember_rules_problem(rt, repo.name, problem)
    return view


def _rules_view(rt: Runtime, repo: RepoSettings) -> tuple[_RepoView, str | None]:
    """The repository's settings with its own rules, or the central ones and the problem, in one line."""
    central = _RepoView(repo, None, rt.settings.source)
    if not repo.read_repo_config:
        return central, None
    file = rt.github.read_default_branch_file(repo.name, REPO_CONFIG_PATH, MAX_RULES_BYTES,
                                              cache=DbPageCache(rt.sessions))  # unchanged: a free 304
    if file is None:
        return central, None
    source = f"{repo.name}:{REPO_CONFIG_PATH}"
    try:
        check_size(file.size, source)
        rules = parse_repo_rules(file.text or "", source)
        return _RepoView(apply_rules(repo, rules, rt.settings, source), rules,
                         f"{rt.settings.source} + {REPO_CONFIG_PATH} (default branch)"), None
    except ConfigError as exc:
        problem = one_line(f"{exc.message}; reviewing {repo.name} with the central config until it is fixed")
        return _RepoView(repo, None, f"{rt.settings.source} ({REPO_CONFIG_PATH} invalid, ignored)"), problem


def _remember_rules_problem(rt: Runtime, repository: str, problem: str | None) -> None:
    with transaction(rt.sessions) as session:
        state = repo_state(session, repository)
        if state.rules_problem != problem:
            state.rules_problem, state.rules_problem_at = problem, rt.clock() if problem else None


def _expedite(rt: Runtime, repository: str, pr: PullSummary) -> None:
    """The express label was added after the head was queued: send it at once after all."""
    with transaction(rt.sessions) as session:
        session.execute(update(ReviewJob).where(
            ReviewJob.repository == repository, ReviewJob.pr_number == pr.number, ReviewJob.head_sha == pr.head_sha,
            ReviewJob.state == State.QUEUED.value, ReviewJob.express.is_(False)).values(express=True))


def _adopt_spelling(session: Session, name: str) -> None:
    """Rename the rows stored under another case of `name` (the entry was respelled) to `name`."""
    old = session.scalars(select(RepoState.repository).where(
        func.lower(RepoState.repository) == name.lower(), RepoState.repository != name)).all()
    for spelling in old:
        session.execute(update(ReviewJob).where(ReviewJob.repository == spelling).values(repository=name))
        session.execute(update(PullSkip).where(PullSkip.repository == spelling).values(repository=name))
        if session.get(RepoState, name) is None:
            session.execute(update(RepoState).where(RepoState.repository == spelling).values(repository=name))
        else:
            session.execute(delete(RepoState).where(RepoState.repository == spelling))


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
            _retire(rt, session, job, "pull request was closed before review", report, Count.STALE_CLOSED)
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
            report.add(Count.SKIPPED)
            return
    report.add(Count.SKIPPED)
    report.note(f"{repository}#{pr.number} not reviewed: {reason}")


@dataclass(frozen=True)
class _Fetched:
    diff: str
    source: str  # "diff", or "files" when GitHub refused the diff media type (too many files)
    previous: ReviewJob | None  # the last posted review of this PR (incremental mode)
    since: str | None  # the diff since that review's head
    unlisted: int = 0  # changed files GitHub's listing left out (over 3,000)


def _fetch_guarded(rt: Runtime, view: _RepoView, pr: PullSummary, previous: ReviewJob | None,
                   report: StageReport) -> _Fetched | None:
    return _guarded(report, f"{view.settings.name}#{pr.number}", lambda: _fetch(rt, view, pr, previous))


def _fetch(rt: Runtime, view: _RepoView, pr: PullSummary, previous: ReviewJob | None) -> _Fetched:
    name = view.settings.name
    pulled = rt.github.fetch_diff(name, pr.number)
    since = rt.github.compare_diff(name, previous.head_sha, pr.head_sha) if previous else None
    return _Fetched(pulled.text, pulled.source, previous, since, pulled.unlisted)


def _queue_pulls(rt: Runtime, view: _RepoView, fetched: list[tuple[PullSummary, _Fetched]],
                 report: StageReport) -> None:
    """Queue the fetched pull requests in one transaction, each job in a savepoint of its own."""
    jobs = [(pr, got, _new_job(rt, view, pr, got)) for pr, got in fetched]
    if not jobs:
        return
    queued = []
    with transaction(rt.sessions) as session:
        for pr, got, job in jobs:
            if _queue_pull(rt, session, pr, got, job, report):
                queued.append((pr, got, job))
    for pr, got, job in queued:
        _report_queued(report, view.settings.name, pr, got, job)


def _queue_pull(rt: Runtime, session: Session, pr: PullSummary, fetched: _Fetched, job: ReviewJob,
                report: StageReport) -> bool:
    initial, reason = (State.QUEUED, None) if fetched.diff.strip() else (
        State.SKIPPED, "the pull request has no changes to review")
    try:
        with session.begin_nested():
            create_job(session, job, initial, now=job.created_at, actor=rt.actor, reason=reason)
            _supersede(rt, session, job, report)
            session.execute(delete(PullSkip).where(PullSkip.repository == job.repository,
                                                   PullSkip.pr_number == pr.number))
    except IntegrityError:
        report.add(Count.UNCHANGED)  # another instance queued the same head a moment earlier
        return False
    except OperationalError as exc:
        if "no such savepoint" in str(exc) and isinstance(exc.__context__, DBAPIError):
            raise exc.__context__ from None  # SQLite ended the transaction itself (disk full): say why, not that
        raise
    return True


def _report_queued(report: StageReport, name: str, pr: PullSummary, fetched: _Fetched, job: ReviewJob) -> None:
    report.add(Count.QUEUED if job.state == State.QUEUED.value else Count.SKIPPED)
    if fetched.source == "files":
        report.note(f"{name}#{pr.number}: diff too large for GitHub's diff endpoint; built from the file list"
                    + (f" ({fetched.unlisted:,} files not listed by GitHub, not reviewed)" if fetched.unlisted else ""))
    if job.review_base_sha:
        report.note(f"{name}#{pr.number}: incremental review of the changes since {job.review_base_sha[:7]}")


def _new_job(rt: Runtime, view: _RepoView, pr: PullSummary, fetched: _Fetched) -> ReviewJob:
    """The row of a new job (not yet added), with what the prompt and the post will need."""
    now, express_label = rt.clock(), view.settings.express_label
    job = ReviewJob(
        repository=view.settings.name, pr_number=pr.number, head_sha=pr.head_sha, base_sha=pr.base_sha,
        base_ref=pr.base_ref, head_ref=pr.head_ref, title=pr.title, author=pr.author, body=pr.body,
        url=pr.url, labels=",".join(pr.labels), diff=fetched.diff, diff_source=fetched.source,
        unlisted_files=fetched.unlisted,
        repo_rules=rules_to_json(view.rules), config_source=view.source,
        express=bool(express_label) and express_label in pr.labels, created_at=now, updated_at=now,
    )
    previous = fetched.previous
    if previous is not None and fetched.since and fetched.since.strip():
        job.review_diff, job.review_base_sha = fetched.since, previous.head_sha
        job.previous_summary = _summary_of(rt, previous.id)
    return job


def _last_posted(rt: Runtime, repository: str, numbers: list[int]) -> dict[int, ReviewJob]:
    """The last posted job of each of these pull requests that has one (one query per repository)."""
    last: dict[int, ReviewJob] = {}
    with rt.sessions() as session:
        for at in range(0, len(numbers), LOOKUP_CHUNK):
            ids = select(func.max(ReviewJob.id)).where(
                ReviewJob.repository == repository, ReviewJob.pr_number.in_(numbers[at:at + LOOKUP_CHUNK]),
                ReviewJob.state == State.POSTED.value).group_by(ReviewJob.pr_number)
            last.update((job.pr_number, job) for job in session.scalars(select(ReviewJob).where(ReviewJob.id.in_(ids))))
    return last


def _summary_of(rt: Runtime, job_id: int) -> str | None:
    with rt.sessions() as session:
        result = latest_result(session, job_id)
    if result is None:
        return None
    return parse_review(result.content_json, result.stop_reason, result.text).summary or None


def _supersede(rt: Runtime, session: Session, new: ReviewJob, report: StageReport) -> None:
    older = session.scalars(select(ReviewJob).where(
        ReviewJob.repository == new.repository, ReviewJob.pr_number == new.pr_number,
        ReviewJob.state == State.QUEUED.value, ReviewJob.id != new.id))
    for job in older:
        _retire(rt, session, job, f"superseded by a newer head {new.head_sha[:7]} before review", report,
                Count.STALE_SUPERSEDED)


def _retire(rt: Runtime, session: Session, job: ReviewJob, reason: str, report: StageReport, count: Count) -> None:
    try:
        with session.begin_nested():
            transition(session, job.id, State.QUEUED, State.STALE, now=rt.clock(), actor=rt.actor, reason=reason)
    except ConcurrentTransition:
        return  # another instance claimed or retired it first
    report.add(count)


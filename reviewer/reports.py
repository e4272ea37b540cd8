"""Read-only views of the database for `status` and `explain`: plain rows and pure formatting, no side
effects. The cost ledger (`reviewer costs`) lives in `reviewer.ledger`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.models import Batch, JobEvent, PullSkip, RepoState, ReviewJob
from reviewer.queue import BATCHES_IN_FLIGHT, OPEN_STATES, State


def state_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(select(ReviewJob.repository, ReviewJob.state, func.count())
                           .group_by(ReviewJob.repository, ReviewJob.state))
    counts: dict[str, dict[str, int]] = {}
    for repository, state, n in rows:
        counts.setdefault(repository, {})[state] = n
    return counts


def batches_in_flight(session: Session) -> Sequence[Batch]:
    """Batches being created or running (they hold room in the organisation's batch queue)."""
    return session.scalars(select(Batch).where(Batch.state.in_(list(BATCHES_IN_FLIGHT))).order_by(Batch.id)).all()


def recent_outcomes(session: Session, since: datetime, limit: int = 20) -> Sequence[ReviewJob]:
    """Jobs that ended skipped, stale or failed recently, with their reasons."""
    ended = [State.SKIPPED.value, State.STALE.value, State.FAILED.value]
    return session.scalars(select(ReviewJob).where(ReviewJob.state.in_(ended), ReviewJob.updated_at >= since)
                           .order_by(ReviewJob.updated_at.desc()).limit(limit)).all()


def waiting(session: Session, limit: int = 20) -> Sequence[ReviewJob]:
    """Queued jobs that carry a reason: held back by a budget, or queued again after a failed request."""
    return session.scalars(select(ReviewJob).where(ReviewJob.state == State.QUEUED.value, ReviewJob.reason.is_not(None))
                           .order_by(ReviewJob.id).limit(limit)).all()


def posts_to_retry(session: Session, limit: int = 20) -> Sequence[ReviewJob]:
    """Answered jobs that an attempt to post gave back (refused by GitHub, a server error, a rate limit):
    the next run tries again; their reason says why the last attempt did not post."""
    return session.scalars(select(ReviewJob).where(ReviewJob.state == State.ANSWERED.value,
                                                   ReviewJob.post_attempts > 0)
                           .order_by(ReviewJob.updated_at.desc()).limit(limit)).all()


def _retry_lines(session: Session) -> list[str]:
    retries = posts_to_retry(session)
    if not retries:
        return []
    return ["Answered, not posted yet (the next run tries again):"] + [
        f"  {j.repository}#{j.pr_number}@{j.head_sha[:7]} after {j.post_attempts} attempts: {j.reason}"
        for j in retries]


def format_status(session: Session, now: datetime, next_runs: dict[str, str], database: str | None = None) -> str:
    order = [s.value for s in State]
    lines = [f"Database: {database}"] if database else []
    lines.append("Jobs by repository and state:")
    counts = state_counts(session)
    names = sorted(set(counts) | set(next_runs))
    for name in names:
        per_state = counts.get(name, {})
        summary = ", ".join(f"{s} {per_state[s]}" for s in order if s in per_state) or "no jobs yet"
        nxt = f" (next submission {next_runs[name]})" if name in next_runs else ""
        lines.append(f"  {name}: {summary}{nxt}")
    batches = batches_in_flight(session)
    lines.append(f"Batches in flight: {len(batches)}")
    for b in batches:
        age = now - b.created_at
        lines.append(f"  {b.anthropic_id or f'local {b.id} (creating)'}: {b.request_count} requests, "
                     f"{b.processing_status or b.state}, {int(age.total_seconds() // 60)} min old")
    held = waiting(session)
    if held:
        lines.append("Queued, waiting:")
        lines += [f"  {j.repository}#{j.pr_number}@{j.head_sha[:7]}: {j.reason}" for j in held]
    lines += rules_problems(session)
    skips = session.scalars(select(PullSkip).order_by(PullSkip.repository, PullSkip.pr_number)).all()
    if skips:
        lines.append("Open pull requests not reviewed:")
        lines += [f"  {s.repository}#{s.pr_number}@{s.head_sha[:7]}: {s.reason}" for s in skips]
    outcomes = recent_outcomes(session, now - timedelta(days=7))
    if outcomes:
        lines.append("Skipped, stale and failed in the last 7 days:")
        lines += [f"  {j.repository}#{j.pr_number}@{j.head_sha[:7]} {j.state}: {j.reason}" for j in outcomes]
    lines += _retry_lines(session)
    open_jobs = sum(n for per in counts.values() for s, n in per.items() if State(s) in OPEN_STATES)
    lines.append(f"Open jobs: {open_jobs}")
    return "\n".join(lines)


def rules_problems(session: Session) -> list[str]:
    """The status lines of the repositories whose own rules (.github/reviewer.yml) are refused."""
    states = session.scalars(select(RepoState).where(RepoState.rules_problem.is_not(None))
                             .order_by(RepoState.repository)).all()
    if not states:
        return []
    return ["Repository rules not applied (the central config is used):",
            *(f"  {s.repository}: {s.rules_problem}"
              + (f" (since {s.rules_problem_at:%Y-%m-%d %H:%M} UTC)" if s.rules_problem_at else "") for s in states)]


def format_explain(session: Session, job_id: int) -> str | None:
    job = session.get(ReviewJob, job_id)
    if job is None:
        return None
    lines = [f"job {job.id}: {job.repository}#{job.pr_number} head {job.head_sha} — {job.state}"
             + (f" ({job.reason})" if job.reason else "")]
    events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
    for e in events:
        lines.append(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.from_state or '-':>10} -> {e.to_state:<10} {e.reason or ''}")
    if job.posted_url:
        lines.append(f"  posted: {job.posted_url}")
    return "\n".join(lines)

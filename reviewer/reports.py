"""Read-only views of the database for `status`, `costs` and `explain`: plain rows and pure formatting,
no side effects.

Costs count succeeded results only: errored, expired and canceled requests are not billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.cost import format_usd
from reviewer.models import Batch, JobEvent, Result, ReviewJob
from reviewer.queue import OPEN_STATES, State


@dataclass(frozen=True)
class CostRow:
    key: str
    reviews: int
    input_tokens: int
    output_tokens: int
    cost: int
    standard: int

    @property
    def saved(self) -> int:
        return self.standard - self.cost


def _billed(session: Session) -> list[tuple[Result, ReviewJob]]:
    rows = session.execute(select(Result, ReviewJob).join(ReviewJob, Result.job_id == ReviewJob.id)
                           .where(Result.result_type == "succeeded").order_by(Result.id))
    return [(r, j) for r, j in rows]


def week_of(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def cost_rows(session: Session, by: str) -> list[CostRow]:
    """Aggregate billed results by "review", "repository" or "week" (ISO week of the result)."""
    groups: dict[str, list[Result]] = {}
    billed = _billed(session)
    if by == "review":
        billed.sort(key=lambda pair: pair[1].id)
    for result, job in billed:
        if by == "review":
            key = f"{job.repository}#{job.pr_number}@{job.head_sha[:7]} (job {job.id})"
        elif by == "repository":
            key = job.repository
        else:
            key = week_of(result.created_at)
        groups.setdefault(key, []).append(result)
    keys = list(groups) if by == "review" else sorted(groups)
    return [
        CostRow(key, len(rs), sum(r.input_tokens + r.cache_creation_input_tokens + r.cache_read_input_tokens
                                  for r in rs),
                sum(r.output_tokens for r in rs), sum(r.cost_micro_usd for r in rs),
                sum(r.standard_cost_micro_usd for r in rs))
        for key, rs in ((k, groups[k]) for k in keys)
    ]


def format_cost_table(title: str, rows: Sequence[CostRow]) -> str:
    header = f"{title:<48} {'reviews':>7} {'input tok':>11} {'output tok':>10} {'batch':>11} {'standard':>11} {'saved':>11}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.key[:48]:<48} {r.reviews:>7} {r.input_tokens:>11,} {r.output_tokens:>10,} "
                     f"{format_usd(r.cost, 4):>11} {format_usd(r.standard, 4):>11} {format_usd(r.saved, 4):>11}")
    total = CostRow("total", sum(r.reviews for r in rows), sum(r.input_tokens for r in rows),
                    sum(r.output_tokens for r in rows), sum(r.cost for r in rows), sum(r.standard for r in rows))
    lines.append("-" * len(header))
    places = 2 if total.standard >= 10_000_000 else 4  # cents once it is worth more than $10
    lines.append(f"{'total':<48} {total.reviews:>7} {total.input_tokens:>11,} {total.output_tokens:>10,} "
                 f"{format_usd(total.cost, places):>11} {format_usd(total.standard, places):>11} "
                 f"{format_usd(total.saved, places):>11}")
    return "\n".join(lines)


def state_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(select(ReviewJob.repository, ReviewJob.state, func.count())
                           .group_by(ReviewJob.repository, ReviewJob.state))
    counts: dict[str, dict[str, int]] = {}
    for repository, state, n in rows:
        counts.setdefault(repository, {})[state] = n
    return counts


def open_batches(session: Session) -> Sequence[Batch]:
    return session.scalars(select(Batch).where(Batch.state.in_(["creating", "submitted"])).order_by(Batch.id)).all()


def recent_outcomes(session: Session, since: datetime, limit: int = 20) -> Sequence[ReviewJob]:
    """Jobs that ended skipped, stale or failed recently, with their reasons."""
    ended = [State.SKIPPED.value, State.STALE.value, State.FAILED.value]
    return session.scalars(select(ReviewJob).where(ReviewJob.state.in_(ended), ReviewJob.updated_at >= since)
                           .order_by(ReviewJob.updated_at.desc()).limit(limit)).all()


def format_status(session: Session, now: datetime, next_runs: dict[str, str]) -> str:
    order = [s.value for s in State]
    lines = ["Jobs by repository and state:"]
    counts = state_counts(session)
    names = sorted(set(counts) | set(next_runs))
    for name in names:
        per_state = counts.get(name, {})
        summary = ", ".join(f"{s} {per_state[s]}" for s in order if s in per_state) or "no jobs yet"
        nxt = f" (next submission {next_runs[name]})" if name in next_runs else ""
        lines.append(f"  {name}: {summary}{nxt}")
    batches = open_batches(session)
    lines.append(f"Batches in flight: {len(batches)}")
    for b in batches:
        age = now - b.created_at
        lines.append(f"  {b.anthropic_id or f'local {b.id} (creating)'}: {b.request_count} requests, "
                     f"{b.processing_status or b.state}, {int(age.total_seconds() // 60)} min old")
    outcomes = recent_outcomes(session, now - timedelta(days=7))
    if outcomes:
        lines.append("Skipped, stale and failed in the last 7 days:")
        lines += [f"  {j.repository}#{j.pr_number}@{j.head_sha[:7]} {j.state}: {j.reason}" for j in outcomes]
    open_jobs = sum(n for per in counts.values() for s, n in per.items() if State(s) in OPEN_STATES)
    lines.append(f"Open jobs: {open_jobs}")
    return "\n".join(lines)


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

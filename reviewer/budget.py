"""Monthly budgets, globally and per repository, that spending can never pass.

Before a job is sent (in a batch or through the express lane) its worst case is reserved: all input
tokens at the full (batch or standard) price, cache writes included when caching is on, and output at
max_tokens. What a scope has committed this month is what its results cost (results are stored in
the same database) plus the reservations of jobs still in flight (`submitting`, `submitted`). A job
that does not fit waits for the next month (or is skipped, by configuration).

Race safety: every submitter first locks one row per scope it touches (`budget_locks`), in a fixed
order, inside the transaction that claims the jobs. On PostgreSQL that is a row lock held to commit;
on SQLite the first write takes the database's write lock. Two submitters therefore admit jobs one
after the other, each seeing what the other reserved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reviewer.config import RepoSettings, Settings
from reviewer.cost import Usage, cost_of, format_usd
from reviewer.models import BudgetLock, Result, ReviewJob
from reviewer.queue import State

GLOBAL = "global"
IN_FLIGHT = (State.SUBMITTING.value, State.SUBMITTED.value)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def worst_case(input_tokens: int, repo: RepoSettings, settings: Settings, *, batch: bool) -> int:
    price = settings.prices.price(repo.model)
    if repo.prompt_caching:  # the first request of a batch writes the cache at a premium
        usage = Usage(0, repo.max_tokens, cache_creation_input_tokens=input_tokens,
                      cache_creation_5m_tokens=input_tokens if repo.cache_ttl == "5m" else 0,
                      cache_creation_1h_tokens=input_tokens if repo.cache_ttl == "1h" else 0)
    else:
        usage = Usage(input_tokens, repo.max_tokens)
    return cost_of(usage, price, batch=batch).charged_micro_usd


def _lock(session: Session, scope: str, now: datetime) -> None:
    locked = session.execute(update(BudgetLock).where(BudgetLock.scope == scope).values(touched_at=now))
    if locked.rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.add(BudgetLock(scope=scope, touched_at=now))
    except IntegrityError:
        pass  # another submitter created it first
    session.execute(update(BudgetLock).where(BudgetLock.scope == scope).values(touched_at=now))


def _committed(session: Session, repository: str | None, since: datetime) -> int:
    spent = select(func.coalesce(func.sum(Result.cost_micro_usd), 0)).where(Result.created_at >= since)
    held = select(func.coalesce(func.sum(ReviewJob.reserved_micro_usd), 0)).where(ReviewJob.state.in_(IN_FLIGHT))
    if repository is not None:
        spent = spent.join(ReviewJob, Result.job_id == ReviewJob.id).where(ReviewJob.repository == repository)
        held = held.where(ReviewJob.repository == repository)
    return int(session.scalar(spent) or 0) + int(session.scalar(held) or 0)


@dataclass
class BudgetGate:
    """Admission control for one transaction: lock, read what is committed, admit jobs that fit."""

    limits: dict[str, int | None]
    used: dict[str, int]
    warn_at: float
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, session: Session, settings: Settings, repositories: set[str], now: datetime) -> BudgetGate:
        limits: dict[str, int | None] = {GLOBAL: None if settings.budget.monthly_usd is None
                                         else round(settings.budget.monthly_usd * 1_000_000)}
        for name in repositories:
            limits[f"repo:{name}"] = settings.repo(name).monthly_budget_micro_usd
        scopes = sorted(s for s, limit in limits.items() if limit is not None)
        for scope in scopes:  # fixed order: no deadlock between two submitters
            _lock(session, scope, now)
        since = month_start(now)
        used = {s: _committed(session, None if s == GLOBAL else s.removeprefix("repo:"), since) for s in scopes}
        return cls(limits, used, settings.budget.warn_at)

    def admit(self, repository: str, amount: int) -> str | None:
        """Reserve `amount` for a job of `repository`; None when admitted, else why not."""
        scopes = [s for s in (GLOBAL, f"repo:{repository}") if self.limits.get(s) is not None]
        for scope in scopes:
            limit = self.limits[scope]
            assert limit is not None
            if self.used[scope] + amount > limit:
                left = max(limit - self.used[scope], 0)
                return (f"over the {_name(scope)} monthly budget of {format_usd(limit)}: its worst case "
                        f"{format_usd(amount, 4)} exceeds the {format_usd(left, 4)} left")
        for scope in scopes:
            self.used[scope] += amount
        return None

    def release(self, repository: str, amount: int) -> None:
        for scope in (GLOBAL, f"repo:{repository}"):
            if scope in self.used:
                self.used[scope] -= amount

    def check_warnings(self) -> list[str]:
        lines = []
        for scope, used in self.used.items():
            limit = self.limits.get(scope)
            if limit and used >= self.warn_at * limit:
                lines.append(f"{_name(scope)} budget: {used / limit:.0%} of {format_usd(limit)} committed this month")
        return lines


def _name(scope: str) -> str:
    return "organisation" if scope == GLOBAL else scope.removeprefix("repo:")

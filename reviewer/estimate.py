"""`reviewer submit --dry-run`: what the queued jobs would cost, per repository, without sending them.

Input tokens are measured with the free count_tokens endpoint where it is reachable (up to
COUNT_LIMIT requests; the rest are extrapolated), else estimated from the text (and the report says
which); an API key that the API refuses (401, 403) fails the dry run, as it would fail the submission.
Output is unknown before the model answers, so the estimate shows the input cost and the
worst case with every answer at max_tokens, for the batch price and the standard price.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from reviewer.config import same_repository
from reviewer.cost import Usage, cost_of, format_usd
from reviewer.errors import AnthropicError, ConfigError, TemplateError
from reviewer.jobs import Prepared, effective_settings, prepare_request
from reviewer.models import ReviewJob
from reviewer.queue import State
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

COUNT_LIMIT = 200
REFUSED_KEY = (401, 403)  # count_tokens refused the key: an error, never an estimate


def _measure(rt: Runtime, prepared: list[Prepared]) -> tuple[int, str]:
    """Total input tokens and how they were obtained."""
    if not prepared:
        return 0, "nothing to count"
    if rt.settings.anthropic.count_tokens:
        try:
            counted = [rt.batches.count_tokens(p.request["params"]) for p in prepared[:COUNT_LIMIT]]
        except AnthropicError as exc:
            if exc.status in REFUSED_KEY:
                raise  # the real submission would fail the same way: say so now, not after an estimate
        except ConfigError:
            pass  # no API key: a dry run still estimates
        else:
            scale = len(prepared) / len(counted)
            how = "counted" if scale == 1 else f"counted for {len(counted)}, extrapolated"
            return round(sum(counted) * scale), how
    return sum(p.input_tokens for p in prepared), "estimated (count_tokens unreachable or off)"


def estimate_queued(rt: Runtime, repositories: Iterable[str] | None = None) -> StageReport:
    """What submitting the queued jobs of `repositories` (default: all) would send and cost."""
    report = StageReport("submit (dry run)")
    names = rt.repository_names(repositories)
    with rt.sessions() as session:
        jobs = session.scalars(select(ReviewJob).where(
            ReviewJob.state == State.QUEUED.value,
            func.lower(ReviewJob.repository).in_([n.lower() for n in names]))).all()
    for name in names:
        mine = [j for j in jobs if same_repository(j.repository, name)]
        if not mine:
            continue
        try:
            requests = (prepare_request(j, rt.settings, rt.custom_id_prefix) for j in mine)
            prepared = [p for p in requests if isinstance(p, Prepared)]
            repo = effective_settings(rt.settings, mine[0])
        except (TemplateError, ConfigError) as exc:
            report.error(f"{name}: {exc.message}")
            continue
        tokens, how = _measure(rt, prepared)
        price = rt.settings.prices.price(repo.model)
        inputs = cost_of(Usage(tokens, 0), price)
        worst = cost_of(Usage(tokens, repo.max_tokens * len(prepared)), price)
        report.add(Count.WOULD_SUBMIT, len(prepared))
        report.note(f"{name}: {len(prepared)} requests to {repo.model}, {tokens:,} input tokens ({how}); "
                    f"input {format_usd(inputs.charged_micro_usd, 4)} as a batch "
                    f"({format_usd(inputs.standard_micro_usd, 4)} "
                    f"standard); at most {format_usd(worst.charged_micro_usd, 4)} with every answer at max_tokens "
                    f"({format_usd(worst.standard_micro_usd, 4)} standard)")
    return report

"""`reviewer submit --dry-run`: what the queued jobs would cost, per repository, without sending them.

Input tokens are measured with the free count_tokens endpoint where it is reachable (up to
COUNT_LIMIT requests; the rest are extrapolated), else estimated from the text (and the report says
which). Output is unknown before the model answers, so the estimate shows the input cost and the
worst case with every answer at max_tokens, for the batch price and the standard price.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from reviewer.cost import Usage, cost_of, format_usd
from reviewer.errors import AnthropicError, ConfigError, TemplateError
from reviewer.jobs import Prepared, effective_settings, prepare_request
from reviewer.models import ReviewJob
from reviewer.queue import State
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

COUNT_LIMIT = 200


def _measure(rt: Runtime, prepared: list[Prepared]) -> tuple[int, str]:
    """Total input tokens and how they were obtained."""
    if not prepared:
        return 0, "nothing to count"
    if rt.settings.anthropic.count_tokens:
        try:
            counted = [rt.batches.count_tokens(p.request["params"]) for p in prepared[:COUNT_LIMIT]]
        except (AnthropicError, ConfigError):
            pass
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
        jobs = session.scalars(select(ReviewJob).where(ReviewJob.state == State.QUEUED.value,
                                                       ReviewJob.repository.in_(names))).all()
    for name in names:
        mine = [j for j in jobs if j.repository == name]
        if not mine:
            continue
        try:
            prepared = [p for p in (prepare_request(j, rt.settings) for j in mine) if isinstance(p, Prepared)]
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
                    f"input {format_usd(inputs.charged_micro_usd, 4)} as a batch ({format_usd(inputs.standard_micro_usd, 4)} "
                    f"standard); at most {format_usd(worst.charged_micro_usd, 4)} with every answer at max_tokens "
                    f"({format_usd(worst.standard_micro_usd, 4)} standard)")
    return report

"""The ledger behind `reviewer costs`: what every billed request cost, grouped by review, pull request,
repository, model, day, week or month, beside what the standard API would have charged; plus what an
operator watches (cost per succeeded request, time from submission to batch end, error rate per batch).

Read-only. `read_ledger` is the only function that touches the database and it selects columns, never
diffs or review texts, so 100,000 results stay small; grouping, statistics and the three output formats
are pure functions of what it read.

Billing comes from the stored columns alone. Succeeded lines are billed; errored, expired and canceled
lines are not (Anthropic does not bill them). `cost_micro_usd` is what was charged: the batch price for
batch results, the standard price for results with `is_batch = False`, whose `standard_cost_micro_usd`
is then the same amount, so their savings are zero without a special case. Tokens are split as the API
reports them: `input` is the uncached input, the whole prompt is input + cache write + cache read. Days,
weeks (ISO) and months are UTC, of the moment the result was stored. Money stays integer micro-USD until
it is printed: dollars with 4 decimals per row (2 on a total of $10 or more) in the table, and exact
micro-USD integers beside exact dollar strings in CSV and JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewer.choices import DEFAULT_GROUPINGS
from reviewer.choices import FORMATS as FORMATS  # re-exported: defined where `reviewer --help` can read them cheaply
from reviewer.choices import GROUPINGS as GROUPINGS
from reviewer.cost import MICRO, format_usd
from reviewer.models import Batch, Result, ResultType, ReviewJob

NOT_BILLED = (ResultType.ERRORED, ResultType.EXPIRED, ResultType.CANCELED)
WORST_BATCHES = 5
STREAM_CHUNK = 5_000
CENTS_FROM = 10_000_000  # micro-USD: a total of $10 or more is printed in cents


class Sums(NamedTuple):
    """Additive figures of a set of billed requests (a NamedTuple so that columns add up with zip)."""

    reviews: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost: int = 0
    standard: int = 0
    cache_saved: int = 0

    @property
    def saved(self) -> int:
        return self.standard - self.cost


def add_up(items: Iterable[Sums]) -> Sums:
    columns = list(zip(*items, strict=True))
    return Sums._make(sum(column) for column in columns) if columns else Sums()


def plus(a: Sums, b: Sums) -> Sums:
    return Sums._make(map(operator.add, a, b))


@dataclass(frozen=True)
class Line:
    """One billed request: who it was for, when it was stored, and its figures."""

    job_id: int
    repository: str
    pr_number: int
    head_sha: str
    model: str
    at: datetime
    sums: Sums


@dataclass(frozen=True)
class CostRow:
    key: str
    sums: Sums


@dataclass(frozen=True)
class BatchOutcome:
    """What the stored result lines of one batch say."""

    batch_id: int
    anthropic_id: str | None
    counts: Mapping[str, int]
    canceled_by_operator: bool = False

    @property
    def lines(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return sum(self.counts.get(kind, 0) for kind in NOT_BILLED)

    @property
    def error_rate(self) -> float:
        return self.failed / self.lines if self.lines else 0.0


@dataclass(frozen=True)
class Operations:
    succeeded: int
    cost: int
    standard: int
    turnaround_seconds: tuple[float, ...]  # submission to batch end, one per ended batch
    batches: tuple[BatchOutcome, ...]


@dataclass(frozen=True)
class Ledger:
    groups: Mapping[str, Sequence[CostRow]]  # grouping -> rows, in the order asked for
    total: Sums
    operations: Operations


# grouping (pure) ----------------------------------------------------------------------------------------


def week_of(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _review_key(line: Line) -> tuple[Any, str]:
    return line.job_id, f"{line.repository}#{line.pr_number}@{line.head_sha[:7]} (job {line.job_id})"


def _pr_key(line: Line) -> tuple[Any, str]:
    return (line.repository, line.pr_number), f"{line.repository}#{line.pr_number}"


def _plain(label: Callable[[Line], str]) -> Callable[[Line], tuple[Any, str]]:
    def key(line: Line) -> tuple[Any, str]:
        text = label(line)
        return text, text

    return key


# Each grouping gives (sort key, label): reviews sort by job, pull requests by number, the rest by label.
KEYS: dict[str, Callable[[Line], tuple[Any, str]]] = {
    "review": _review_key,
    "pr": _pr_key,
    "repository": _plain(lambda line: line.repository),
    "model": _plain(lambda line: line.model),
    "day": _plain(lambda line: line.at.date().isoformat()),
    "week": _plain(lambda line: week_of(line.at)),
    "month": _plain(lambda line: f"{line.at:%Y-%m}"),
}


def tally(lines: Iterable[Line], groupings: Iterable[str]) -> tuple[dict[str, list[CostRow]], Sums]:
    """One pass over the lines, keeping running sums only: for each grouping one row per distinct key,
    sorted, and the total. Every line lands in exactly one row per grouping, so rows add up to the total."""
    running: dict[str, dict[tuple[Any, str], Sums]] = {by: {} for by in groupings}
    keys = [(KEYS[by], groups) for by, groups in running.items()]
    total = Sums()
    for line in lines:
        total = plus(total, line.sums)
        for key_of, groups in keys:
            key = key_of(line)
            groups[key] = plus(groups.get(key, Sums()), line.sums)
    rows = {by: [CostRow(label, groups[(order, label)]) for order, label in sorted(groups)]
            for by, groups in running.items()}
    return rows, total


def group_lines(lines: Iterable[Line], by: str) -> list[CostRow]:
    return tally(lines, [by])[0][by]


# operator statistics (pure) -----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: a value that occurred, the same on every run."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def per_request(total_micro_usd: int, requests: int) -> int | None:
    if not requests:
        return None
    return int((Decimal(total_micro_usd) / requests).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def overall_error_rate(batches: Sequence[BatchOutcome]) -> tuple[int, int]:
    """(failed lines, all lines) over every batch."""
    return sum(b.failed for b in batches), sum(b.lines for b in batches)


def worst_batches(batches: Sequence[BatchOutcome], n: int = WORST_BATCHES) -> list[BatchOutcome]:
    failing = [b for b in batches if b.failed]
    return sorted(failing, key=lambda b: (-b.error_rate, -b.failed, b.batch_id))[:n]


# reading ------------------------------------------------------------------------------------------------


def billed_lines(session: Session) -> Iterator[Line]:
    """Streamed in chunks: the ledger never holds every result at once."""
    query = (
        select(Result.job_id, ReviewJob.repository, ReviewJob.pr_number, ReviewJob.head_sha,
               func.coalesce(Result.model, ReviewJob.model), Result.created_at,
               Result.input_tokens, Result.output_tokens, Result.cache_creation_input_tokens,
               Result.cache_read_input_tokens, Result.cost_micro_usd, Result.standard_cost_micro_usd,
               Result.cache_saved_micro_usd)
        .join(ReviewJob, Result.job_id == ReviewJob.id)
        .where(Result.result_type == ResultType.SUCCEEDED)
        .order_by(Result.id)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    for job, repo, number, sha, model, at, *figures in session.execute(query):
        yield Line(job, repo, number, sha, model or "unknown", at, Sums(1, *figures))


def batch_outcomes(session: Session) -> list[BatchOutcome]:
    query = (select(Result.batch_id, Result.result_type, func.count())
             .where(Result.batch_id.is_not(None)).group_by(Result.batch_id, Result.result_type))
    counts: dict[int, dict[str, int]] = {}
    for batch_id, kind, n in session.execute(query):
        if batch_id is not None:  # excluded by the query; narrows the type
            counts.setdefault(batch_id, {})[kind] = n
    rows = session.execute(select(Batch.id, Batch.anthropic_id, Batch.cancel_requested_at)
                           .where(Batch.id.in_(list(counts))).order_by(Batch.id))
    return [BatchOutcome(i, anthropic_id, counts[i], requested is not None) for i, anthropic_id, requested in rows]


def turnaround_seconds(session: Session) -> list[float]:
    rows = session.execute(select(Batch.submitted_at, Batch.ended_at)
                           .where(Batch.submitted_at.is_not(None), Batch.ended_at.is_not(None)).order_by(Batch.id))
    return [(ended - submitted).total_seconds() for submitted, ended in rows if submitted and ended]


def read_ledger(session: Session, groupings: Iterable[str] = DEFAULT_GROUPINGS) -> Ledger:
    groups, total = tally(billed_lines(session), dict.fromkeys(groupings))
    operations = Operations(total.reviews, total.cost, total.standard, tuple(turnaround_seconds(session)),
                            tuple(batch_outcomes(session)))
    return Ledger(groups, total, operations)


# formatting (pure) --------------------------------------------------------------------------------------


def usd(micro_usd: int) -> str:
    """Exact dollars for machines: "562.500000"."""
    return f"{Decimal(micro_usd) / MICRO:.6f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def sums_fields(sums: Sums) -> dict[str, Any]:
    money = {"cost": sums.cost, "standard": sums.standard, "saved": sums.saved, "cache_saved": sums.cache_saved}
    return {
        "reviews": sums.reviews, "input_tokens": sums.input_tokens, "output_tokens": sums.output_tokens,
        "cache_write_tokens": sums.cache_write_tokens, "cache_read_tokens": sums.cache_read_tokens,
        **{f"{name}_micro_usd": value for name, value in money.items()},
        **{f"{name}_usd": usd(value) for name, value in money.items()},
    }


TABLE_KEY_WIDTH = 40


def dollars(micro_usd: int, places: int) -> str:
    """$1,125.00, and -$0.0060 for a negative amount (a cache write that has not paid for itself yet)."""
    return "-" + format_usd(-micro_usd, places) if micro_usd < 0 else format_usd(micro_usd, places)


def _table_line(key: str, s: Sums, places: int) -> str:
    money = (dollars(v, places) for v in (s.cost, s.standard, s.saved, s.cache_saved))
    return (f"{key[:TABLE_KEY_WIDTH]:<{TABLE_KEY_WIDTH}} {s.reviews:>7,} {s.input_tokens:>12,} {s.output_tokens:>11,} "
            f"{s.cache_write_tokens:>11,} {s.cache_read_tokens:>11,} " + " ".join(f"{m:>11}" for m in money))


def format_cost_table(title: str, rows: Sequence[CostRow], total: Sums | None = None) -> str:
    header = (f"{title:<{TABLE_KEY_WIDTH}} {'reviews':>7} {'input tok':>12} {'output tok':>11} {'cache write':>11} "
              f"{'cache read':>11} {'cost':>11} {'standard':>11} {'saved':>11} {'cache saved':>11}")
    total = add_up(r.sums for r in rows) if total is None else total
    places = 2 if max(total.cost, total.standard) >= CENTS_FROM else 4
    rule = "-" * len(header)
    return "\n".join([header, rule, *(_table_line(r.key, r.sums, 4) for r in rows), rule,
                      _table_line("total", total, places)])


def format_operations(ops: Operations) -> str:
    lines = ["operations"]
    each, standard = per_request(ops.cost, ops.succeeded), per_request(ops.standard, ops.succeeded)
    if each is None or standard is None:
        lines.append("  cost per succeeded request    - (nothing billed yet)")
    else:
        lines.append(f"  cost per succeeded request    {format_usd(each, 4)} (standard API {format_usd(standard, 4)}) "
                     f"over {ops.succeeded:,} requests")
    times = ops.turnaround_seconds
    lines.append(f"  submission to batch end       median {duration(median(times))}, "
                 f"p95 {duration(percentile(times, 95))} over {len(times):,} ended batches")
    failed, total = overall_error_rate(ops.batches)
    rate = f"{failed / total:.2%}" if total else "-"
    lines.append(f"  errored/expired/canceled      {rate} of {total:,} result lines ({failed:,} not billed)")
    for b in worst_batches(ops.batches):
        detail = ", ".join(f"{kind} {b.counts[kind]}" for kind in NOT_BILLED if b.counts.get(kind))
        why = "; canceled by an operator" if b.canceled_by_operator else ""
        lines.append(f"    {b.anthropic_id or '-'} (local {b.batch_id}): {b.error_rate:.2%} of {b.lines:,} "
                     f"({detail}{why})")
    return "\n".join(lines)


def format_table(ledger: Ledger) -> str:
    parts = [format_cost_table(f"by {by}", rows, ledger.total) for by, rows in ledger.groups.items()]
    return "\n\n".join([*parts, format_operations(ledger.operations)])


CSV_FIELDS = ["by", "row", "key", *sums_fields(Sums())]


def format_csv(ledger: Ledger) -> str:
    """One CSV: a `group` row per key of each grouping, then that grouping's `total` row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for by, rows in ledger.groups.items():
        for row in rows:
            writer.writerow({"by": by, "row": "group", "key": row.key, **sums_fields(row.sums)})
        writer.writerow({"by": by, "row": "total", "key": "", **sums_fields(ledger.total)})
    return out.getvalue().rstrip("\n")


def operations_fields(ops: Operations) -> dict[str, Any]:
    each, standard = per_request(ops.cost, ops.succeeded), per_request(ops.standard, ops.succeeded)
    failed, total = overall_error_rate(ops.batches)
    times = ops.turnaround_seconds
    return {
        "succeeded_requests": ops.succeeded,
        "cost_per_succeeded_request_micro_usd": each,
        "cost_per_succeeded_request_usd": None if each is None else usd(each),
        "standard_per_succeeded_request_micro_usd": standard,
        "submission_to_end_seconds": {"batches": len(times), "median": median(times),
                                      "p95": percentile(times, 95)},
        "result_lines": total,
        "not_billed_lines": failed,
        "error_rate": failed / total if total else None,
        "worst_batches": [{"batch_id": b.batch_id, "anthropic_id": b.anthropic_id, "lines": b.lines,
                           "counts": dict(b.counts), "error_rate": b.error_rate,
                           "canceled_by_operator": b.canceled_by_operator} for b in worst_batches(ops.batches)],
    }


def format_json(ledger: Ledger) -> str:
    document = {
        "groups": {by: [{"key": r.key, **sums_fields(r.sums)} for r in rows] for by, rows in ledger.groups.items()},
        "total": sums_fields(ledger.total),
        "operations": operations_fields(ledger.operations),
    }
    return json.dumps(document, indent=2)


FORMATTERS: dict[str, Callable[[Ledger], str]] = {"table": format_table, "csv": format_csv, "json": format_json}


def format_ledger(ledger: Ledger, output_format: str) -> str:
    return FORMATTERS[output_format](ledger)


def cost_rows(session: Session, by: str) -> list[CostRow]:
    """The rows of one grouping (the demo prints them per review)."""
    return group_lines(billed_lines(session), by)

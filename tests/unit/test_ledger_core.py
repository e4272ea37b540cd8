"""The ledger's pure core: grouping keys and their order, sums, percentiles, money and duration text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reviewer.ledger import (
    BatchOutcome,
    Line,
    Sums,
    add_up,
    dollars,
    duration,
    group_lines,
    per_request,
    percentile,
    usd,
    worst_batches,
)

AT = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # ISO week 2026-W53


def line(job: int, repo: str = "a/b", number: int = 1, model: str = "m", at: datetime = AT, cost: int = 10) -> Line:
    return Line(job, repo, number, f"{job:040d}", model, at, Sums(1, 100, 10, 0, 0, cost, 2 * cost, 0))


@pytest.mark.parametrize(("by", "keys"), [
    ("review", ["a/b#10@0000000 (job 2)", "a/b#9@0000000 (job 3)", "a/b#9@0000000 (job 11)"]),
    ("pr", ["a/b#9", "a/b#10"]),
    ("repository", ["a/b"]),
    ("day", ["2026-12-31"]),
    ("week", ["2026-W53"]),
    ("month", ["2026-12"]),
])
def test_keys_and_their_order(by: str, keys: list[str]) -> None:
    rows = group_lines([line(11, number=9), line(2, number=10), line(3, number=9)], by)
    assert [r.key for r in rows] == keys
    assert add_up(r.sums for r in rows) == Sums(3, 300, 30, 0, 0, 30, 60, 0)


def test_sums() -> None:
    assert add_up([]) == Sums()
    assert Sums(cost=4, standard=10).saved == 6


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([], 95, None), ([5.0], 95, 5.0), ([1.0, 2.0, 3.0], 50, 2.0), ([float(v) for v in range(1, 101)], 95, 95.0),
    ([float(v) for v in range(1, 21)], 95, 19.0), ([3.0, 1.0, 2.0], 100, 3.0),
])
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_money_and_durations() -> None:
    assert usd(562_500_000) == "562.500000" and usd(-6_000) == "-0.006000" and usd(1) == "0.000001"
    assert dollars(1_125_000_000, 2) == "$1,125.00" and dollars(-6_000, 4) == "-$0.0060"
    assert per_request(10, 3) == 3 and per_request(5, 2) == 3 and per_request(1, 0) is None  # half up
    assert [duration(s) for s in (None, 9.4, 200, 3_720, 90_000)] == ["-", "9s", "3m 20s", "1h 02m", "25h 00m"]


def test_worst_batches_skip_clean_ones_and_rank_by_rate() -> None:
    clean = BatchOutcome(1, "a", {"succeeded": 10})
    half = BatchOutcome(2, "b", {"succeeded": 1, "expired": 1})
    all_canceled = BatchOutcome(3, "c", {"canceled": 4}, canceled_by_operator=True)
    assert worst_batches([clean, half, all_canceled]) == [all_canceled, half]
    assert half.error_rate == 0.5 and clean.error_rate == 0.0

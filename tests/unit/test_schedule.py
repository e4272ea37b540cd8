"""Catch-up of submissions missed while the service was down: once, never once per missed slot."""

from __future__ import annotations

from datetime import UTC, datetime

from reviewer.config import RepoSettings
from reviewer.scheduler import missed_submission

NIGHTLY = RepoSettings(name="a/b", model="claude-opus-4-7", max_tokens=1000, schedule="0 2 * * *", max_attempts=3)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_no_history_means_nothing_to_catch_up() -> None:
    assert not missed_submission(NIGHTLY, None, at(25, 12), "UTC")


def test_slot_passed_while_down_is_caught_up() -> None:
    assert missed_submission(NIGHTLY, at(24, 1), at(24, 3), "UTC")
    assert missed_submission(NIGHTLY, at(20, 3), at(25, 12), "UTC")  # five missed nights: one catch-up


def test_no_slot_passed() -> None:
    assert not missed_submission(NIGHTLY, at(24, 2, 1), at(25, 1, 59), "UTC")


def test_slots_are_read_in_the_configured_time_zone() -> None:
    # 02:00 in Berlin is 01:00 UTC in November.
    assert missed_submission(NIGHTLY, at(24, 23), at(25, 1, 30), "Europe/Berlin")
    assert not missed_submission(NIGHTLY, at(24, 23), at(25, 1, 30), "UTC")

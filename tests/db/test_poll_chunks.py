"""One chunk of result lines of every kind, stored with a few set-based statements: each job ends where
its line sends it, with the reason it always had, a repeated line is stored once (in the same chunk or a
later one), and an answered job carries the text of its stored result."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reviewer.batches import ResultLine
from reviewer.config import settings_from_mapping
from reviewer.cost import Usage
from reviewer.db import transaction
from reviewer.models import Batch, JobEvent, Result, ReviewJob
from reviewer.poll import _store_chunk
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MODEL = "claude-opus-4-7"


def runtime(database_url: str) -> Runtime:
    raw = {"database_url": database_url, "repositories": [{"name": "acme/api", "max_attempts": 3}]}
    rt = Runtime(settings_from_mapping(raw, "test.yml", {}, Path(".")), clock=lambda: NOW)
    rt.prepare_database(migrate=True)
    return rt


def batch_of(rt: Runtime, attempts: list[int]) -> int:
    with transaction(rt.sessions) as session:
        batch = Batch(state="submitted", anthropic_id="msgbatch_chunk", request_count=len(attempts), created_at=NOW,
                      custom_id_prefix="rvtest")
        session.add(batch)
        session.flush()
        session.add_all(ReviewJob(id=n, repository="acme/api", pr_number=n, head_sha=f"{n:040d}", diff="d",
                                  state="submitted", batch_id=batch.id, model=MODEL, attempts=tries,
                                  created_at=NOW, updated_at=NOW) for n, tries in enumerate(attempts, start=1))
        return batch.id


def ok(n: int, text: str = "Fine.") -> ResultLine:
    return ResultLine(f"rvtest-{n}", "succeeded", MODEL, "end_turn", text, "[]", Usage(1000, 100))


def errored(n: int, kind: str, message: str) -> ResultLine:
    return ResultLine(f"rvtest-{n}", "errored", error_type=kind, error_message=message)


def test_every_kind_of_line_in_one_chunk(database_url: str) -> None:
    rt = runtime(database_url)
    batch_id = batch_of(rt, [1, 1, 1, 1, 3, 1, 1])
    report = StageReport("poll")
    lines = [ok(1, "First."), errored(2, "overloaded_error", "busy"), errored(3, "invalid_request_error", "too long"),
             ResultLine("rvtest-4", "expired"), ResultLine("rvtest-5", "expired"), ok(1, "First again."),
             ResultLine("rvtest-6", "succeeded", MODEL, "end_turn", "", "[]", Usage(10, 0)), ok(7, "Seventh.")]
    with transaction(rt.sessions) as session:
        _store_chunk(rt, session, batch_id, lines[:6], report)
    with transaction(rt.sessions) as session:
        _store_chunk(rt, session, batch_id, [ok(1, "Late duplicate."), *lines[6:]], report)
    assert report.counts == {Count.RESULTS_SUCCEEDED: 3, Count.RESULTS_ERRORED: 2, Count.RESULTS_EXPIRED: 2}
    with rt.sessions() as session:
        found = {j.id: (j.state, j.reason, j.review_text) for j in session.query(ReviewJob)}
        stored = session.query(Result).order_by(Result.id).all()
        moves = session.query(JobEvent).count()
    assert found == {
        1: ("answered", "answered (end_turn)", "First."),
        2: ("queued", "overloaded_error: busy; queued again (attempt 1 of 3)", None),
        3: ("failed", "the API rejected the request: too long", None),
        4: ("queued", "request expired; queued again (attempt 1 of 3)", None),
        5: ("failed", "gave up after 3 attempts; last: request expired", None),
        6: ("queued", "the model returned no content (stop_reason end_turn); queued again (attempt 1 of 3)", None),
        7: ("answered", "answered (end_turn)", "Seventh."),
    }
    assert [r.custom_id for r in stored] == [f"rvtest-{n}" for n in (1, 2, 3, 4, 5, 6, 7)]
    assert stored[0].cost_micro_usd > 0 and stored[1].cost_micro_usd == 0  # priced when billed only
    assert moves == 7
    rt.close()

"""A results download that breaks off part-way, after some chunks were stored, is resumed by the next
poll: every line is stored once, every job moves once, and the batch is ended only when the last line is
stored. The break is a real truncated JSONL answer from the emulator; the chunk size (our own constant)
is made small so that the break falls after a chunk boundary."""

from __future__ import annotations

from collections import Counter

import pytest

from reviewer import poll
from tests.conftest import Service
from tests.e2e.helpers import REPO, batches, diff_for, events, jobs, ok, own_reviews, results

PULLS = 5


def test_a_download_broken_off_mid_results_resumes_without_duplicates(service: Service,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poll, "RESULTS_CHUNK", 2)
    numbers = [service.github.open_pull(REPO, title=f"Change {i}", diff=diff_for(i)) for i in range(PULLS)]
    ok(service.cli("collect"))
    ok(service.cli("submit"))
    (batch,) = batches(service.database_url)
    assert batch.anthropic_id is not None
    service.anthropic.end_all()
    lines = service.anthropic.batches[batch.anthropic_id].results_body.splitlines(keepends=True)
    assert len(lines) == PULLS
    broken = b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2]  # three whole lines, then half of one
    service.anthropic.server.fail_next("GET", r"/results$", 200, broken, {"Content-Type": "application/x-jsonl"})

    interrupted = service.cli("poll")
    assert interrupted.exit_code == 1 and "broke off" in interrupted.output, interrupted.output
    assert len(results(service.database_url)) == 2  # the first chunk; the second never completed
    assert Counter(j.state for j in jobs(service.database_url)) == {"answered": 2, "submitted": 3}
    assert batches(service.database_url)[0].state == "submitted"

    ok(service.cli("poll"))
    stored = results(service.database_url)
    assert len(stored) == PULLS and len({r.custom_id for r in stored}) == PULLS
    assert {j.state for j in jobs(service.database_url)} == {"answered"}
    for job in jobs(service.database_url):
        assert [e.to_state for e in events(service.database_url, job.id)].count("answered") == 1
        assert job.review_text == next(r.text for r in stored if r.job_id == job.id)
    assert batches(service.database_url)[0].state == "ended"

    ok(service.cli("post"))
    for number in numbers:
        assert len(own_reviews(service.github, REPO, number)) == 1


def test_a_connection_dropped_mid_download_is_one_line_and_the_next_poll_stores_everything(service: Service) -> None:
    numbers = [service.github.open_pull(REPO, title=f"Change {i}", diff=diff_for(i)) for i in range(PULLS)]
    ok(service.cli("collect"))
    ok(service.cli("submit"))
    service.anthropic.end_all()
    service.anthropic.server.cut_answer("GET", r"/results$", fraction=0.6)  # headers sent, then the line drops

    interrupted = service.cli("poll")
    assert interrupted.exit_code == 1 and "broke off" in interrupted.output, interrupted.output
    assert "Traceback" not in interrupted.output
    assert batches(service.database_url)[0].state == "submitted"

    ok(service.cli("poll"))
    assert len(results(service.database_url)) == PULLS
    ok(service.cli("post"))
    assert all(len(own_reviews(service.github, REPO, n)) == 1 for n in numbers)

"""`reviewer batches` end to end: the list, an operator's cancel (the jobs come back to the queue without
spending an attempt and a later cycle posts them), refused cancels, and archived batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, batches, diff_for, jobs, results


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    # one attempt only: a cancel that counted as an attempt would fail the jobs
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO, "max_attempts": 1}])
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return str(result.output)


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return str(line)


def submitted(service: Service, pulls: int = 2) -> str:
    numbers = [service.github.open_pull(REPO, title=f"Change {i}", diff=diff_for(i)) for i in range(1, pulls + 1)]
    ok(service.cli("collect"))
    ok(service.cli("submit"))
    (batch,) = batches(service.database_url)
    assert batch.anthropic_id is not None and numbers
    return batch.anthropic_id


def test_cancel_requeues_without_spending_an_attempt_and_a_later_cycle_posts(service: Service) -> None:
    anthropic_id = submitted(service)
    listed = ok(service.cli("batches"))
    assert anthropic_id in listed and "submitted" in listed and "in_progress" in listed

    output = ok(service.cli("batches", "cancel", anthropic_id))
    assert "canceling" in output and "without counting an attempt" in output
    assert service.anthropic.batches[anthropic_id].processing_status == "canceling"
    (batch,) = batches(service.database_url)
    assert batch.cancel_requested_at is not None and batch.cancel_requested_by

    ok(service.cli("poll"))
    assert [(j.state, j.attempts) for j in jobs(service.database_url)] == [("queued", 0), ("queued", 0)]
    assert all("canceled by an operator" in (j.reason or "") for j in jobs(service.database_url))
    assert {r.result_type for r in results(service.database_url)} == {"canceled"}
    listed = ok(service.cli("batches"))
    assert "ended" in listed and "cancel requested" in listed
    assert "canceled by an operator" in ok(service.cli("costs"))

    ok(service.cli("cycle"))
    assert [(j.state, j.attempts) for j in jobs(service.database_url)] == [("posted", 1), ("posted", 1)]
    for job in jobs(service.database_url):
        assert len(service.github.reviews(REPO, job.pr_number)) == 1
    assert len(service.anthropic.batches) == 2


def test_cancel_by_local_id(service: Service) -> None:
    anthropic_id = submitted(service, pulls=1)
    (batch,) = batches(service.database_url)
    assert anthropic_id in ok(service.cli("batches", "cancel", str(batch.id)))
    assert service.anthropic.batches[anthropic_id].processing_status == "canceling"


def test_cancel_of_an_unknown_or_ended_batch_is_one_error(service: Service) -> None:
    assert "no batch 'msgbatch_nope'" in one_error_line(service.cli("batches", "cancel", "msgbatch_nope"))
    assert "no batch '42'" in one_error_line(service.cli("batches", "cancel", "42"))
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("cycle"))
    (batch,) = batches(service.database_url)
    line = one_error_line(service.cli("batches", "cancel", str(batch.anthropic_id)))
    assert "has already ended" in line and str(batch.anthropic_id) in line
    assert service.anthropic.server.count("POST", f"/v1/messages/batches/{batch.anthropic_id}/cancel") == 0


def test_a_cancel_the_api_refuses_is_one_error_and_leaves_no_record(service: Service) -> None:
    anthropic_id = submitted(service, pulls=1)
    service.anthropic.end_all()  # ended at the API, not polled yet
    line = one_error_line(service.cli("batches", "cancel", anthropic_id))
    assert "already ended" in line
    (batch,) = batches(service.database_url)
    assert batch.cancel_requested_at is None
    ok(service.cli("poll"))
    assert jobs(service.database_url)[0].state == "answered"


def test_archived_batch_is_shown_as_such_and_never_retried(service: Service) -> None:
    anthropic_id = submitted(service, pulls=1)
    service.anthropic.archive(anthropic_id)
    assert service.cli("poll").exit_code == 1  # results gone: reported, jobs queued again
    assert "archived" in ok(service.cli("batches"))
    assert "archived" in one_error_line(service.cli("batches", "cancel", anthropic_id))
    path = f"/v1/messages/batches/{anthropic_id}"
    retrieves = service.anthropic.server.count("GET", path)
    ok(service.cli("poll"))
    assert service.anthropic.server.count("GET", path) == retrieves
    (batch,) = batches(service.database_url)
    assert batch.state == "archived"


def test_batches_of_an_empty_database(service: Service) -> None:
    assert ok(service.cli("batches")).strip() == "no batches yet"

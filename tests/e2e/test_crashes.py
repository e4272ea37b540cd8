"""A process killed at the worst moments loses nothing and duplicates nothing: between the batch
create and its record, and between the review post and its record. The emulator holds its answer after
doing the work, the test kills the `reviewer` subprocess (SIGKILL), then a fresh run recovers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, batches, diff_for, jobs, own_reviews

LEASE_SECONDS = 1.0
pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}],
                        intervals={"poll_seconds": 0.05, "lease_seconds": LEASE_SECONDS})
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc


def kill_when_held(service: Service, hold, *args: str) -> None:  # type: ignore[no-untyped-def]
    process = service.spawn(*args)
    try:
        assert hold.reached.wait(60), process.communicate(timeout=5)
    finally:
        process.kill()
        process.communicate(timeout=10)  # reaps it and closes its stdout and stderr pipes
        hold.release()


def wait_out_the_lease() -> None:
    time.sleep(LEASE_SECONDS + 0.2)  # the killed worker's lease must expire before anyone takes over


def test_killed_between_batch_create_and_record(service: Service) -> None:
    numbers = [service.github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i)) for i in range(3)]
    assert service.cli("collect").exit_code == 0
    hold = service.anthropic.server.hold_after_processing("POST", r"^/v1/messages/batches$")
    kill_when_held(service, hold, "submit")
    assert len(service.anthropic.batches) == 1  # the API did create it
    assert {j.state for j in jobs(service.database_url)} == {"submitting"}
    result = service.cli("cycle")  # no lease to wait out: the submit lock proves the creator is gone
    assert result.exit_code == 0, result.output
    assert "adopted" in result.output
    assert len(service.anthropic.batches) == 1  # adopted, not sent again
    (batch,) = batches(service.database_url)
    assert batch.anthropic_id in service.anthropic.batches and batch.state == "ended"
    for number in numbers:
        assert len(own_reviews(service.github, REPO, number)) == 1


def test_batch_create_that_never_reached_the_api_is_requeued(service: Service) -> None:
    number = service.github.open_pull(REPO, title="PR", diff=diff_for(1))
    assert service.cli("collect").exit_code == 0
    service.anthropic.server.fail_next("POST", r"^/v1/messages/batches$", 500,
                                       {"type": "error", "error": {"type": "api_error", "message": "boom"}})
    failed = service.cli("submit")
    assert failed.exit_code == 1
    assert "never created" in failed.output  # settled in the same run, not after a lease
    assert {j.state for j in jobs(service.database_url)} == {"queued"}
    result = service.cli("cycle")
    assert result.exit_code == 0, result.output
    assert len(service.anthropic.batches) == 1
    assert [b.state for b in batches(service.database_url)] == ["abandoned", "ended"]
    assert len(own_reviews(service.github, REPO, number)) == 1


def test_killed_between_post_and_record(service: Service) -> None:
    numbers = [service.github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i)) for i in range(2)]
    for command in ("collect", "submit", "poll"):
        assert service.cli(command).exit_code == 0
    hold = service.github.server.hold_after_processing("POST", rf"/pulls/{numbers[0]}/reviews$")
    kill_when_held(service, hold, "post")
    assert len(own_reviews(service.github, REPO, numbers[0])) == 1  # GitHub has it, we did not record it
    assert jobs(service.database_url, pr_number=numbers[0])[0].state == "posting"
    wait_out_the_lease()
    result = service.cli("post")
    assert result.exit_code == 0, result.output
    assert "already posted 1" in result.output
    for number in numbers:
        assert len(own_reviews(service.github, REPO, number)) == 1
    first = jobs(service.database_url, pr_number=numbers[0])[0]
    assert first.state == "posted" and first.github_review_id == own_reviews(service.github, REPO, numbers[0])[0]["id"]

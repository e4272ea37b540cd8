"""A review that was paid for is never dropped after one refusal: GitHub refusing the review POST (422, or
any 4xx that is not "this pull request is gone") puts the job back to `answered` with the reason shown by
`status` and `explain`, the next run tries again, and only `max_attempts` refusals fail it. A 5xx never
counts; a pull request that answers 404 when read again fails at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, diff_for, events, jobs, ok, own_reviews

REVIEW_POST = r"/pulls/\d+/reviews$"
REFUSAL = {"message": "Validation Failed", "errors": ["Review cannot be created right now"]}


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    """Every finding goes into the body (max_inline_comments 0): the review has no inline comments to drop."""
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api,
                        [{"name": REPO, "max_inline_comments": 0, "max_attempts": 3}])
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc


def answered(service: Service) -> int:
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    return number


def test_a_review_refused_once_is_posted_by_the_next_run(service: Service) -> None:
    number = answered(service)
    service.github.server.fail_next("POST", REVIEW_POST, 422, REFUSAL)
    result = service.cli("post")
    assert result.exit_code == 1 and "refused (tried again next run) 1" in result.output
    assert "422" in result.stderr and "Traceback" not in result.stderr
    (job,) = jobs(service.database_url)
    assert job.state == "answered" and "refusal 1 of 3" in (job.reason or "")
    status = ok(service.cli("status"))
    assert "Answered, not posted yet" in status and "GitHub refused the review (refusal 1 of 3" in status
    assert "Validation Failed" in ok(service.cli("explain", str(job.id)))

    assert "posted 1" in ok(service.cli("post"))
    (job,) = jobs(service.database_url)
    assert job.state == "posted" and job.post_attempts == 2
    assert len(own_reviews(service.github, REPO, number)) == 1


def test_a_review_refused_every_time_fails_after_max_attempts(service: Service) -> None:
    number = answered(service)
    service.github.server.fail_next("POST", REVIEW_POST, 422, REFUSAL, times=100)
    for refusal in (1, 2):
        assert service.cli("post").exit_code == 1
        (job,) = jobs(service.database_url)
        assert job.state == "answered" and f"refusal {refusal} of 3" in (job.reason or "")
    result = service.cli("post")
    assert result.exit_code == 1 and "failed 1" in result.output
    (job,) = jobs(service.database_url)
    assert job.state == "failed" and "refused the review 3 times (max_attempts 3)" in (job.reason or "")
    assert "refused the review 3 times" in ok(service.cli("status"))
    assert [e.to_state for e in events(service.database_url, job.id)][-6:] == [
        "posting", "answered", "posting", "answered", "posting", "failed"]
    assert own_reviews(service.github, REPO, number) == []


def test_inline_comments_refused_every_time_count_one_refusal_per_run(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO, "max_attempts": 2}])
    ok(svc.cli("db", "upgrade"))
    answered(svc)
    svc.github.server.fail_next("POST", REVIEW_POST, 422, REFUSAL, times=100)
    assert svc.cli("post").exit_code == 1  # with inline comments, then without: one refusal
    assert "refusal 1 of 2" in (jobs(svc.database_url)[0].reason or "")
    assert svc.cli("post").exit_code == 1
    assert jobs(svc.database_url)[0].state == "failed"


def test_server_errors_never_use_up_an_attempt(service: Service) -> None:
    number = answered(service)
    service.github.server.fail_next("POST", REVIEW_POST, 502, b"<html><title>502 Bad Gateway</title></html>",
                                    times=4)
    for _ in range(4):
        result = service.cli("post")
        assert result.exit_code == 1 and "deferred 1" in result.output
    (job,) = jobs(service.database_url)
    reason = job.reason or ""
    assert job.state == "answered" and "not posted yet" in reason and "502 Bad Gateway" in reason
    assert "posted 1" in ok(service.cli("post"))
    assert len(own_reviews(service.github, REPO, number)) == 1


def test_a_pull_request_that_is_gone_fails_at_once(service: Service) -> None:
    number = answered(service)
    service.github.server.fail_next("GET", rf"/repos/{REPO}/pulls$", 200, [])  # not listed open: read on its own
    service.github.server.fail_next("GET", rf"/pulls/{number}$", 404, {"message": "Not Found"})
    result = service.cli("post")
    assert result.exit_code == 1 and "failed 1" in result.output
    (job,) = jobs(service.database_url)
    assert job.state == "failed" and "the pull request is gone" in (job.reason or "")

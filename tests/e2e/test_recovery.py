"""Recovery that does not wait for a timer, and a batch that is not ours is never taken for ours.

- a create whose answer is lost (the batch exists) is adopted in the same run;
- a create that failed without a definite answer and made nothing is requeued in the same run;
- a definite refusal (529 overloaded, 4xx) is requeued at once, without even asking the API;
- a `creating` row of a killed process is settled by the next submission, with no lease to wait out;
- another deployment's batch on the same key is never adopted for good, and its results never posted.

Leases here are an hour long, so a test that passes cannot be passing by waiting one out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.queue import BatchState, State
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, batches, diff_for, jobs, own_reviews

CREATE = r"^/v1/messages/batches$"
HOUR = 3600.0
OTHER_REPO = "acme/web"


def configured(tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic: AnthropicEmulator,
               repo: str = REPO) -> Service:
    github.add_repo(repo)
    service = write_service(tmp_path, database_url, github, anthropic, [{"name": repo}],
                            intervals={"poll_seconds": 0.05, "lease_seconds": HOUR})
    assert service.cli("db", "upgrade").exit_code == 0
    return service


@pytest.fixture
def service(tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> Service:
    return configured(tmp_path, database_url, github, anthropic_api)


def queue_pulls(service: Service, n: int, repo: str = REPO, first: int = 0) -> list[int]:
    numbers = [service.github.open_pull(repo, title=f"PR {i}", diff=diff_for(i)) for i in range(first, first + n)]
    assert service.cli("collect").exit_code == 0
    return numbers


def posted_once(service: Service, numbers: list[int], repo: str = REPO) -> None:
    result = service.cli("cycle")
    assert result.exit_code == 0, result.output
    for number in numbers:
        assert len(own_reviews(service.github, repo, number)) == 1, number


@pytest.mark.parametrize("lost", [500, None], ids=["answer-500", "connection-dropped"])
def test_a_lost_create_answer_is_adopted_in_the_same_run(service: Service, lost: int | None) -> None:
    numbers = queue_pulls(service, 2)
    service.anthropic.server.lose_answer("POST", CREATE, lost)
    result = service.cli("submit")
    assert result.exit_code == 0, result.output + result.stderr
    assert "looking for it" in result.output and "adopted" in result.output
    assert len(service.anthropic.batches) == 1  # the API made it once, and nothing was sent again
    (batch,) = batches(service.database_url)
    assert (batch.state, batch.adopted, batch.anthropic_id in service.anthropic.batches) == (
        BatchState.SUBMITTED, True, True)
    assert {j.state for j in jobs(service.database_url)} == {State.SUBMITTED}
    posted_once(service, numbers)
    assert len(service.anthropic.batches) == 1


def test_a_create_without_answer_that_made_nothing_is_requeued_in_the_same_run(service: Service) -> None:
    numbers = queue_pulls(service, 1)
    service.anthropic.server.fail_next("POST", CREATE, 500, {"type": "error", "error": {
        "type": "api_error", "message": "Internal server error"}})
    result = service.cli("submit")
    assert result.exit_code == 1
    assert "never created" in result.output and "queued again" in result.stderr
    assert [b.state for b in batches(service.database_url)] == [BatchState.ABANDONED]
    assert {j.state for j in jobs(service.database_url)} == {State.QUEUED}  # not left to a lease
    posted_once(service, numbers)
    assert [b.state for b in batches(service.database_url)] == [BatchState.ABANDONED, BatchState.ENDED]


@pytest.mark.parametrize("status,kind", [(529, "overloaded_error"), (400, "invalid_request_error")])
def test_a_definite_refusal_is_requeued_at_once_without_asking_the_api(service: Service, status: int,
                                                                      kind: str) -> None:
    numbers = queue_pulls(service, 1)
    service.anthropic.server.fail_next("POST", CREATE, status, {"type": "error", "error": {
        "type": kind, "message": "no"}})
    lists_before = service.anthropic.server.count("GET", "/v1/messages/batches")
    result = service.cli("submit")
    assert result.exit_code == 1 and "queued again" in result.stderr
    assert service.anthropic.server.count("GET", "/v1/messages/batches") == lists_before
    assert {j.state for j in jobs(service.database_url)} == {State.QUEUED}
    posted_once(service, numbers)


def test_a_killed_create_is_settled_by_the_next_submission_without_waiting(service: Service) -> None:
    numbers = queue_pulls(service, 3)
    hold = service.anthropic.server.hold_after_processing("POST", CREATE)
    process = service.spawn("submit")
    try:
        assert hold.reached.wait(60), process.communicate(timeout=5)
    finally:
        process.kill()
        process.communicate(timeout=10)
        hold.release()
    assert {j.state for j in jobs(service.database_url)} == {State.SUBMITTING}  # leased for an hour
    result = service.cli("submit")
    assert result.exit_code == 0, result.output
    assert "create was interrupted; adopted" in result.output
    posted_once(service, numbers)
    assert len(service.anthropic.batches) == 1


def test_another_deployments_batch_is_dropped_and_its_results_never_posted(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    """Two databases on one Anthropic key, each numbering its jobs from 1. This one's create fails without
    an answer and made nothing, while the other's batch of the same size exists: adopting it is the
    mistake the deployment id catches. Its results carry the other deployment's ids, so the adoption is
    dropped, this deployment's jobs are sent again, and each pull request gets its own review once."""
    (tmp_path / "other").mkdir()
    other = configured(tmp_path / "other", f"sqlite:///{tmp_path / 'other' / 'other.db'}", github, anthropic_api,
                       OTHER_REPO)
    theirs = queue_pulls(other, 2, OTHER_REPO, first=10)  # app/users_10.py, app/users_11.py
    assert other.cli("submit").exit_code == 0
    ours_service = configured(tmp_path, database_url, github, anthropic_api)
    ours = queue_pulls(ours_service, 2)
    anthropic_api.server.fail_next("POST", CREATE, 503, {"type": "error", "error": {
        "type": "api_error", "message": "Service unavailable"}})
    result = ours_service.cli("submit")
    assert "adopted" in result.output  # the mistake: the other deployment's batch had the same size
    anthropic_api.end_all()
    result = ours_service.cli("poll")
    assert "another deployment's requests" in result.stderr
    assert [b.state for b in batches(ours_service.database_url)] == [BatchState.FOREIGN]
    assert {(j.state, j.attempts) for j in jobs(ours_service.database_url)} == {(State.QUEUED, 0)}
    for number in ours:
        assert own_reviews(github, REPO, number) == []  # nothing of theirs was posted here
    posted_once(ours_service, ours)
    posted_once(other, theirs, OTHER_REPO)
    for index, number in enumerate(ours):  # each review is about this repository's own change
        (review,) = own_reviews(github, REPO, number)
        paths = {comment["path"] for comment in review["comments"]}
        assert paths == {f"app/users_{index}.py"}, review

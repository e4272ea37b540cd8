"""The pipeline end to end: the real CLI, the real PyGithub and anthropic clients, the emulators, and a
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from reviewer.review.body import marker
from tests.conftest import Service
from tests.e2e.helpers import REPO, batches, big_diff, diff_for, events, jobs, ok, own_reviews, results


def test_each_pull_request_is_reviewed_once(service: Service) -> None:
    gh = service.github
    first = gh.open_pull(REPO, title="Search users by name", diff=diff_for(1))
    second = gh.open_pull(REPO, title="Search users, take two", diff=diff_for(2))
    draft = gh.open_pull(REPO, title="WIP", diff=diff_for(3), draft=True)
    ok(service.cli("cycle"))

    for number in (first, second):
        (review,) = gh.reviews(REPO, number)
        assert review["user_login"] == "reviewer-bot"
        assert review["event"] == "COMMENT" and review["commit_id"] == gh.head_sha(REPO, number)
        assert "claude-opus-4-7" in review["body"] and "standard API would have charged" in review["body"]
    assert gh.reviews(REPO, draft) == []
    posted = jobs(service.database_url)
    assert [(j.pr_number, j.state) for j in posted] == [(first, "posted"), (second, "posted")]
    assert all(marker(j.id, j.head_sha) in gh.reviews(REPO, j.pr_number)[0]["body"] for j in posted)
    for row in results(service.database_url):
        assert row.result_type == "succeeded" and row.input_tokens > 0 and row.output_tokens > 0
        assert row.cost_micro_usd > 0 and abs(row.standard_cost_micro_usd - 2 * row.cost_micro_usd) <= 1


def test_collecting_again_queues_nothing_and_fetches_no_diff(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("cycle"))
    fetches = gh.server.count("GET", f"/repos/{REPO}/pulls/{number}")
    output = ok(service.cli("collect"))
    assert "unchanged 1" in output and "queued" not in output
    assert gh.server.count("GET", f"/repos/{REPO}/pulls/{number}") == fetches
    ok(service.cli("cycle"))
    assert len(gh.reviews(REPO, number)) == 1
    assert len(jobs(service.database_url)) == 1


def test_new_push_after_the_answer_makes_the_old_job_stale(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    new_head = gh.push(REPO, number, diff_for(1, version=2))
    assert "stale 1" in ok(service.cli("post"))
    assert gh.reviews(REPO, number) == []
    ok(service.cli("cycle"))
    old, new = jobs(service.database_url)
    assert old.state == "stale" and "head moved" in (old.reason or "")
    assert (new.state, new.head_sha) == ("posted", new_head)
    (review,) = gh.reviews(REPO, number)
    assert review["commit_id"] == new_head


def test_new_push_before_submission_supersedes_the_queued_job(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("collect"))
    gh.push(REPO, number, diff_for(1, version=2))
    ok(service.cli("cycle"))
    old, new = jobs(service.database_url)
    assert old.state == "stale" and "superseded" in (old.reason or "")
    assert old.batch_id is None  # never paid for
    assert new.state == "posted"
    assert len(service.anthropic.batches) == 1 and len(results(service.database_url)) == 1


def test_closed_pull_request_is_not_posted_to(service: Service) -> None:
    gh = service.github
    answered = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    queued = gh.open_pull(REPO, title="Other", diff=diff_for(2))
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    gh.close_pull(REPO, answered, merged=True)
    ok(service.cli("post"))
    assert gh.reviews(REPO, answered) == [] and len(gh.reviews(REPO, queued)) == 1
    later = gh.open_pull(REPO, title="Closed before review", diff=diff_for(3))
    ok(service.cli("collect"))
    gh.close_pull(REPO, later)
    ok(service.cli("cycle"))
    by_number = {j.pr_number: j for j in jobs(service.database_url)}
    assert by_number[answered].state == "stale" and "merged" in (by_number[answered].reason or "")
    assert by_number[later].state == "stale" and "closed before review" in (by_number[later].reason or "")
    assert gh.reviews(REPO, later) == []


def test_errored_result_is_retried_then_posted(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    service.anthropic.set_outcome(r"rv[0-9a-f]+-\d+", "errored", times=1, error_type="overloaded_error")
    ok(service.cli("cycle"))
    (job,) = jobs(service.database_url)
    assert job.state == "queued" and "overloaded_error" in (job.reason or "") and job.attempts == 1
    ok(service.cli("cycle"))
    (job,) = jobs(service.database_url)
    assert job.state == "posted" and job.attempts == 2
    assert [r.result_type for r in results(service.database_url)] == ["errored", "succeeded"]
    assert len(gh.reviews(REPO, number)) == 1


def test_expired_results_are_retried_up_to_the_limit_then_failed(service: Service) -> None:
    service.rewrite(defaults={"model": "claude-opus-4-7", "max_attempts": 2})
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    service.anthropic.set_outcome(r"rv[0-9a-f]+-\d+", "expired", times=5)
    ok(service.cli("cycle"))
    ok(service.cli("cycle"))
    (job,) = jobs(service.database_url)
    reason = job.reason or ""
    assert job.state == "failed" and "gave up after 2 attempts" in reason and "expired" in reason
    assert "nothing to do" in ok(service.cli("submit"))
    assert service.github.reviews(REPO, number) == []
    assert len(service.anthropic.batches) == 2


def test_invalid_request_fails_without_retry(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    service.anthropic.set_outcome(r"rv[0-9a-f]+-\d+", "errored", error_type="invalid_request_error")
    ok(service.cli("cycle"))
    (job,) = jobs(service.database_url)
    assert job.state == "failed" and "rejected the request" in (job.reason or "")
    assert len(service.anthropic.batches) == 1


def test_batch_that_answers_404_right_after_creation_is_waited_for(service: Service) -> None:
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    service.anthropic.transient_404 = 2
    ok(service.cli("cycle"))
    assert len(service.github.reviews(REPO, number)) == 1


def test_diff_over_300_files_falls_back_to_the_file_listing(service: Service) -> None:
    number = service.github.open_pull(REPO, title="Generated", diff=big_diff(301))
    output = ok(service.cli("collect"))
    assert "built from the file list" in output
    (job,) = jobs(service.database_url)
    assert job.diff_source == "files" and "gen/file_0300.py" in job.diff
    ok(service.cli("cycle"))
    assert len(service.github.reviews(REPO, number)) == 1


def test_a_marker_typed_by_someone_else_does_not_count(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    gh.server.fail_next("POST", rf"/pulls/{number}/reviews$", 502, {"message": "Bad Gateway"})
    result = service.cli("post")
    assert result.exit_code == 1
    (job,) = jobs(service.database_url)
    assert job.state == "answered" and job.post_attempts == 1
    gh.add_token("ghp_mallory", "mallory")
    gh.add_review(REPO, number, login="mallory", body=f"fake {marker(job.id, job.head_sha)}")
    ok(service.cli("post"))
    assert len(own_reviews(gh, REPO, number)) == 1
    assert jobs(service.database_url)[0].state == "posted"


def test_status_costs_and_explain(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    service.github.open_pull(REPO, title="Draft", diff=diff_for(2), draft=True)
    ok(service.cli("cycle"))
    status = ok(service.cli("status"))
    assert f"{REPO}: posted 1" in status and "next submission" in status and "Batches in flight: 0" in status
    costs = ok(service.cli("costs"))
    assert "by review" in costs and "by repository" in costs and "by week" in costs and "total" in costs
    (job,) = jobs(service.database_url)
    explained = ok(service.cli("explain", str(job.id)))
    assert [e.to_state for e in events(service.database_url, job.id)] == [
        "queued", "submitting", "submitted", "answered", "posting", "posted"]
    assert "posted" in explained and "answered" in explained
    assert service.cli("explain", "999").exit_code == 1


def test_dry_run_sends_nothing_and_estimates(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("collect"))
    output = ok(service.cli("submit", "--dry-run"))
    assert "would submit 1" in output and "claude-opus-4-7" in output and "input tokens (counted)" in output
    assert "as a batch" in output and "standard" in output
    service.anthropic.server.fail_next("POST", r"count_tokens$", 404,
                                       {"type": "error", "error": {"type": "not_found_error", "message": "no"}})
    assert "estimated (count_tokens unreachable" in ok(service.cli("submit", "--dry-run"))
    assert service.anthropic.batches == {} and jobs(service.database_url)[0].state == "queued"
    assert batches(service.database_url) == []

"""GitHub operations end to end, counted on the emulator's request log: requests spent per reviewed pull
request, conditional listing (304, no quota) across processes, GitHub App authentication, and rate
limits (waited out when short, deferred when long)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from reviewer.config import settings_from_mapping
from reviewer.emulators._server import RecordedRequest
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.github import GitHub
from tests.appkeys import app_keys
from tests.conftest import GITHUB_TOKEN, Service, write_service
from tests.e2e.helpers import REPO, diff_for, jobs, own_reviews

APP_ID, SLUG = 777, "acme-reviewer"
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
             "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}
PRIMARY = {"message": f"API rate limit exceeded for installation ID {APP_ID}.",
           "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}


def _service(tmp_path: Path, database_url: str, github, anthropic_api, **extra: Any) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}], **extra)
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc


@pytest.fixture
def service(tmp_path: Path, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    return _service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api)


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return str(result.output)


def since(service: Service, mark: int) -> list[RecordedRequest]:
    return service.github.server.requests[mark:]


def quota_used(requests: list[RecordedRequest]) -> int:
    """What the emulator charged, as GitHub does: every answer but 304s and /rate_limit."""
    return sum(1 for r in requests if r.status != 304 and r.path != "/rate_limit")


def app_env() -> dict[str, str]:
    return {"GITHUB_TOKEN": "", "GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY": app_keys().private_pem}


# --- requests per pull request ----------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["token", "app"])
def test_requests_spent_per_reviewed_pull_request(service: Service, auth: str) -> None:
    gh = service.github
    env: dict[str, str] = {}
    if auth == "app":
        gh.add_app(APP_ID, SLUG, app_keys().public_pem)
        gh.install_app(APP_ID, [REPO])
        env = app_env()
    numbers = [gh.open_pull(REPO, title=f"Change {i}", diff=diff_for(i)) for i in range(1, 11)]
    mark = len(gh.server.requests)
    ok(service.cli("cycle", env=env))
    spent = since(service, mark)
    by_kind: dict[str, int] = {}
    for r in spent:
        kind = re.sub(r"/(pulls|installations)/\d+", r"/\1/N", f"{r.method} {r.path.replace(REPO, '{repo}')}")
        by_kind[kind] = by_kind.get(kind, 0) + 1
    per_pr = len(spent) / len(numbers)
    print(f"\nreviewer cycle, 10 pull requests, {auth}: {len(spent)} GitHub requests, {per_pr:.1f} per PR")
    for kind, count in sorted(by_kind.items()):
        print(f"  {count:3d}  {kind}")
    assert all(len(own_reviews(gh, REPO, n, login="reviewer-bot" if auth == "token" else f"{SLUG}[bot]")) == 1
               for n in numbers)
    assert by_kind["POST /repos/{repo}/pulls/N/reviews"] == 10  # one review each, nothing re-sent
    assert by_kind["GET /repos/{repo}/pulls"] == 1  # one listing page
    # the diff and the re-read before posting (2 GETs), the post; per pass: the listing, the rules file,
    # and in App mode the installation lookup and one token
    assert per_pr <= (3.2 if auth == "token" else 3.4)


def test_second_collect_is_answered_304_from_the_database_and_costs_nothing(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api,
                       defaults={"model": "claude-opus-4-7", "read_repo_config": False})
    for i in range(1, 4):
        github.open_pull(REPO, title=f"Change {i}", diff=diff_for(i))
    ok(service.cli("collect"))  # each CLI run is a new adapter: only the database remembers the ETag
    mark = len(github.server.requests)
    assert "unchanged 3" in ok(service.cli("collect"))
    second = since(service, mark)
    assert [(r.path, r.status) for r in second] == [(f"/repos/{REPO}/pulls", 304)]
    assert second[0].headers.get("if-none-match", "").startswith('"')
    assert quota_used(second) == 0
    github.push(REPO, 2, diff_for(2, version=2))  # the listing changed: a full answer, one new job
    mark = len(github.server.requests)
    assert "queued 1" in ok(service.cli("collect"))
    assert since(service, mark)[0].status == 200
    assert len(jobs(service.database_url)) == 4


def test_listing_follows_pages_and_revalidates_each(tmp_path: Path, github) -> None:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    for i in range(1, 206):
        github.open_pull(REPO, title=f"Change {i}", diff=diff_for(1))
    env = {"GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": github.url}
    settings = settings_from_mapping({}, "t.yml", env, tmp_path)
    adapter = GitHub(settings)
    first = adapter.list_open_pulls(REPO)
    assert [p.number for p in first] == list(range(1, 206))
    mark = len(github.server.requests)
    assert adapter.list_open_pulls(REPO) == first
    assert [r.status for r in github.server.requests[mark:]] == [304, 304, 304]
    limit = adapter.rate_limit()
    assert limit is not None and limit.remaining == 5000 - 3


# --- GitHub App ---------------------------------------------------------------------------------------


def test_app_authenticated_cycle_posts_once_as_the_bot(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api)
    github.add_app(APP_ID, SLUG, app_keys().public_pem)
    github.install_app(APP_ID, [REPO])
    first = github.open_pull(REPO, title="Search", diff=diff_for(1))
    second = github.open_pull(REPO, title="Other", diff=diff_for(2))
    github.server.fail_next("POST", rf"/pulls/{second}/reviews$", 502, {"message": "Bad Gateway"})
    result = service.cli("cycle", env=app_env())
    assert result.exit_code == 1 and "502" in result.output  # the second is left answered for the next run
    ok(service.cli("cycle", env=app_env()))  # looks for its marker among the bot's reviews, then posts
    ok(service.cli("cycle", env=app_env()))
    bot = f"{SLUG}[bot]"
    for number in (first, second):
        (review,) = github.reviews(REPO, number)
        assert review["user_login"] == bot
    assert [j.state for j in jobs(service.database_url)] == ["posted", "posted"]
    assert all(r.headers.get("authorization", "").startswith(("token ghs_", "Bearer ey"))
               for r in github.server.requests)  # nothing was sent with the personal token
    assert [r.status for r in github.server.requests if r.path == "/app"] == [200]  # own login, for the marker


def test_app_not_installed_is_reported_per_repository(service: Service) -> None:
    service.github.add_app(APP_ID, SLUG, app_keys().public_pem)
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    result = service.cli("collect", env=app_env())
    assert result.exit_code == 1 and "not installed on acme/api" in result.output
    assert jobs(service.database_url) == []


def test_adapter_renews_installation_tokens_without_a_401(tmp_path: Path, github) -> None:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    github.add_app(APP_ID, SLUG, app_keys().public_pem)
    github.install_app(APP_ID, [REPO])
    github.apps.token_seconds = 21  # PyGithub renews 20 s before expiry: this token is good for ~1 s
    number = github.open_pull(REPO, title="Search", diff=diff_for(1))
    env = {**app_env(), "GITHUB_API_URL": github.url}
    adapter = GitHub(settings_from_mapping({"github": {"write_pause_seconds": 0}}, "t.yml", env, tmp_path))
    assert [p.number for p in adapter.list_open_pulls(REPO)] == [number]
    time.sleep(1.2)
    adapter.post_review(REPO, number, github.head_sha(REPO, number), "fine")
    assert adapter.own_login() == f"{SLUG}[bot]"
    assert [r.status for r in github.server.requests if r.path.endswith("/access_tokens")] == [201, 201]
    assert all(r.status < 400 for r in github.server.requests)


# --- rate limits ----------------------------------------------------------------------------------------


def test_secondary_limit_with_retry_after_is_waited_out(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    gh.server.fail_next("GET", rf"/pulls/{number}$", 403, SECONDARY, {"Retry-After": "1"})
    started = time.monotonic()
    ok(service.cli("cycle"))
    assert time.monotonic() - started >= 1.0
    assert len(own_reviews(gh, REPO, number)) == 1
    assert [r.status for r in gh.server.requests if r.path == f"/repos/{REPO}/pulls/{number}"][:2] == [403, 200]


def _primary_limit_headers() -> dict[str, str]:
    return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(time.time()) + 3000), "x-ratelimit-resource": "core"}


def test_primary_limit_while_collecting_defers_without_sleeping(service: Service) -> None:
    gh = service.github
    gh.open_pull(REPO, title="Search", diff=diff_for(1))
    gh.server.fail_next("GET", rf"/repos/{REPO}/pulls$", 403, PRIMARY, _primary_limit_headers())
    started = time.monotonic()
    result = service.cli("cycle")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1 and "rate limit" in result.output and "retry after" in result.output
    assert "(in 300" in result.output or "(in 29" in result.output  # ~3000 s: when the window resets
    assert jobs(service.database_url) == []
    ok(service.cli("cycle"))  # the next run, after the reset, does the work
    assert [j.state for j in jobs(service.database_url)] == ["posted"]


def test_primary_limit_before_posting_leaves_the_job_answered(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    gh.server.fail_next("GET", rf"/repos/{REPO}/pulls$", 403, PRIMARY, _primary_limit_headers())  # the re-read
    started = time.monotonic()
    result = service.cli("post")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1 and "retry after" in result.output
    (job,) = jobs(service.database_url)
    assert job.state == "answered" and "rate limited" in (job.reason or "")
    assert gh.reviews(REPO, number) == []
    ok(service.cli("post"))
    assert len(own_reviews(gh, REPO, number)) == 1


@pytest.mark.parametrize("status,body,headers", [
    (429, {"message": "Too many requests"}, {}),  # PyGithub raises a plain GithubException(429)
    (403, SECONDARY, {"Retry-After": "600"}),  # POSTs are never retried: deferred at once
])
def test_rate_limited_review_post_is_deferred(service: Service, status: int, body: dict[str, str],
                                             headers: dict[str, str]) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    gh.server.fail_next("POST", rf"/pulls/{number}/reviews$", status, body, headers)
    result = service.cli("post")
    assert result.exit_code == 1 and "rate limit" in result.output
    assert jobs(service.database_url)[0].state == "answered"
    ok(service.cli("post"))
    assert len(own_reviews(gh, REPO, number)) == 1


def test_long_retry_after_on_a_read_is_deferred_not_slept(service: Service) -> None:
    gh = service.github
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    gh.server.fail_next("GET", rf"/pulls/{number}$", 429, {"message": "Too many requests"}, {"Retry-After": "3600"})
    started = time.monotonic()
    result = service.cli("collect")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1 and "(in 3600s)" in result.output
    assert jobs(service.database_url) == []

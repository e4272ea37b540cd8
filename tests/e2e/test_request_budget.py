"""The GitHub request budget of a run, counted per endpoint from the emulator's request log: per reviewed
pull request one diff and one review POST; per repository and pass one listing and one read of the rules
file; the check before posting comes from the listing (a free 304 when unchanged), never from a GET per
pull request. A change that spends more fails here."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from reviewer.emulators._server import RecordedRequest
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from tests.conftest import Service, write_service
from tests.e2e.helpers import diff_for, jobs, ok, own_reviews

REPOS = ("acme/api", "acme/web", "acme/jobs")
PULLS_PER_REPO = 4
DIFF_MEDIA_TYPE = "application/vnd.github.diff"


def _service(tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic: AnthropicEmulator,
             freshness_seconds: float) -> Service:
    for index, repo in enumerate(REPOS):
        github.add_repo(repo)
        for n in range(PULLS_PER_REPO):
            github.open_pull(repo, title=f"Change {n}", diff=diff_for(index * PULLS_PER_REPO + n))
    svc = write_service(tmp_path, database_url, github, anthropic, [{"name": repo} for repo in REPOS])
    svc.rewrite(github={"write_pause_seconds": 0, "freshness_seconds": freshness_seconds})
    ok(svc.cli("db", "upgrade"))
    return svc


def _answered(service: Service) -> int:
    """Collect, submit and poll, each its own CLI run (a new adapter: only the database keeps ETags);
    the mark in the request log where posting starts."""
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))
    return len(service.github.server.requests)


def _by_endpoint(requests: list[RecordedRequest]) -> Counter[str]:
    """`METHOD /repos/{repo}/path STATUS`, with pull request numbers as {n} and 304s kept apart."""
    counts: Counter[str] = Counter()
    for r in requests:
        path = re.sub(r"/\d+", "/{n}", re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{repo}", r.path))
        counts[f"{r.method} {path}" + (" 304" if r.status == 304 else "")] += 1
    return counts


def _charged(requests: list[RecordedRequest]) -> int:
    """What counts against the quota, as on GitHub: every answer but a 304."""
    return sum(1 for r in requests if r.status != 304)


def test_a_run_spends_one_diff_and_one_post_per_reviewed_pull_request(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api, freshness_seconds=60)
    mark = _answered(service)
    assert "posted 12" in ok(service.cli("post"))
    reviewed = len(REPOS) * PULLS_PER_REPO
    assert _by_endpoint(github.server.requests) == {
        "GET /repos/{repo}/pulls": len(REPOS),  # collect: one page each
        "GET /repos/{repo}/contents/.github/reviewer.yml": len(REPOS),  # the rules, once per repository
        "GET /repos/{repo}/pulls/{n}": reviewed,  # the diffs
        "GET /repos/{repo}/pulls 304": len(REPOS),  # post: the listing is checked again, unchanged
        "POST /repos/{repo}/pulls/{n}/reviews": reviewed,
    }
    diffs = [r for r in github.server.requests if re.search(r"/pulls/\d+$", r.path)]
    assert all(DIFF_MEDIA_TYPE in r.headers.get("accept", "") for r in diffs)  # one request each, no JSON read
    assert _charged(github.server.requests[mark:]) == reviewed  # posting costs the POSTs and nothing else
    assert _charged(github.server.requests) == 2 * reviewed + 2 * len(REPOS)
    assert all(len(own_reviews(github, repo, n)) == 1 for repo in REPOS for n in range(1, PULLS_PER_REPO + 1))


def test_a_listing_older_than_freshness_seconds_is_read_again_and_an_unchanged_one_is_free(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api, freshness_seconds=0)
    mark = _answered(service)
    assert "posted 12" in ok(service.cli("post"))
    posting = github.server.requests[mark:]
    reviewed = len(REPOS) * PULLS_PER_REPO
    counted = _by_endpoint(posting)
    listings, unchanged = counted.pop("GET /repos/{repo}/pulls", 0), counted.pop("GET /repos/{repo}/pulls 304", 0)
    assert listings + unchanged == reviewed  # a listing before every post, and nothing else but the posts
    assert counted == {"POST /repos/{repo}/pulls/{n}/reviews": reviewed}
    # the first post of each repository finds its listing unchanged since collect; a review posted updates
    # its pull request, so a later listing is a full answer unless it came within the same second
    assert unchanged >= len(REPOS)
    assert all(r.headers.get("if-none-match", "").startswith('"') for r in posting if r.method == "GET")
    assert _charged(posting) == reviewed + listings


def test_only_a_pull_request_missing_from_the_listing_is_read_on_its_own(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api, freshness_seconds=60)
    mark = _answered(service)
    moved = github.push(REPOS[0], 2, diff_for(99))
    github.close_pull(REPOS[0], 1, merged=True)
    assert "posted 10" in ok(service.cli("post"))
    assert _by_endpoint(github.server.requests[mark:]) == {
        "GET /repos/{repo}/pulls": 1,  # acme/api changed: a full answer
        "GET /repos/{repo}/pulls 304": len(REPOS) - 1,
        "GET /repos/{repo}/pulls/{n}": 1,  # #1 is not listed: closed, merged or gone?
        "POST /repos/{repo}/pulls/{n}/reviews": 10,
    }
    stale = {j.pr_number: j.reason or "" for j in jobs(service.database_url, repository=REPOS[0], state="stale")}
    assert "merged before posting" in stale[1] and f"to {moved[:7]}" in stale[2]
    assert github.reviews(REPOS[0], 1) == github.reviews(REPOS[0], 2) == []


def test_an_unchanged_rules_file_is_read_again_for_free(
        tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api, freshness_seconds=60)
    github.add_file(REPOS[0], ".github/reviewer.yml", "severity_threshold: medium\n")
    ok(service.cli("collect"))
    for repo in REPOS:
        github.open_pull(repo, title="One more", diff=diff_for(50))  # a new head: the rules are read again
    mark = len(github.server.requests)
    assert "queued 3" in ok(service.cli("collect"))
    assert _by_endpoint(github.server.requests[mark:]) == {
        "GET /repos/{repo}/pulls": len(REPOS),
        "GET /repos/{repo}/contents/.github/reviewer.yml 304": 1,  # the file of acme/api, unchanged
        "GET /repos/{repo}/contents/.github/reviewer.yml": len(REPOS) - 1,  # 404: GitHub has no ETag for those
        "GET /repos/{repo}/pulls/{n}": len(REPOS),
    }
    new = [j for j in jobs(service.database_url, repository=REPOS[0]) if j.pr_number == PULLS_PER_REPO + 1]
    assert new and "reviewer.yml" in (new[0].config_source or "") and "medium" in (new[0].repo_rules or "")

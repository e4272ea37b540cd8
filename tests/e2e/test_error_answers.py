"""Every shape of error answer is an error, not a crash: a 4xx or 5xx whose body is a JSON string, an HTML
page (a proxy's) or nothing at all, from GitHub (PyGithub) and from Anthropic (the anthropic SDK), becomes
one clear line that the step reports; nothing is lost, and the next run completes the review once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, batches, diff_for, jobs, ok, own_reviews

SHAPES = {
    "json-string": "the server is on fire",
    "html": b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n<h1>Bad Gateway</h1>\n"
            b"<hr><center>nginx</center>\n</body></html>\n",
    "empty": b"",
}
SAID = {"json-string": "the server is on fire", "html": "(an HTML page: 502 Bad Gateway)", "empty": "(empty body)"}
LINE = re.compile(r"^(error: |  problem: |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (WARNING|ERROR) )")
BATCH = r"^/v1/messages/batches/msgbatch_[^/]+$"


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}])
    svc.rewrite(anthropic={"create_grace_seconds": 0.1})  # a create without answer is looked up at once
    ok(svc.cli("db", "upgrade"))
    return svc


def reported(result, said: str) -> str:  # type: ignore[no-untyped-def]
    """A failed step: exit 1, and every line of stderr is one whole message (no traceback, no HTML)."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(LINE.match(line) for line in lines), result.stderr
    assert said in result.stderr, result.stderr
    return str(result.stderr)


@pytest.mark.parametrize("shape", SHAPES)
def test_github_error_answers(service: Service, shape: str) -> None:
    gh, body = service.github, SHAPES[shape]
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    gh.server.fail_next("GET", r"/pulls$", 422, body)
    assert "acme/api: could not list open pull requests" in reported(service.cli("collect"), SAID[shape])
    gh.server.fail_next("GET", r"/pulls$", 503, body, times=4)  # the first try and its 3 retries
    assert "kept answering with server errors" in reported(service.cli("collect"), "error: ")
    assert jobs(service.database_url) == []
    for command in ("collect", "submit", "poll"):
        ok(service.cli(command))

    gh.server.fail_next("GET", rf"/repos/{REPO}/pulls$", 422, body)  # the re-read before posting (the listing)
    reported(service.cli("post"), SAID[shape])
    gh.server.fail_next("POST", r"/reviews$", 500, body)
    reported(service.cli("post"), SAID[shape])
    gh.server.fail_next("GET", r"/reviews$", 422, body)  # the marker look-up (an earlier POST may have landed)
    reported(service.cli("post"), "could not list the reviews")
    assert jobs(service.database_url)[0].state == "answered"
    ok(service.cli("post"))
    assert len(own_reviews(gh, REPO, number)) == 1


@pytest.mark.parametrize("shape", SHAPES)
def test_anthropic_error_answers(service: Service, shape: str) -> None:
    api, body = service.anthropic, SHAPES[shape]
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("collect"))
    api.server.fail_next("POST", r"^/v1/messages/batches$", 400, body)  # a definite refusal
    assert "not submitted" in reported(service.cli("submit"), SAID[shape])
    api.server.fail_next("POST", r"^/v1/messages/batches$", 502, body)  # no definite answer: looked up, not found
    reported(service.cli("submit"), SAID[shape])
    assert [j.state for j in jobs(service.database_url)] == ["queued"] and api.batches == {}
    ok(service.cli("submit"))

    api.server.fail_next("GET", BATCH, 500, body, times=3)  # more than the SDK's retries
    assert "could not retrieve batch" in reported(service.cli("poll"), SAID[shape])
    assert [b.state for b in batches(service.database_url)][-1] == "submitted"
    api.server.fail_next("GET", r"/results$", 500, body, times=3)
    assert "download the results" in reported(service.cli("poll"), SAID[shape])
    ok(service.cli("cycle"))
    assert [j.state for j in jobs(service.database_url)] == ["posted"]
    assert len(own_reviews(service.github, REPO, number)) == 1 and len(api.batches) == 1

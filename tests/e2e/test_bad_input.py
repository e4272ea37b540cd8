"""Bad input gets one clear line on stderr and a non-zero exit, and nothing is lost."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import Result

from reviewer.db import make_engine
from reviewer.migrate import current_revision, head_revision, upgrade
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, diff_for, jobs


@pytest.fixture
def service(tmp_path: Path, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    svc = write_service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api, [{"name": REPO}])
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return str(errors[0])


def test_missing_github_token(service: Service) -> None:
    line = one_error_line(service.cli("collect", env={"GITHUB_TOKEN": ""}))
    assert "GITHUB_TOKEN" in line and "not set" in line


def test_wrong_github_token(service: Service) -> None:
    line = one_error_line(service.cli("collect", env={"GITHUB_TOKEN": "ghp_wrong"}))
    assert "GitHub rejected the token" in line and "401" in line and "GITHUB_TOKEN" in line


def test_unreachable_github(service: Service) -> None:
    line = one_error_line(service.cli("collect", env={"GITHUB_API_URL": f"http://127.0.0.1:{closed_port()}"}))
    assert "cannot reach GitHub" in line and "GITHUB_API_URL" in line


def test_unknown_repository_is_reported_and_the_others_still_collected(service: Service) -> None:
    service.rewrite(repositories=[{"name": "acme/ghost"}, {"name": REPO}])
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    result = service.cli("collect")
    assert result.exit_code == 1 and "acme/ghost" in result.stderr and "not found" in result.stderr
    assert len(jobs(service.database_url)) == 1


def test_missing_anthropic_key_keeps_jobs_queued(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    assert service.cli("collect").exit_code == 0
    line = one_error_line(service.cli("submit", env={"ANTHROPIC_API_KEY": ""}))
    assert "ANTHROPIC_API_KEY" in line
    assert jobs(service.database_url)[0].state == "queued"


def test_wrong_anthropic_key_returns_jobs_to_the_queue(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    assert service.cli("collect").exit_code == 0
    line = one_error_line(service.cli("submit", env={"ANTHROPIC_API_KEY": "sk-wrong"}))
    assert "rejected the API key" in line and "ANTHROPIC_API_KEY" in line
    (job,) = jobs(service.database_url)
    assert job.state == "queued" and "not created" in (job.reason or "")
    assert service.cli("cycle").exit_code == 0
    assert jobs(service.database_url)[0].state == "posted"


def test_unreachable_anthropic_api(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    assert service.cli("collect").exit_code == 0
    line = one_error_line(service.cli("submit", env={"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed_port()}"}))
    assert "cannot reach the Anthropic API" in line and "ANTHROPIC_BASE_URL" in line
    assert service.anthropic.batches == {}


@pytest.mark.parametrize("text,words", [
    ("repositories:\n  - name: acme/api\n    colour: blue\n", "repositories[0].colour: unknown key"),
    ("repositories:\n  - name: acme api\n", "repositories[0].name"),
    ("repositories:\n  - {name: acme/api, schedule: '99 * * * *'}\n", "repositories[0].schedule"),
    ("repositories:\n  - {name: acme/api, model: claude-imaginary}\n", "unknown model"),
    ("repositories: [\n", "not valid YAML"),
])
def test_malformed_config(service: Service, text: str, words: str) -> None:
    service.config_path.write_text(text)
    line = one_error_line(service.cli("status"))
    assert words in line and str(service.config_path) in line


def test_database_behind_the_code_names_the_fix(tmp_path: Path, database_url: str, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    """A database at an older revision is upgraded only by run, cycle, demo and `db upgrade`; the other
    commands name the fix and leave it as it is (an empty one they create: tests/e2e/test_first_run.py)."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}])
        line = one_error_line(svc.cli("status"))
        assert "reviewer db upgrade" in line and "revision 0001" in line
        assert current_revision(engine) == "0001"
        assert "database at" in svc.cli("db", "upgrade").output
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()

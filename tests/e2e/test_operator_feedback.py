"""What a careful operator notices: a `--repo` that is not configured is an error, a dry run with a key
the API refuses fails instead of estimating, jobs held back by a budget say so in `status`, and the
messages that point to documentation point to something an installed package has."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from reviewer.cli import cli
from tests.conftest import Service
from tests.e2e.helpers import REPO, diff_for, events, jobs, ok


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.parametrize("command", [["collect"], ["submit"], ["submit", "--dry-run"]], ids=" ".join)
def test_a_repository_that_is_not_configured_is_an_error(service: Service, command: list[str]) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    line = one_error_line(service.cli(*command, "--repo", REPO, "--repo", "acme/nope"))
    assert line.startswith("error: --repo: acme/nope: not in the repositories of ")
    assert "(configured: acme/api)" in line
    assert jobs(service.database_url) == [] and service.anthropic.batches == {}  # nothing done at all


def test_a_dry_run_with_a_refused_api_key_fails(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("collect"))
    result = service.cli("submit", "--dry-run", env={"ANTHROPIC_API_KEY": "sk-ant-wrong"})
    line = one_error_line(result)
    assert "rejected the API key" in line and "401" in line and "ANTHROPIC_API_KEY" in line
    assert "would submit" not in result.output and "estimated" not in result.output
    assert jobs(service.database_url)[0].state == "queued"


def test_jobs_held_back_by_a_budget_say_why_in_status(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("collect"))
    service.rewrite(budget={"monthly_usd": 0.01})  # below one worst case (~$0.026)
    assert "waiting for budget 1" in ok(service.cli("submit"))
    (job,) = jobs(service.database_url)
    why = "waiting for budget: over the organisation monthly budget of $0.01"
    assert job.state == "queued" and why in (job.reason or "")
    status = ok(service.cli("status"))
    assert "Queued, waiting:" in status and f"acme/api#1@{job.head_sha[:7]}: {why}" in status
    assert why in ok(service.cli("explain", str(job.id))).splitlines()[0]
    assert [(e.from_state, e.to_state) for e in events(service.database_url, job.id)] == [(None, "queued")]
    service.rewrite(budget={"monthly_usd": 10})
    assert "submitted 1" in ok(service.cli("submit"))
    assert "Queued, waiting:" not in ok(service.cli("status"))


def test_the_example_config_is_printed_and_the_messages_point_to_it(tmp_path: Path) -> None:
    runner = CliRunner()
    example = runner.invoke(cli, ["config", "example"])
    assert example.exit_code == 0 and yaml.safe_load(example.output)["repositories"][0] == {"name": "acme/api"}
    env = {"REVIEWER_CONFIG": "", "REVIEWER_DATABASE_URL": ""}
    missing = runner.invoke(cli, ["--config", str(tmp_path / "absent.yml"), "status"], env=env)
    assert "`reviewer config example` prints a commented one" in one_error_line(missing)
    typo = tmp_path / "reviewer.yml"
    typo.write_text("repositories: [{name: acme/api, modle: x}]\n")
    line = one_error_line(runner.invoke(cli, ["--config", str(typo), "status"], env=env))
    assert "repositories[0].modle: unknown key" in line and "`reviewer config example`" in line
    assert "reviewer.example.yml" not in line

"""Repository names are case-insensitive, as on GitHub: a `--repo` in any case finds the configured
repository, GitHub's own spelling (`full_name`) never opens a second queue, and an entry respelled in
another case keeps its queue; names that cannot be repositories are refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import Service, write_service
from tests.e2e.helpers import diff_for, jobs, ok, own_reviews

CONFIGURED = "acme/api"
ON_GITHUB = "Acme/API"  # how GitHub spells it in every answer (full_name, URLs)


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(ON_GITHUB)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": CONFIGURED}])
    ok(svc.cli("db", "upgrade"))
    return svc


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_any_case_of_a_name_is_the_one_configured_repository(service: Service) -> None:
    for i in (1, 2):
        service.github.open_pull(ON_GITHUB, title=f"PR {i}", diff=diff_for(i))
    assert "queued 2" in ok(service.cli("collect", "--repo", "ACME/api"))
    assert {j.repository for j in jobs(service.database_url)} == {CONFIGURED}  # the configured spelling
    assert "queued" not in ok(service.cli("collect"))  # GitHub's `Acme/API` answers: still one queue
    assert "would submit 2" in ok(service.cli("submit", "--dry-run", "--repo", "aCmE/aPi"))
    assert "submitted 2" in ok(service.cli("submit", "--repo", "ACME/API"))
    ok(service.cli("poll"))
    assert "posted 2" in ok(service.cli("post"))
    assert all(len(own_reviews(service.github, ON_GITHUB, n)) == 1 for n in (1, 2))


def test_an_entry_respelled_in_another_case_keeps_its_queue(service: Service) -> None:
    service.github.open_pull(ON_GITHUB, title="PR", diff=diff_for(1))
    ok(service.cli("collect"))
    service.rewrite(repositories=[{"name": "ACME/Api"}])
    assert "queued" not in ok(service.cli("collect"))  # the head already has a job: not reviewed again
    assert [j.repository for j in jobs(service.database_url)] == ["ACME/Api"]
    status = ok(service.cli("status"))
    assert "ACME/Api: queued 1" in status and "acme/api" not in status
    ok(service.cli("cycle"))
    assert [j.state for j in jobs(service.database_url)] == ["posted"]
    assert len(own_reviews(service.github, ON_GITHUB, 1)) == 1


@pytest.mark.parametrize("repositories,words", [
    ([{"name": "acme/api"}, {"name": "ACME/Api"}],
     "repositories[1].name: 'ACME/Api' and repositories[0] 'acme/api' are the same repository"),
    ([{"name": "acme/.."}], "repositories[0].name: 'acme/..' is not an owner/name repository"),
    ([{"name": "acme/."}], "repositories[0].name: 'acme/.' is not an owner/name repository"),
    ([{"name": "../x"}], "repositories[0].name: '../x' is not an owner/name repository"),
])
def test_names_that_are_not_one_repository_each_are_refused(service: Service, repositories: list[dict[str, str]],
                                                            words: str) -> None:
    service.rewrite(repositories=repositories)
    assert words in one_error_line(service.cli("status"))

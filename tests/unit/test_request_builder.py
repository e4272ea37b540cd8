"""The per-job work of submit, done once where it is the same (issue 10): `RequestBuilder` makes exactly the
requests `prepare_request` makes, works a repository's rules out once per rules (not once per repository),
remembers a repository whose rules fail, `request_json` is the SDK's encoding of the request, and the kept
files trim parsed number exactly as the kept diff does when parsed again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reviewer.config import settings_from_mapping
from reviewer.emulators.samples import make_diff
from reviewer.errors import ConfigError
from reviewer.jobs import Prepared, RequestBuilder, prepare_request, request_json
from reviewer.models import ReviewJob
from reviewer.review.diffs import number_new_side
from reviewer.review.trim import fit_diff
from reviewer.rules import parse_repo_rules, rules_to_json
from tests.unit.test_trim import mixed_diff

SETTINGS = settings_from_mapping({"repositories": [{"name": "acme/api"}, {"name": "acme/web", "prompt_caching": True}]},
                                 "reviewer.yml", {}, Path("."))
DIFF = make_diff({"app.py": ("a = 1\n", "a = 2\n"), "yarn.lock": (None, "x\n")})


def job(job_id: int, repository: str = "acme/api", rules: str | None = None, title: str = "Change") -> ReviewJob:
    return ReviewJob(id=job_id, repository=repository, pr_number=job_id, head_sha="a" * 40, base_ref="main",
                     head_ref="f", title=title, author="alice", body="", url="", labels="", diff=DIFF,
                     repo_rules=rules)


def rules(text: str) -> str | None:
    return rules_to_json(parse_repo_rules(text, "acme/api:.github/reviewer.yml"))


def test_the_builder_makes_the_requests_prepare_request_makes() -> None:
    builder = RequestBuilder(SETTINGS, "rvtest")
    for each in [job(1), job(2, "acme/web"), job(3, rules=rules("instructions: Use SQLAlchemy 2.\n")), job(4)]:
        assert builder.prepare(each) == prepare_request(each, SETTINGS, "rvtest")


def test_jobs_of_one_repository_with_different_rules_get_their_own_rules() -> None:
    builder = RequestBuilder(SETTINGS, "rvtest")
    first = builder.prepare(job(1, rules=rules("instructions: First rules.\n")))
    second = builder.prepare(job(2, rules=rules("instructions: Second rules.\n")))
    plain = builder.prepare(job(3))
    assert isinstance(first, Prepared) and isinstance(second, Prepared) and isinstance(plain, Prepared)
    systems = [p.request["params"]["system"][0]["text"] for p in (first, second, plain)]
    assert "First rules." in systems[0] and "Second rules." in systems[1]
    assert "rules." not in systems[2]


def test_rules_that_fail_fail_every_job_of_the_repository_with_one_line() -> None:
    builder = RequestBuilder(SETTINGS, "rvtest")
    bad = rules("model: claude-sonnet-4-6\n").replace("claude-sonnet-4-6", "no-such-model")  # type: ignore[union-attr]
    messages = []
    for job_id in (1, 2):
        with pytest.raises(ConfigError) as caught:
            builder.prepare(job(job_id, rules=bad))
        messages.append(caught.value.message)
    assert messages[0] == messages[1] and "unknown model 'no-such-model'" in messages[0]
    assert isinstance(builder.prepare(job(3)), Prepared)  # another key of the repository is unaffected


@pytest.mark.parametrize("title", ["Change", "caf\u00e9 \"quoted\" \u2603 \\ back"])
@pytest.mark.parametrize("repository", ["acme/api", "acme/web"])
def test_request_json_is_the_sdk_encoding_of_the_request(title: str, repository: str) -> None:
    prepared = prepare_request(job(9, repository, title=title), SETTINGS, "rvtest")
    assert isinstance(prepared, Prepared)
    expected = json.dumps(prepared.request, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    assert request_json(prepared) == expected


@pytest.mark.parametrize("budget", [0, 300, 2000, 10**6])
def test_the_files_trim_numbered_read_like_the_kept_diff(budget: int) -> None:
    fitted = fit_diff(mixed_diff(), budget_tokens=budget)
    assert len(fitted.numbered) == len(fitted.kept)
    assert ("\n".join(fitted.numbered) if fitted.numbered else number_new_side(fitted.diff)) == \
        number_new_side(fitted.diff)


def test_an_unparseable_diff_has_no_numbered_files() -> None:
    fitted = fit_diff("not a diff\n", budget_tokens=1000)
    assert fitted.numbered == () and number_new_side(fitted.diff) == "not a diff\n"

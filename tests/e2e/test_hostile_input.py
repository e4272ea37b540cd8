"""Hostile input from repositories, end to end (the CLI against the emulators, SQLite and PostgreSQL):
a refused `.github/reviewer.yml` leaves the central config in force, is reported in one short line and
shown by `status`, and never holds up another repository; file names that git quotes get their inline
comments on the right file; files GitHub did not list are named as not reviewed; a pull request of only
renames or mode changes is skipped before it is sent and billed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import make_diff
from tests.conftest import Service, write_service
from tests.e2e.helpers import BEFORE, REPO, after_for, big_diff, diff_for, jobs, ok, own_reviews

OTHER = "acme/web"
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
HOSTILE_RULES = {
    "billion laughs": (LAUGHS, "aliases (*name) are not allowed"),
    "over 64 KiB": ("instructions: " + "x" * 70_000 + "\n", "over the 64 KiB limit"),
    "over 1 MB (GitHub sends no content)": ("instructions: " + "x" * 1_100_000 + "\n", "over the 64 KiB limit"),
    "template outside the folder": ("template: ../../../etc/passwd\n", "is not a template name"),
    "lookahead title pattern": ("skip: {title_patterns: ['(?=chore)']}\nseverity_threshold: critical\n", "RE2"),
    "deep nesting": ("[" * 60_000, "nested deeper than 20 levels"),
}


@pytest.fixture
def two_repos(tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> Service:
    for name in (REPO, OTHER):
        github.add_repo(name)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}, {"name": OTHER}])
    ok(svc.cli("db", "upgrade"))
    return svc


def system_prompts(service: Service) -> dict[str, str]:
    requests = [r for b in service.anthropic.batches.values() for r in b.requests]
    return {str(r["params"]["messages"][0]["content"]).split(" in ", 1)[1].split(":", 1)[0]:
            "".join(block["text"] for block in r["params"]["system"]) for r in requests}


@pytest.mark.parametrize("case", sorted(HOSTILE_RULES))
def test_a_refused_rules_file_leaves_the_central_config_and_holds_up_no_one(two_repos: Service, case: str) -> None:
    text, words = HOSTILE_RULES[case]
    gh = two_repos.github
    gh.add_file(REPO, ".github/reviewer.yml", text)
    gh.add_file(OTHER, ".github/reviewer.yml", "instructions: Check the web templates.\n")
    hostile = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    fine = gh.open_pull(OTHER, title="UI", diff=diff_for(2))
    started = time.perf_counter()
    collected = two_repos.cli("collect")
    assert time.perf_counter() - started < 10
    assert collected.exit_code == 1 and "queued 2" in collected.output
    (problem,) = [line for line in collected.stderr.splitlines() if line.startswith("  problem: ")]
    assert words in problem and "reviewing acme/api with the central config" in problem and len(problem) < 330
    section = ok(two_repos.cli("status")).split("Repository rules not applied (the central config is used):\n")[1]
    listed = [line for line in section.splitlines() if line.startswith("  ")]
    assert listed[0].startswith(f"  {REPO}: {REPO}:.github/reviewer.yml: ") and words in listed[0]
    assert not any(line.startswith(f"  {OTHER}:") for line in listed)
    two_repos.cli("cycle")
    (review,) = own_reviews(gh, REPO, hostile)
    assert ".github/reviewer.yml invalid, ignored" in review["body"] and review["comments"]  # central: all severities
    assert "Check the web templates." in system_prompts(two_repos)[OTHER]
    assert ".github/reviewer.yml (default branch)" in own_reviews(gh, OTHER, fine)[0]["body"]


def test_the_problem_leaves_status_once_the_file_is_fixed(two_repos: Service) -> None:
    gh = two_repos.github
    gh.add_file(REPO, ".github/reviewer.yml", "template: ../x\n")
    number = gh.open_pull(REPO, title="Search", diff=diff_for(1))
    two_repos.cli("collect")
    assert "Repository rules not applied" in ok(two_repos.cli("status"))
    gh.add_file(REPO, ".github/reviewer.yml", "instructions: Fixed.\n")
    gh.push(REPO, number, diff_for(1, version=2))
    ok(two_repos.cli("collect"))
    assert "Repository rules not applied" not in ok(two_repos.cli("status"))


def test_a_pattern_catastrophic_for_backtracking_cannot_stall_collection(service: Service) -> None:
    gh = service.github
    gh.add_file(REPO, ".github/reviewer.yml", "skip: {title_patterns: ['^(a+)+$', '(x+x+)+y']}\n")
    title = "a" * 200 + "!"  # Python's re would take longer than the age of the universe on ^(a+)+$
    number = gh.open_pull(REPO, title=title, diff=diff_for(1))
    skipped = gh.open_pull(REPO, title="aaaa", diff=diff_for(2))
    started = time.perf_counter()
    ok(service.cli("cycle"))
    assert time.perf_counter() - started < 30
    assert len(own_reviews(gh, REPO, number)) == 1 and gh.reviews(REPO, skipped) == []
    assert "title matches '^(a+)+$'" in ok(service.cli("status"))


QUOTED_NAMES = ["app/café.py", "app/my file.py", 'app/say "hi".py', "app/tab\tname.py", "app/new\nline.py",
                "app/back\\slash.py", "app/plain.py"]


def test_files_git_quotes_get_their_inline_comments_on_the_right_file(service: Service) -> None:
    diff = make_diff({name: (BEFORE, after_for(i)) for i, name in enumerate(QUOTED_NAMES, 1)})
    assert '+++ "b/app/caf\\303\\251.py"\n' in diff and "+++ b/app/my file.py\t\n" in diff
    gh = service.github
    number = gh.open_pull(REPO, title="Names", diff=diff)
    ok(service.cli("cycle"))
    (review,) = own_reviews(gh, REPO, number)
    assert "GitHub refused" not in review["body"]
    by_path = {c["path"]: c for c in review["comments"]}
    assert set(by_path) == set(QUOTED_NAMES)  # every file's SQL finding, inline, on its real path
    for index, name in enumerate(QUOTED_NAMES, 1):
        assert "SQL" in by_path[name]["body"]
        line = after_for(index).splitlines().index(next(ln for ln in after_for(index).splitlines() if "LIKE" in ln))
        assert by_path[name]["line"] == line + 1
    (request,) = [r for b in service.anthropic.batches.values() for r in b.requests]
    prompt = str(request["params"]["messages"][0]["content"])
    assert "+++ b/app/café.py" in prompt and "- app/my file.py\n" in prompt and '"b/app/tab\\tname.py"' in prompt


def test_files_github_did_not_list_are_named_as_not_reviewed(service: Service) -> None:
    number = service.github.open_pull(REPO, title="Generated", diff=big_diff(3002))
    output = ok(service.cli("collect"))
    assert "built from the file list (2 files not listed by GitHub, not reviewed)" in output
    (job,) = jobs(service.database_url)
    assert job.unlisted_files == 2 and "gen/file_2999.py" in job.diff and "gen/file_3000.py" not in job.diff
    ok(service.cli("cycle"))
    (review,) = own_reviews(service.github, REPO, number)
    assert "- 2 more files: GitHub did not list them (it lists at most 3,000 files of a pull request)" in review["body"]
    (request,) = [r for b in service.anthropic.batches.values() for r in b.requests]
    assert "GitHub did not list 2 more changed files" in str(request["params"]["messages"][0]["content"])


RENAMES = ("diff --git a/app/old.py b/app/new.py\nsimilarity index 100%\nrename from app/old.py\n"
           "rename to app/new.py\ndiff --git a/bin/run b/bin/run\nold mode 100644\nnew mode 100755\n")


@pytest.mark.parametrize("diff", [RENAMES, "".join(
    f"diff --git a/old/m{i:03}.py b/new/m{i:03}.py\nsimilarity index 100%\nrename from old/m{i:03}.py\n"
    f"rename to new/m{i:03}.py\n" for i in range(301))], ids=["diff", "file listing (over 300 files)"])
def test_a_pull_request_of_only_renames_and_mode_changes_is_skipped_unbilled(service: Service, diff: str) -> None:
    number = service.github.open_pull(REPO, title="Move things", diff=diff)
    ok(service.cli("cycle"))
    (job,) = jobs(service.database_url)
    assert job.state == "skipped" and (job.reason or "").startswith("no content to review: only ")
    assert service.anthropic.batches == {} and service.github.reviews(REPO, number) == []
    assert "no content to review" in ok(service.cli("status"))

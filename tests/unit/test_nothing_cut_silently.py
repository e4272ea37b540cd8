"""Nothing is cut silently: files GitHub did not list are counted in the prompt and the review, and a pull
request that changes no content (only renames, mode changes, empty files) is skipped with that reason
before it is sent and billed."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewer.config import settings_from_mapping
from reviewer.emulators.samples import make_diff
from reviewer.jobs import Prepared, prepare_request
from reviewer.models import ReviewJob
from reviewer.review.body import Footer
from reviewer.review.compose import ReviewContext, compose_review
from reviewer.review.diffs import FilePatch, diff_from_file_patches, index_diff, without_content
from reviewer.review.parse import ReviewDraft

RENAME = "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
QUOTED_RENAME = ('diff --git "a/caf\\303\\251.py" "b/th\\303\\251.py"\nsimilarity index 100%\n'
                 'rename from "caf\\303\\251.py"\nrename to "th\\303\\251.py"\n')
MODE = "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
EMPTY = make_diff({"pkg/__init__.py": (None, "")})
CONTENT = make_diff({"app.py": ("a = 1\n", "a = 2\n")})
BINARY = diff_from_file_patches([FilePatch("logo.png", "modified", None)])
SETTINGS = settings_from_mapping({"repositories": [{"name": "acme/api"}]}, "reviewer.yml", {}, Path("."))


@pytest.mark.parametrize(("diff", "reason"), [
    (RENAME, "no content to review: only 1 rename"),
    (RENAME + QUOTED_RENAME + MODE, "no content to review: only 1 mode change, 2 renames"),
    (MODE + MODE.replace("run.sh", "b.sh"), "no content to review: only 2 mode changes"),
    (EMPTY + RENAME, "no content to review: only 1 empty file, 1 rename"),
    (diff_from_file_patches([FilePatch("new.py", "renamed", None, "old.py", 0)] * 301),
     "no content to review: only 301 renames"),
    (RENAME + CONTENT, None),
    (MODE + BINARY, None),
    ("", None),
    ("not a diff", None),
])
def test_a_diff_without_content_says_what_it_changes(diff: str, reason: str | None) -> None:
    assert without_content(diff) == reason


def job(diff: str, unlisted: int = 0) -> ReviewJob:
    return ReviewJob(id=7, repository="acme/api", pr_number=3, head_sha="a" * 40, base_ref="main", head_ref="f",
                     title="Move files", author="alice", body="", url="", labels="", diff=diff, unlisted_files=unlisted)


@pytest.mark.parametrize("diff", [RENAME, RENAME + MODE, QUOTED_RENAME + EMPTY])
def test_a_pull_request_that_changes_no_content_is_not_sent(diff: str) -> None:
    reason = prepare_request(job(diff), SETTINGS, "rvtest")
    assert isinstance(reason, str) and reason.startswith("no content to review: only ")


def test_renames_next_to_binary_or_ignored_files_say_what_was_left_out() -> None:
    reason = prepare_request(job(RENAME + make_diff({"yarn.lock": (None, "x\n")})), SETTINGS, "rvtest")
    assert reason == "no content to review: only 1 rename; left out: yarn.lock: ignored by pattern 'yarn.lock'"


def test_a_rename_with_a_real_change_is_reviewed_whole() -> None:
    prepared = prepare_request(job(RENAME + CONTENT), SETTINGS, "rvtest")
    assert isinstance(prepared, Prepared)
    assert "+++ b/new.py" in prepared.request["params"]["messages"][0]["content"]


def test_the_prompt_says_how_many_files_github_did_not_list() -> None:
    prepared = prepare_request(job(CONTENT, unlisted=1234), SETTINGS, "rvtest")
    assert isinstance(prepared, Prepared)
    assert "GitHub did not list 1234 more changed files" in prepared.request["params"]["messages"][0]["content"]


def test_the_review_says_how_many_files_were_not_listed_and_lists_them_first() -> None:
    ctx = ReviewContext(Footer("claude-opus-4-7", 1, 2, "a" * 40), "<!-- reviewer:job=1 head=a -->", "c",
                        omitted=(("yarn.lock", "ignored"),), unlisted=1500)
    body = compose_review(ReviewDraft("s", ()), index_diff(CONTENT), ctx).body
    assert "### Not reviewed (1,501 files)\n- 1,500 more files: GitHub did not list them (it lists at most 3,000" \
           " files of a pull request)\n- `yarn.lock`: ignored" in body

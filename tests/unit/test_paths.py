"""Paths are GitHub's paths: git's C-quoted file names (core.quotePath) decoded for the prompt, for
anchoring, for trimming and for the inline comment's path; a diff rebuilt from the file listing quotes
them as git does. The expected headers below are what `git diff` 2.39 printed for these names."""

from __future__ import annotations

import json

import pytest

from reviewer.emulators.samples import git_quote, git_unquote, make_diff
from reviewer.review.diffs import FilePatch, changed_files, diff_from_file_patches, index_diff, number_new_side
from reviewer.review.parse import parse_review
from reviewer.review.paths import header_name, quote, shown, strip_side, unquote
from reviewer.review.trim import fit_diff

UNLIMITED = 10**9

# real path -> (the name on git's `diff --git` line, the name on its `+++` line, tab included)
GIT_NAMES = {
    "café.py": ('"a/caf\\303\\251.py"', '"b/caf\\303\\251.py"'),
    "my file.py": ("a/my file.py", "b/my file.py\t"),
    "new é.py": ('"a/new \\303\\251.py"', '"b/new \\303\\251.py"\t'),
    'quo"te.py': ('"a/quo\\"te.py"', '"b/quo\\"te.py"'),
    "tab\there.py": ('"a/tab\\there.py"', '"b/tab\\there.py"'),
    "new\nline.py": ('"a/new\\nline.py"', '"b/new\\nline.py"'),
    "back\\slash.py": ('"a/back\\\\slash.py"', '"b/back\\\\slash.py"'),
    "plain.py": ("a/plain.py", "b/plain.py"),
}


@pytest.mark.parametrize("path", sorted(GIT_NAMES))
def test_names_are_quoted_and_read_back_exactly_as_git_writes_them(path: str) -> None:
    git_line, plus_line = GIT_NAMES[path]
    assert quote(path, "a/") == git_line and header_name(path, "b/") == plus_line
    assert unquote(git_line) == "a/" + path and strip_side(git_line) == path
    # the emulator's own implementation agrees with git too
    assert git_quote("a/", path) == git_line and git_unquote(git_line) == "a/" + path
    diff = make_diff({path: ("x = 1\n", "x = 2\n")})
    assert diff.startswith(f"diff --git {git_line} {git_line.replace('a/', 'b/', 1)}\n")
    assert f"\n+++ {plus_line}\n" in diff


@pytest.mark.parametrize("name", ["plain.py", '"unterminated', '"bad \\q escape"', '"é"', '""'])
def test_a_name_git_did_not_quote_is_left_as_it_is(name: str) -> None:
    assert unquote(name) == (name if name != '""' else "")


def test_shown_keeps_a_path_readable_and_on_one_line() -> None:
    assert shown("café.py") == "café.py" and shown("my file.py") == "my file.py"
    assert shown("tab\there.py") == '"tab\\there.py"' and unquote(shown("new\nline.py")) == "new\nline.py"


def quoted_diff() -> str:
    return make_diff({path: ("a = 1\nb = 2\n", "a = 1\nb = 3\n") for path in GIT_NAMES})


def test_diff_index_and_changed_files_use_the_real_paths() -> None:
    diff = quoted_diff()
    assert sorted(changed_files(diff)) == sorted(GIT_NAMES)
    index = index_diff(diff)
    assert set(index.files) == set(GIT_NAMES)
    assert all(index.line(path, 2) is not None for path in GIT_NAMES)


def test_the_prompt_shows_real_paths_and_quotes_only_control_characters() -> None:
    numbered = number_new_side(quoted_diff())
    assert "+++ b/café.py\n" in numbered and "+++ b/my file.py\n" in numbered and '+++ b/quo"te.py' in numbered
    assert '+++ "b/tab\\there.py"' in numbered and '+++ "b/new\\nline.py"' in numbered
    assert "\\303" not in numbered


def test_trimming_names_and_ignores_files_by_their_real_paths() -> None:
    diff = quoted_diff() + make_diff({"vendor/ünï.py": (None, "x = 1\n")})
    fitted = fit_diff(diff, ignore=["tab*", "vendor/"], budget_tokens=UNLIMITED)
    assert sorted(fitted.kept) == sorted(set(GIT_NAMES) - {"tab\there.py"})
    assert {o.path: o.reason for o in fitted.omitted} == {
        "tab\there.py": "ignored by pattern 'tab*'", "vendor/ünï.py": "ignored by pattern 'vendor/'"}


def test_the_model_may_answer_with_the_quoted_form_or_a_b_prefix() -> None:
    findings = [{"path": name, "line": 2, "severity": "high", "title": "t", "body": "b"}
                for name in ('"b/tab\\there.py"', '"new\\nline.py"', "b/café.py", "/my file.py")]
    content = json.dumps([{"type": "tool_use", "id": "t", "name": "report_review",
                           "input": {"summary": "s", "findings": findings}}])
    paths = [f.path for f in parse_review(content, "tool_use").findings]
    assert paths == ["tab\there.py", "new\nline.py", "café.py", "my file.py"]


def test_a_diff_rebuilt_from_the_file_listing_quotes_like_git_and_parses_to_the_same_paths() -> None:
    patch = "@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n+b = 3\n"
    rebuilt = diff_from_file_patches([FilePatch(path, "modified", patch) for path in GIT_NAMES])
    for git_line, plus_line in GIT_NAMES.values():
        assert f"diff --git {git_line} {git_line.replace('a/', 'b/', 1)}\n" in rebuilt
        assert f"\n+++ {plus_line}\n" in rebuilt
    assert sorted(changed_files(rebuilt)) == sorted(GIT_NAMES) and set(index_diff(rebuilt).files) == set(GIT_NAMES)


def test_a_rename_without_changes_from_the_listing_is_a_rename_not_a_binary_file() -> None:
    rebuilt = diff_from_file_patches([FilePatch("src/thé.py", "renamed", None, "src/café.py", 0),
                                      FilePatch("big.py", "renamed", None, "old_big.py", 12000)])
    assert 'rename from "src/caf\\303\\251.py"\nrename to "src/th\\303\\251.py"\n' in rebuilt
    assert "Binary files a/old_big.py and b/big.py differ" in rebuilt  # changed, but GitHub sent no patch
    assert changed_files(rebuilt) == ["src/thé.py", "big.py"]

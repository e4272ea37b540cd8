""".github/reviewer.yml is untrusted: bounded parsing (size, aliases, nesting), template names that can
only name a template in the templates folder, title patterns matched in linear time; every refusal is one
ConfigError line naming the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reviewer.config import settings_from_mapping
from reviewer.errors import ConfigError
from reviewer.github import PullSummary
from reviewer.rules import (
    MAX_PROBLEM_CHARS,
    MAX_RULES_BYTES,
    apply_rules,
    one_line,
    parse_repo_rules,
    skip_reason,
)

SOURCE = "acme/api:.github/reviewer.yml"
SETTINGS = settings_from_mapping({"repositories": [{"name": "acme/api"}]}, "reviewer.yml", {}, Path("."))
REPO = SETTINGS.repositories[0]
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))


def refusal(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        apply_rules(REPO, parse_repo_rules(text, SOURCE), SETTINGS, SOURCE)
    assert info.value.message.startswith(SOURCE) and "\n" not in info.value.message
    return info.value


def fast(seconds: float, text: str) -> ConfigError:
    started = time.perf_counter()
    error = refusal(text)
    assert time.perf_counter() - started < seconds
    return error


def test_billion_laughs_is_refused_at_the_first_alias() -> None:
    assert "aliases (*name) are not allowed" in fast(0.1, LAUGHS).message


def test_a_merge_key_is_an_alias_too() -> None:
    assert "aliases" in refusal("base: &b {labels: [x]}\nskip:\n  <<: *b\n").message


def test_the_file_is_at_most_64_kib() -> None:
    head = "instructions: "
    assert parse_repo_rules(head + "x" * (MAX_RULES_BYTES - len(head)), SOURCE).instructions
    assert "over the 64 KiB limit" in fast(0.1, head + "x" * (MAX_RULES_BYTES - len(head) + 1)).message
    assert "over the 64 KiB limit" in refusal(head + "é" * (MAX_RULES_BYTES // 2)).message  # bytes, not characters


@pytest.mark.parametrize("text", ["[" * (MAX_RULES_BYTES - 1), "{a: " * 5000, "a:\n" + "".join(
    "  " * i + f"k{i}:\n" for i in range(1, 60))])
def test_deep_nesting_is_refused_within_the_size_bound(text: str) -> None:
    assert "nested deeper than 20 levels" in fast(3.0, text).message


@pytest.mark.parametrize(("text", "words"), [
    ("instructions: 1" + "0" * 5000 + "\n", "cannot be read"),  # more digits than Python converts
    ("!!python/object/apply:os.system [echo]\n", "not valid YAML"),
    ("- a\n", "must be a mapping"),
    ("\tbad: indent\n", "not valid YAML"),
])
def test_unreadable_files_are_one_line(text: str, words: str) -> None:
    assert words in refusal(text).message


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", "sub/review", "re.view", "a b", "",
                                  "x" * 101, "..", "review\n"])
def test_a_template_name_can_only_name_a_template_in_the_folder(name: str) -> None:
    error = refusal(f"template: {name!r}\n" if name else "template: ''\n")
    assert error.key == "template" and "letters, digits, _ and -" in error.message


def test_a_plain_template_name_is_looked_up() -> None:
    assert "no template 'terse_v2-1' is installed" in refusal("template: terse_v2-1\n").message


@pytest.mark.parametrize(("patterns", "words"), [
    (["(?=chore)"], "RE2 syntax: no lookarounds or backreferences"),
    (["(a)\\1"], "RE2 syntax"),
    (["((a{100}){100}){100}"], "invalid repetition size"),
    (["a"] * 51, "at most 50"),
    (["a" * 501], "at most 500"),
])
def test_title_patterns_that_could_cost_collection_are_refused(patterns: list[str], words: str) -> None:
    error = refusal("skip:\n  title_patterns:\n" + "".join(f"    - '{p}'\n" for p in patterns))
    assert error.key == "skip.title_patterns" and words in error.message


def pull(title: str) -> PullSummary:
    return PullSummary(1, title, "alice", "User", False, "open", False, "a" * 40, "f", "b" * 40, "main", "", "", ())


def test_a_catastrophic_pattern_for_backtracking_engines_matches_in_linear_time() -> None:
    rules = parse_repo_rules("skip: {title_patterns: ['^(a+)+$', '(x+x+)+y']}\n", SOURCE)
    repo = apply_rules(REPO, rules, SETTINGS, SOURCE)
    started = time.perf_counter()
    assert skip_reason(pull("a" * 5000 + "!"), repo.skip) is None  # Python's re would run for ages
    assert skip_reason(pull("x" * 5000), repo.skip) is None
    assert time.perf_counter() - started < 0.5
    assert skip_reason(pull("A" * 30), repo.skip) == "title matches '^(a+)+$'"  # case-insensitive


def test_problems_are_cut_to_one_short_line() -> None:
    assert one_line("a\nb\tc") == "a b c"
    cut = one_line("x " * 1000)
    assert len(cut) == MAX_PROBLEM_CHARS and cut.endswith("…")

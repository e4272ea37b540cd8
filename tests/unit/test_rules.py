"""Per-repository rules and skip rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewer.config import Skip, settings_from_mapping
from reviewer.errors import ConfigError
from reviewer.github import PullSummary
from reviewer.rules import apply_rules, parse_repo_rules, skip_reason

SETTINGS = settings_from_mapping({"repositories": [{"name": "acme/api", "instructions": "Central."}]},
                                 "reviewer.yml", {}, Path("."))
REPO = SETTINGS.repositories[0]


def pr(**changes: object) -> PullSummary:
    base = dict(number=1, title="Add search", author="alice", author_type="User", draft=False, state="open",
                merged=False, head_sha="a" * 40, head_ref="f", base_sha="b" * 40, base_ref="main", body="",
                url="", labels=())
    base.update(changes)
    return PullSummary(**base)  # type: ignore[arg-type]


def test_repo_rules_override_central_settings() -> None:
    rules = parse_repo_rules("instructions: Use pytest.\nignore: ['*.snap']\nmodel: claude-sonnet-4-6\n"
                             "severity_threshold: high\nskip: {labels: [later]}\n", "acme/api:.github/reviewer.yml")
    repo = apply_rules(REPO, rules, SETTINGS, "x")
    assert repo.model == "claude-sonnet-4-6" and repo.severity_threshold == "high"
    assert repo.instructions == "Central.\n\nUse pytest." and "*.snap" in repo.ignore
    assert repo.skip.labels == ("later",) and repo.skip.bots


@pytest.mark.parametrize("text,key", [
    ("modle: x\n", "modle"),
    ("model: gpt-9\n", "model"),
    ("template: nope\n", "template"),
    ("severity_threshold: urgent\n", "severity_threshold"),
    ("skip: {title_patterns: ['(']}\n", "skip.title_patterns"),
    ("ignore: ['!']\n", "ignore"),
    ("- a\n", ""),
    ("a: [\n", ""),
])
def test_invalid_repo_rules_name_the_file_and_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_rules(REPO, parse_repo_rules(text, "acme/api:.github/reviewer.yml"), SETTINGS,
                    "acme/api:.github/reviewer.yml")
    assert info.value.key == key and "acme/api:.github/reviewer.yml" in info.value.message


@pytest.mark.parametrize("changes,words", [
    ({"draft": True}, "draft"),
    ({"author": "dependabot[bot]", "author_type": "Bot"}, "bot"),
    ({"labels": ("no-review",)}, "labelled 'no-review'"),
    ({"title": "[WIP] half done"}, "title matches"),
    ({"author": "mallory"}, "skip list"),
    ({}, None),
])
def test_skip_rules(changes: dict[str, object], words: str | None) -> None:
    skip = Skip(drafts=True, bots=True, labels=("no-review",), title_patterns=(r"^\s*\[?wip\b",),
                authors=("mallory",))
    reason = skip_reason(pr(**changes), skip)
    assert (reason is None) if words is None else (words in (reason or ""))

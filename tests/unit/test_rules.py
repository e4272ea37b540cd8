"""Per-repository rules and skip rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reviewer.config import Skip, settings_from_mapping
from reviewer.errors import ConfigError
from reviewer.github import PullSummary
from reviewer.options import RepoOptions
from reviewer.rules import apply_rules, parse_repo_rules, rules_from_json, rules_to_json, skip_reason

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


# option: (value under defaults, value in the override, result after a repositories[] entry with it, result after
# .github/reviewer.yml with it, None: the file may not set it). Replace, except: ignore concatenates, instructions
# from the repository file are appended after a blank line, skip merges key by key (a defaults.skip replaces the
# built-in one whole, so its title_patterns are gone here).
MERGED_SKIP = Skip(drafts=False, bots=False, labels=("b",))
MERGES: dict[str, tuple[Any, Any, Any, Any]] = {
    "model": ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-haiku-4-5", "claude-haiku-4-5"),
    "max_tokens": (1000, 2000, 2000, None),
    "schedule": ("0 3 * * *", "weekly", "0 2 * * 1", None),
    "template": ("review", "terse", "terse", "terse"),
    "instructions": ("Central.", "Local.", "Local.", "Central.\n\nLocal."),
    "max_attempts": (4, 5, 5, None),
    "ignore": (["a/**"], ["b/**"], ("a/**", "b/**"), ("a/**", "b/**")),
    "severity_threshold": ("medium", "high", "high", "high"),
    "max_inline_comments": (10, 0, 0, 0),
    "review_mode": ("full", "incremental", "incremental", "incremental"),
    "skip": ({"bots": False, "labels": ["a"]}, {"labels": ["b"], "drafts": False}, MERGED_SKIP, MERGED_SKIP),
    "token_budget": (9000, 5000, 5000, None),
    "hard_limit_tokens": (9000, 2000, 2000, None),
    "read_repo_config": (False, True, True, None),
    "prompt_caching": (True, False, False, None),
    "cache_ttl": ("5m", "1h", "1h", None),
    "express_label": ("go", "", "", None),
}


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    for part in ("system", "user"):
        (tmp_path / "prompts" / f"terse.{part}.j2").write_text("{{ repo }}")
    return tmp_path


def test_the_merge_table_covers_every_option() -> None:
    assert set(MERGES) == set(RepoOptions.model_fields)


@pytest.mark.parametrize("option", sorted(MERGES))
def test_defaults_then_entry_merge(option: str, prompts: Path) -> None:
    base, override, expected, _ = MERGES[option]
    raw = {"prompts_dir": "prompts", "defaults": {option: base},
           "repositories": [{"name": "acme/api", option: override}, {"name": "acme/web"}]}
    api, web = settings_from_mapping(raw, "reviewer.yml", {}, prompts).repositories
    assert getattr(api, option) == expected
    assert getattr(web, option) == getattr(RepoOptions.model_validate({option: base}), option)


@pytest.mark.parametrize("option", sorted(MERGES))
def test_central_then_repository_file_merge(option: str, prompts: Path) -> None:
    base, override, _, expected = MERGES[option]
    settings = settings_from_mapping({"prompts_dir": "prompts", "defaults": {option: base},
                                      "repositories": [{"name": "acme/api"}]}, "reviewer.yml", {}, prompts)
    text = yaml.safe_dump({option: override})
    if expected is None:
        with pytest.raises(ConfigError, match="unknown key"):
            parse_repo_rules(text, "acme/api:.github/reviewer.yml")
        return
    rules = parse_repo_rules(text, "acme/api:.github/reviewer.yml")
    repo = apply_rules(settings.repositories[0], rules, settings, "acme/api:.github/reviewer.yml")
    assert getattr(repo, option) == expected
    assert rules_from_json(rules_to_json(rules)) == rules


def test_rules_stored_by_older_versions_read_back() -> None:
    stored = ('{"ignore": ["*.snap"], "instructions": "Use pytest.", "max_inline_comments": 5, '
              '"skip": {"labels": ["later"], "title_patterns": ["^chore"]}}')
    rules = rules_from_json(stored)
    assert rules_to_json(rules) == stored
    repo = apply_rules(REPO, rules, SETTINGS, "x")
    assert repo.skip.labels == ("later",) and repo.skip.title_patterns == ("^chore",) and repo.skip.drafts
    assert repo.ignore == ("*.snap",) and repo.max_inline_comments == 5

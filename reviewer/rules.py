"""Per-repository review rules, pure: `.github/reviewer.yml` as read from the repository's default
branch (never from the pull request's head, so a PR cannot rewrite its own review rules) laid over
the central settings, and the skip rules that decide which pull requests are not reviewed.

Invariants: the file may set only the options that `reviewer.options` marks `repo_file` (`ReviewRules`
is derived from that declaration), and they combine with the central settings by the same
`options.merge` as `defaults` and a `repositories[]` entry. Rules stored as JSON by any version read back.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import yaml

from reviewer.config import RepoSettings, ReviewRules, Settings, Skip
from reviewer.errors import ConfigError
from reviewer.options import check_patterns, merge, validated
from reviewer.review.render import template_exists

if TYPE_CHECKING:
    from reviewer.github import PullSummary

REPO_CONFIG_PATH = ".github/reviewer.yml"


def parse_repo_rules(text: str, source: str) -> ReviewRules:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "the top level must be a mapping (instructions, ignore, skip, ...)")
    return validated(ReviewRules, raw, source)


def apply_rules(repo: RepoSettings, rules: ReviewRules, settings: Settings, source: str) -> RepoSettings:
    """The central settings with the repository's own rules on top; invalid values are a ConfigError
    naming the repository file and key (the central values are valid already)."""
    merged = merge(repo, rules)
    if merged.model not in settings.prices.models:
        raise ConfigError(source, "model", f"unknown model {merged.model!r}; use one of the price table's models")
    if merged.template != repo.template and not template_exists(merged.template, settings.prompts_dir):
        raise ConfigError(source, "template", f"no template {merged.template!r} is installed")
    check_patterns(source, "", merged)
    return merged


def rules_to_json(rules: ReviewRules | None) -> str | None:
    return None if rules is None else json.dumps(rules.model_dump(mode="json", exclude_none=True), sort_keys=True)


def rules_from_json(text: str | None) -> ReviewRules:
    return ReviewRules.model_validate(json.loads(text)) if text else ReviewRules()


def skip_reason(pr: PullSummary, skip: Skip) -> str | None:
    """Why this pull request is not reviewed, or None."""
    if skip.drafts and pr.draft:
        return "draft: reviewed once marked ready for review"
    if skip.bots and (pr.author_type == "Bot" or pr.author.endswith("[bot]")):
        return f"opened by the bot {pr.author}"
    if pr.author in skip.authors:
        return f"author {pr.author} is in the skip list"
    for label in pr.labels:
        if label in skip.labels:
            return f"labelled {label!r}"
    for pattern in skip.title_patterns:
        if re.search(pattern, pr.title, re.IGNORECASE):
            return f"title matches {pattern!r}"
    return None

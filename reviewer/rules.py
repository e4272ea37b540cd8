"""Per-repository review rules, pure: `.github/reviewer.yml` as read from the repository's default
branch (never from the pull request's head, so a PR cannot rewrite its own review rules) laid over
the central settings, and the skip rules that decide which pull requests are not reviewed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import yaml
from pydantic import ValidationError

from reviewer.config import RepoSettings, ReviewRules, Settings, Skip, _check_ignore, _pydantic_error_line
from reviewer.errors import ConfigError
from reviewer.github import PullSummary
from reviewer.review.render import template_exists

REPO_CONFIG_PATH = ".github/reviewer.yml"


def parse_repo_rules(text: str, source: str) -> ReviewRules:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "the top level must be a mapping (instructions, ignore, skip, ...)")
    try:
        return ReviewRules.model_validate(raw)
    except ValidationError as exc:
        raise _pydantic_error_line(source, exc) from None


def apply_rules(repo: RepoSettings, rules: ReviewRules, settings: Settings, source: str) -> RepoSettings:
    """The central settings with the repository's own rules on top; invalid values are a ConfigError
    naming the repository file and key."""
    if rules.model is not None and rules.model not in settings.prices.models:
        raise ConfigError(source, "model", f"unknown model {rules.model!r}; use one of the price table's models")
    if rules.template is not None and not template_exists(rules.template, settings.prompts_dir):
        raise ConfigError(source, "template", f"no template {rules.template!r} is installed")
    _check_ignore(source, "ignore", list(rules.ignore or ()))
    skip = repo.skip
    if rules.skip is not None:
        for pattern in rules.skip.title_patterns or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(source, "skip.title_patterns", f"{pattern!r} is not a valid regular expression "
                                  f"({exc})") from None
        overrides: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                     for k, v in rules.skip.model_dump(exclude_none=True).items()}
        skip = dataclasses.replace(skip, **overrides)
    instructions = repo.instructions
    if rules.instructions:
        instructions = f"{instructions}\n\n{rules.instructions}".strip()
    return dataclasses.replace(
        repo,
        model=rules.model or repo.model,
        template=rules.template or repo.template,
        instructions=instructions,
        ignore=repo.ignore + tuple(rules.ignore or ()),
        severity_threshold=rules.severity_threshold or repo.severity_threshold,
        max_inline_comments=repo.max_inline_comments if rules.max_inline_comments is None
        else rules.max_inline_comments,
        review_mode=rules.review_mode or repo.review_mode,
        skip=skip,
    )


def rules_to_json(rules: ReviewRules | None) -> str | None:
    return None if rules is None else json.dumps(rules.model_dump(exclude_none=True), sort_keys=True)


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


def describe_source(central: str, repo_file: str | None) -> str:
    return central if repo_file is None else f"{central} + {repo_file}"


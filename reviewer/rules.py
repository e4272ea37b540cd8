"""Per-repository review rules, pure: `.github/reviewer.yml` as read from the repository's default
branch (never from the pull request's head, so a PR cannot rewrite its own review rules) laid over
the central settings, and the skip rules that decide which pull requests are not reviewed.

Invariants: the file may set only the options that `reviewer.options` marks `repo_file` (`ReviewRules`
is derived from that declaration), and they combine with the central settings by the same
`options.merge` as `defaults` and a `repositories[]` entry. Rules stored as JSON by any version read back.

The file is untrusted (anyone who can push to the default branch writes it), so reading it is bounded:
at most 64 KiB; YAML aliases are refused (no "billion laughs") and nesting stops at 20 levels, so the
document built is no bigger than the file and parsing ends within about a second whatever it holds; a
template is named by `[A-Za-z0-9_-]` only, so it can only be one in the templates folder; at most 50
title patterns of at most 500 characters, matched by RE2 in linear time (`options.title_regex`). Any
problem is one ConfigError line, and the whole file is then ignored (the central config applies to every
key); `one_line` cuts the line for reports and `status`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import yaml
from yaml.composer import ComposerError
from yaml.nodes import Node

from reviewer.config import RepoSettings, ReviewRules, Settings, Skip
from reviewer.errors import ConfigError
from reviewer.options import check_patterns, merge, title_regex, validated
from reviewer.review.render import template_exists

if TYPE_CHECKING:
    from reviewer.github import PullSummary

REPO_CONFIG_PATH = ".github/reviewer.yml"
MAX_RULES_BYTES = 64 * 1024
MAX_DEPTH = 20
MAX_TITLE_PATTERNS = 50
MAX_PATTERN_CHARS = 500
MAX_PROBLEM_CHARS = 300
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (an alias is how "billion laughs" multiplies a document) and
    without nesting deeper than MAX_DEPTH (the composer recurses once per level)."""

    depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            raise ComposerError(None, None, "aliases (*name) are not allowed; write the value out",
                                self.get_mark())
        if self.depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def check_size(size: int, source: str) -> None:
    if size > MAX_RULES_BYTES:
        raise ConfigError(source, "", f"{size:,} bytes is over the {MAX_RULES_BYTES // 1024} KiB limit; shorten it")


def parse_repo_rules(text: str, source: str) -> ReviewRules:
    """The rules of a repository file, read as untrusted input (see the module's invariants)."""
    check_size(len(text.encode("utf-8", "surrogateescape")), source)
    raw = _load(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "the top level must be a mapping (instructions, ignore, skip, ...)")
    rules = validated(ReviewRules, raw, source)
    _check_untrusted(rules, source)
    return rules


def _load(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_BoundedLoader) or {}  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(source, "", f"not valid YAML: {getattr(exc, 'problem', exc)}{where}") from None
    except (ValueError, RecursionError) as exc:  # an integer of more digits than Python converts
        raise ConfigError(source, "", f"a value cannot be read ({str(exc)[:60]}); shorten it") from None


def _check_untrusted(rules: ReviewRules, source: str) -> None:
    """What only a file from the repository may not do: name a template outside the templates folder,
    or bring more title patterns, or longer ones, than collection should spend time on."""
    if rules.template is not None and not TEMPLATE_NAME.fullmatch(rules.template):
        raise ConfigError(source, "template", f"{rules.template[:100]!r} is not a template name; use letters, "
                          "digits, _ and - only (the name of a template in the templates folder)")
    patterns = rules.skip.title_patterns if rules.skip is not None and rules.skip.title_patterns else ()
    if len(patterns) > MAX_TITLE_PATTERNS:
        raise ConfigError(source, "skip.title_patterns", f"{len(patterns)} patterns; at most {MAX_TITLE_PATTERNS}")
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ConfigError(source, "skip.title_patterns", f"{pattern[:60]!r}... has {len(pattern):,} characters; "
                              f"at most {MAX_PATTERN_CHARS}")


def one_line(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """`text` on one line of at most `limit` characters (cut with an ellipsis)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


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
        if title_regex(pattern).search(pr.title):  # RE2: linear in the title, whatever the pattern
            return f"title matches {pattern!r}"
    return None

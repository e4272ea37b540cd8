"""Configuration: one YAML file (`--config`, else `REVIEWER_CONFIG`, else ./reviewer.yml) plus the
environment, validated completely at start-up into a frozen `Settings`.

Precedence: command-line flag, then environment (`REVIEWER_DATABASE_URL`, `GITHUB_API_URL`,
`ANTHROPIC_BASE_URL`), then the file, then the defaults (below; the per-repository options and their
defaults are declared once, in `reviewer.options`). Secrets (`GITHUB_TOKEN`, `ANTHROPIC_API_KEY`) come
only from the environment. Every mistake becomes one `ConfigError` line that names the key and what to
put there instead.

Paths in the file are relative to the file's folder (`prompts_dir`, `github.private_key_path`, a SQLite
`database_url`, the default one included), so the same config run from cron in another directory uses the
same database; paths from the environment are relative to the working directory. `Settings.database_url`
always holds an absolute SQLite path.

Repository names are case-insensitive, as on GitHub: two entries that differ only in case are refused,
and `Settings.repo` finds a repository whatever the case; the configured spelling is the one stored.

A repository's settings are `defaults` merged with its `repositories[]` entry by `options.merge`; only
the facts a field cannot check alone (owner/name, model priced, template installed, patterns valid, cron
valid) are checked here. The old `skip_drafts` is read as `skip.drafts`, with one deprecation line per use.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from reviewer.cost import PriceTable, load_price_table
from reviewer.errors import ConfigError
from reviewer.options import RepoEntry, RepoOptions, Strict, check_patterns, merge, validated
from reviewer.options import RepoSettings as RepoSettings  # re-exported: the names the rest of the code imports
from reviewer.options import ReviewRules as ReviewRules
from reviewer.options import Skip as Skip
from reviewer.review.render import template_exists

DEFAULT_CONFIG_PATH = "reviewer.yml"
DEFAULT_DATABASE_URL = "sqlite:///reviewer.db"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
NAMED_SCHEDULES = {"nightly": "0 2 * * *", "weekly": "0 2 * * 1"}
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$")  # not . or ..
log = logging.getLogger("reviewer.config")


class Intervals(Strict):
    collect_seconds: float = Field(default=300, gt=0)
    poll_seconds: float = Field(default=120, gt=0)
    post_seconds: float = Field(default=120, gt=0)
    lease_seconds: float = Field(default=600, gt=0)


class GitHubOptions(Strict):
    api_url: str | None = None
    request_pause_seconds: float = Field(default=0.0, ge=0)
    write_pause_seconds: float = Field(default=1.0, ge=0)  # ~60 reviews/min, under GitHub's 80/min
    # how old the listing of open pull requests may be when it says a pull request is still open at its head,
    # right before a review is posted on it (older: listed again, a free 304 when unchanged)
    freshness_seconds: float = Field(default=10.0, ge=0)
    timeout_seconds: float = Field(default=30, gt=0)
    max_wait_seconds: float = Field(default=120, ge=0)  # longer rate-limit waits are deferred, never slept
    app_id: int | None = Field(default=None, ge=1)  # GitHub App instead of GITHUB_TOKEN (see _github_app)
    private_key_path: str | None = None  # relative to the config file
    installation_id: int | None = Field(default=None, ge=1)  # default: looked up per repository


class AnthropicOptions(Strict):
    base_url: str | None = None
    timeout_seconds: float = Field(default=600, gt=0)
    max_queued_requests: int = Field(default=100_000, ge=1)  # the organisation's batch queue limit
    count_tokens: bool = True  # measure dry runs with the count_tokens endpoint where reachable
    # after a create without a definite answer, how long a request still in flight gets before the API is asked
    create_grace_seconds: float = Field(default=10, ge=0, le=300)


class BudgetOptions(Strict):
    monthly_usd: float | None = Field(default=None, ge=0)  # all repositories together; None = no limit
    warn_at: float = Field(default=0.8, gt=0, le=1)
    over_budget: Literal["wait", "skip"] = "wait"  # jobs that do not fit wait for next month, or are skipped


class MetricsOptions(Strict):
    """`reviewer run`'s /healthz and /metrics server; port 0 picks a free port (logged at start)."""

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    enabled: bool = True


class FileConfig(Strict):
    database_url: str | None = None
    timezone: str = "UTC"
    prompts_dir: str | None = None
    defaults: RepoOptions = RepoOptions()
    repositories: list[RepoEntry] = Field(default_factory=list)
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    intervals: Intervals = Intervals()
    github: GitHubOptions = GitHubOptions()
    anthropic: AnthropicOptions = AnthropicOptions()
    budget: BudgetOptions = BudgetOptions()
    metrics: MetricsOptions = MetricsOptions()


@dataclass(frozen=True)
class GitHubApp:
    """A GitHub App's credentials; the key is PEM text, already checked to be a private key."""

    app_id: int
    private_key: str = field(repr=False)
    installation_id: int | None = None


@dataclass(frozen=True)
class Settings:
    source: str
    database_url: str
    timezone: str
    prompts_dir: Path | None
    repositories: tuple[RepoSettings, ...]
    prices: PriceTable
    intervals: Intervals
    github_api_url: str
    github_token: str | None
    github: GitHubOptions
    anthropic_base_url: str | None
    anthropic_api_key: str | None
    anthropic: AnthropicOptions
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    github_app: GitHubApp | None = None

    def repo(self, name: str) -> RepoSettings:
        """The configured repository `name` (compared case-insensitively, as GitHub does)."""
        for repo in self.repositories:
            if same_repository(repo.name, name):
                return repo
        raise ConfigError(self.source, "repositories", f"{name} is not configured; add it to the file")


def same_repository(a: str, b: str) -> bool:
    """GitHub's owner/name are case-insensitive: `acme/api` and `ACME/Api` are one repository."""
    return a.casefold() == b.casefold()


def _cron(source: str, key: str, schedule: str, timezone: str) -> str:
    expression = NAMED_SCHEDULES.get(schedule, schedule)
    try:
        CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))
    except ValueError as exc:
        raise ConfigError(
            source, key, f"{schedule!r} is not nightly, weekly or a valid 5-field cron expression ({exc})"
        ) from None
    return expression


def _merge_repo(source: str, index: int, entry: RepoEntry, file: FileConfig, prices: PriceTable,
                prompts_dir: Path | None) -> RepoSettings:
    key = f"repositories[{index}]"
    if not REPO_NAME.match(entry.name):
        raise ConfigError(source, f"{key}.name", f"{entry.name!r} is not an owner/name repository")
    merged = merge(file.defaults, entry)
    if merged.model not in prices.models:
        raise ConfigError(source, f"{key}.model", f"unknown model {merged.model!r}; known: "
                          f"{', '.join(sorted(prices.models))} (or add it under prices:)")
    template = merged.template
    if not template_exists(template, prompts_dir):
        raise ConfigError(source, f"{key}.template", f"no template {template!r}: expected "
                          f"{template}.system.j2 and {template}.user.j2 in prompts_dir or the built-in prompts")
    check_patterns(source, f"{key}.", merged)
    budget = None if entry.monthly_budget_usd is None else round(entry.monthly_budget_usd * 1e6)
    return RepoSettings(**{**dict(merged), "name": entry.name, "monthly_budget_micro_usd": budget,
                           "schedule": _cron(source, f"{key}.schedule", merged.schedule, file.timezone)})


def _skip_drafts_alias(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The old top-level `skip_drafts` (in `defaults` and in `repositories[]` entries) is `skip.drafts`;
    each use logs one deprecation line."""
    raw = dict(raw)
    if isinstance(raw.get("defaults"), Mapping):
        raw["defaults"] = _alias(raw["defaults"], source, "defaults", RepoOptions().skip.model_dump())
    if isinstance(raw.get("repositories"), list):
        raw["repositories"] = [_alias(entry, source, f"repositories[{i}]", {}) if isinstance(entry, Mapping)
                               else entry for i, entry in enumerate(raw["repositories"])]
    return raw


def _alias(section: Mapping[str, Any], source: str, key: str, inherited: Mapping[str, Any]) -> Mapping[str, Any]:
    """`skip_drafts: x` becomes `skip.drafts: x` unless `skip.drafts` is set; `inherited` is what an
    absent `skip` means in this section."""
    if "skip_drafts" not in section:
        return section
    rest = {name: value for name, value in section.items() if name != "skip_drafts"}
    drafts = section["skip_drafts"]
    log.warning("%s: %s.skip_drafts is deprecated; write skip: {drafts: %s}", source, key,
                json.dumps(drafts, default=str))
    skip = rest.get("skip")
    if skip is None or (isinstance(skip, Mapping) and "drafts" not in skip):
        rest["skip"] = {**(inherited if skip is None else skip), "drafts": drafts}
    return rest


def _read_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(source, "", "config file not found; create it (`reviewer config example` prints a "
                          "commented one) or pass --config PATH") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ConfigError(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "the top level must be a mapping of keys (database_url, repositories, ...)")
    return raw


def settings_from_mapping(raw: Mapping[str, Any], source: str, env: Mapping[str, str],
                          base_dir: Path) -> Settings:
    file = validated(FileConfig, _skip_drafts_alias(raw, source), source)
    try:
        ZoneInfo(file.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, "timezone", f"unknown time zone {file.timezone!r}; use an IANA name "
                          "such as UTC or Europe/Berlin") from None
    try:
        prices = load_price_table(file.prices)
    except (KeyError, ArithmeticError, ValueError, TypeError) as exc:
        raise ConfigError(source, "prices", f"each row needs numeric input and output prices ({exc})") from None
    prompts_dir = (base_dir / file.prompts_dir).resolve() if file.prompts_dir else None
    repos = tuple(_merge_repo(source, i, e, file, prices, prompts_dir) for i, e in enumerate(file.repositories))
    _check_unique(source, repos)
    _cron(source, "defaults.schedule", file.defaults.schedule, file.timezone)
    return Settings(
        source=source,
        database_url=_database_url(source, file.database_url, env, base_dir),
        timezone=file.timezone,
        prompts_dir=prompts_dir,
        repositories=repos,
        prices=prices,
        intervals=file.intervals,
        github_api_url=(env.get("GITHUB_API_URL") or file.github.api_url or DEFAULT_GITHUB_API_URL).rstrip("/"),
        github_token=env.get("GITHUB_TOKEN") or None,
        github=file.github,
        anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or file.anthropic.base_url,
        anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
        anthropic=file.anthropic,
        metrics=file.metrics,
        github_app=_github_app(source, file.github, env, base_dir),
        budget=file.budget,
    )


def _check_unique(source: str, repos: tuple[RepoSettings, ...]) -> None:
    first: dict[str, int] = {}
    for index, repo in enumerate(repos):
        earlier = first.setdefault(repo.name.casefold(), index)
        if earlier != index:
            same = ("listed twice" if repos[earlier].name == repo.name
                    else "the same repository (names are case-insensitive)")
            raise ConfigError(source, f"repositories[{index}].name", f"{repo.name!r} and repositories[{earlier}] "
                              f"{repos[earlier].name!r} are {same}; keep one entry")


def _database_url(source: str, in_file: str | None, env: Mapping[str, str], base_dir: Path) -> str:
    """REVIEWER_DATABASE_URL (a relative SQLite path from the working directory), else the file's or the
    default (relative to the config file's folder)."""
    if env.get("REVIEWER_DATABASE_URL"):
        return _absolute_sqlite("environment", "REVIEWER_DATABASE_URL", env["REVIEWER_DATABASE_URL"], Path.cwd())
    return _absolute_sqlite(source, "database_url", in_file or DEFAULT_DATABASE_URL, base_dir)


def _absolute_sqlite(source: str, key: str, url: str, base: Path) -> str:
    """`url` with a relative SQLite file path made absolute against `base`; other URLs unchanged."""
    if not url.startswith("sqlite"):
        return url
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(source, key, f"{url!r} is not a database URL ({exc}); use sqlite:///reviewer.db "
                          "or postgresql://user@host/db") from None
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:") or Path(path).is_absolute():
        return url
    return parsed.set(database=str((base / path).resolve())).render_as_string(hide_password=False)


def _github_app(source: str, options: GitHubOptions, env: Mapping[str, str], base_dir: Path) -> GitHubApp | None:
    """App id from GITHUB_APP_ID or github.app_id; key from GITHUB_APP_PRIVATE_KEY (PEM text), else
    GITHUB_APP_PRIVATE_KEY_PATH, else github.private_key_path (relative to the config file)."""
    pem, env_path = env.get("GITHUB_APP_PRIVATE_KEY") or None, env.get("GITHUB_APP_PRIVATE_KEY_PATH") or None
    raw_id = env.get("GITHUB_APP_ID") or options.app_id
    if raw_id is None and not (pem or env_path or options.private_key_path):
        return None
    if raw_id is None:
        raise ConfigError(source, "github.app_id", "a GitHub App private key is set but no app id; set "
                          "github.app_id or GITHUB_APP_ID")
    try:
        app_id = int(raw_id)
    except ValueError:
        raise ConfigError("environment", "GITHUB_APP_ID", f"{raw_id!r} is not a number (the App's id)") from None
    if pem is not None:
        where, key = "environment", "GITHUB_APP_PRIVATE_KEY"
    elif env_path or options.private_key_path:
        where, key = ("environment", "GITHUB_APP_PRIVATE_KEY_PATH") if env_path else (source, "github.private_key_path")
        pem = _read_private_key(where, key, Path(env_path) if env_path else base_dir / str(options.private_key_path))
    else:
        raise ConfigError(source, "github.private_key_path", "the GitHub App needs its private key: set "
                          "github.private_key_path, GITHUB_APP_PRIVATE_KEY_PATH or GITHUB_APP_PRIVATE_KEY")
    _check_private_key(where, key, pem)
    return GitHubApp(app_id, pem, options.installation_id)


def _read_private_key(where: str, key: str, path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, key, f"cannot read the private key file {str(path)!r} ({exc.__class__.__name__})"
                          ) from None


def _check_private_key(where: str, key: str, pem: str) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(where, key, "not a PEM private key without a passphrase (download one from the "
                          "App's settings page)") from None


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the config; `path` None means REVIEWER_CONFIG or ./reviewer.yml."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("REVIEWER_CONFIG") or DEFAULT_CONFIG_PATH)
    raw = _read_yaml(config_path)
    return settings_from_mapping(raw, str(config_path), env, config_path.resolve().parent)


def example_config() -> str:
    """The commented example config (`reviewer config example`): shipped inside the package, else (a
    source checkout) at the top of the repository."""
    here = Path(__file__).resolve().parent
    packaged = here / "reviewer.example.yml"
    return (packaged if packaged.is_file() else here.parent / "reviewer.example.yml").read_text()


def require_github_token(settings: Settings) -> str | None:
    """The token to use, or None when a GitHub App is configured (the App wins over a token)."""
    if settings.github_app is not None:
        return None
    if not settings.github_token:
        raise ConfigError("environment", "GITHUB_TOKEN", "not set; export a token that can read pull "
                          "requests and write reviews, or configure a GitHub App (github.app_id and "
                          "github.private_key_path, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY)")
    return settings.github_token


def require_anthropic_key(settings: Settings) -> str:
    if not settings.anthropic_api_key:
        raise ConfigError("environment", "ANTHROPIC_API_KEY", "not set; export an Anthropic API key")
    return settings.anthropic_api_key


"""Config validation: the minimal form works; every mistake is one line naming the key."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml

from reviewer.config import (
    FileConfig,
    RepoSettings,
    ReviewRules,
    example_config,
    load_settings,
    settings_from_mapping,
)
from reviewer.errors import ConfigError
from reviewer.options import Opt, RepoEntry, RepoOptions, Skip, merge, overrides

MINIMAL = """
database_url: sqlite:///reviewer.db
defaults: {model: claude-opus-4-7, schedule: nightly}
repositories:
  - name: acme/api
  - {name: acme/web, model: claude-sonnet-4-6, schedule: weekly}
"""


def load(raw: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return settings_from_mapping(raw, "reviewer.yml", env or {}, Path("."))


def test_minimal_config(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.yml"
    path.write_text(MINIMAL)
    settings = load_settings(str(path), env={})
    api, web = settings.repositories
    assert (api.name, api.model, api.schedule) == ("acme/api", "claude-opus-4-7", "0 2 * * *")
    assert (web.model, web.schedule, web.template) == ("claude-sonnet-4-6", "0 2 * * 1", "review")
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'reviewer.db'}"  # relative to the file
    assert settings.github_api_url == "https://api.github.com"


def test_environment_overrides_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "custom.yml"
    path.write_text(MINIMAL)
    env = {"REVIEWER_CONFIG": str(path), "REVIEWER_DATABASE_URL": "postgresql://db/x", "GITHUB_TOKEN": "t",
           "ANTHROPIC_API_KEY": "k", "GITHUB_API_URL": "https://ghe.example/api/v3/",
           "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    settings = load_settings(None, env=env)
    assert settings.database_url == "postgresql://db/x"
    assert settings.github_api_url == "https://ghe.example/api/v3"
    assert (settings.github_token, settings.anthropic_api_key) == ("t", "k")
    assert settings.anthropic_base_url == "http://127.0.0.1:9"


def test_cron_with_timezone() -> None:
    settings = load({"timezone": "Europe/Berlin", "repositories": [{"name": "a/b", "schedule": "30 1 * * 1-5"}]})
    assert settings.repositories[0].schedule == "30 1 * * 1-5"


@pytest.mark.parametrize("raw,key,words", [
    ({"repositories": [{"name": "a/b", "modle": "x"}]}, "repositories[0].modle", "unknown key"),
    ({"github_token": "secret"}, "github_token", "unknown key"),
    ({"repositories": [{"name": "not a repo"}]}, "repositories[0].name", "owner/name"),
    ({"repositories": [{"name": "a/b", "schedule": "every tuesday"}]}, "repositories[0].schedule", "cron"),
    ({"repositories": [{"name": "a/b", "schedule": "61 * * * *"}]}, "repositories[0].schedule", "cron"),
    ({"repositories": [{"name": "a/b", "model": "gpt-5"}]}, "repositories[0].model", "unknown model"),
    ({"repositories": [{"name": "a/b", "template": "nope"}]}, "repositories[0].template", "no template"),
    ({"repositories": [{"name": "a/b", "max_tokens": 0}]}, "repositories[0].max_tokens", "greater than"),
    ({"repositories": [{"name": "a/b"}, {"name": "a/b"}]}, "repositories[1].name", "twice"),
    ({"repositories": [{"name": "acme/api"}, {"name": "ACME/Api"}]}, "repositories[1].name",
     "'ACME/Api' and repositories[0] 'acme/api' are the same repository (names are case-insensitive)"),
    ({"repositories": [{"name": "acme/.."}]}, "repositories[0].name", "owner/name"),
    ({"repositories": [{"name": "acme/."}]}, "repositories[0].name", "owner/name"),
    ({"repositories": [{"name": "../x"}]}, "repositories[0].name", "owner/name"),
    ({"database_url": "sqlite:reviewer.db"}, "database_url", "not a database URL"),
    ({"timezone": "Mars/Olympus"}, "timezone", "time zone"),
    ({"defaults": {"schedule": "hourly"}}, "defaults.schedule", "cron"),
    ({"repositories": [{}]}, "repositories[0].name", "missing"),
    ({"repositories": [{"name": "a/b", "ignore": ["!"]}]}, "repositories[0].ignore", "gitignore"),
    ({"prices": {"x": {"input": "cheap"}}}, "prices.x.input", "valid number"),
])
def test_invalid_config_is_one_line_naming_the_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(raw)
    assert info.value.key == key
    assert words in info.value.message
    assert "\n" not in info.value.message


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "absent.yml"), env={})
    bad = tmp_path / "bad.yml"
    bad.write_text("repositories: [\n  - name: a/b\n  oops: : :\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(str(bad), env={})
    listy = tmp_path / "list.yml"
    listy.write_text(yaml.safe_dump(["a", "b"]))
    with pytest.raises(ConfigError, match="top level"):
        load_settings(str(listy), env={})


def test_price_override_makes_a_model_valid() -> None:
    settings = load({"prices": {"claude-future-9": {"input": 1, "output": 2}},
                     "repositories": [{"name": "a/b", "model": "claude-future-9"}]})
    assert settings.repositories[0].model == "claude-future-9"



BUILT_IN_SKIP = RepoOptions().skip


@pytest.mark.parametrize("raw,key,skip", [
    ({"defaults": {"skip_drafts": False}, "repositories": [{"name": "a/b"}]}, "defaults",
     BUILT_IN_SKIP.model_copy(update={"drafts": False})),
    ({"repositories": [{"name": "a/b", "skip_drafts": False}]}, "repositories[0]",
     BUILT_IN_SKIP.model_copy(update={"drafts": False})),
    ({"defaults": {"skip": {"authors": ["x"]}}, "repositories": [{"name": "a/b", "skip_drafts": False}]},
     "repositories[0]", Skip(drafts=False, authors=("x",))),
])
def test_skip_drafts_is_a_deprecated_alias_of_skip_drafts(raw: dict[str, Any], key: str, skip: Skip,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="reviewer.config"):
        repo = load(raw).repositories[0]
    assert repo.skip == skip and not hasattr(repo, "skip_drafts")
    assert [r.getMessage() for r in caplog.records if r.name == "reviewer.config"] == [
        f"reviewer.yml: {key}.skip_drafts is deprecated; write skip: {{drafts: false}}"]


def test_skip_drafts_gives_way_to_skip_drafts_and_is_not_a_repository_file_key(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="reviewer.config"):
        repo = load({"repositories": [{"name": "a/b", "skip_drafts": False, "skip": {"drafts": True}}]}).repositories[0]
    assert repo.skip.drafts is True and len(caplog.records) == 1
    assert "skip_drafts" not in ReviewRules.model_fields


def test_every_shape_is_derived_from_the_one_declaration() -> None:
    declared = set(RepoOptions.model_fields)
    assert FileConfig.model_fields["defaults"].annotation is RepoOptions
    assert set(RepoEntry.model_fields) - {"name", "monthly_budget_usd"} == declared
    assert set(RepoSettings.model_fields) - {"name", "monthly_budget_micro_usd"} == declared
    marked = {key for key, info in RepoOptions.model_fields.items()
              if any(isinstance(item, Opt) and item.repo_file for item in info.metadata)}
    assert set(ReviewRules.model_fields) == marked == {"model", "template", "instructions", "ignore",
                                                       "severity_threshold", "max_inline_comments", "review_mode",
                                                       "skip"}
    assert all(info.default is None for info in [*RepoEntry.model_fields.values(), *ReviewRules.model_fields.values()]
               if info is not RepoEntry.model_fields["name"])


def test_adding_an_option_means_declaring_it_once() -> None:
    class Extended(RepoOptions):
        tone: Annotated[str, Opt(repo_file="append")] = "dry"
        pace: int = 1

    entry, rules = overrides(Extended, "central", "Entry"), overrides(Extended, "repo_file", "Rules")
    assert {"tone", "pace"} <= set(entry.model_fields) and "pace" not in rules.model_fields
    central = merge(Extended(), entry.model_validate({"tone": "warm", "pace": 2}))
    assert (central.tone, central.pace) == ("warm", 2)
    assert merge(central, rules.model_validate({"tone": "kind"})).tone == "warm\n\nkind"


@pytest.mark.parametrize("in_file,expected", [
    (None, "sqlite:///{conf}/reviewer.db"),  # the default too
    ("sqlite:///data/queue.db?timeout=5", "sqlite:///{conf}/data/queue.db?timeout=5"),
    ("sqlite:///../shared.db", "sqlite:///{parent}/shared.db"),
    ("sqlite:////var/lib/reviewer.db", "sqlite:////var/lib/reviewer.db"),
    ("sqlite://", "sqlite://"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("postgresql://reviewer:pw@db/reviewer", "postgresql://reviewer:pw@db/reviewer"),
])
def test_a_relative_sqlite_path_in_the_file_is_relative_to_the_file(tmp_path: Path, in_file: str | None,
                                                                   expected: str) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "reviewer.yml"
    raw: dict[str, Any] = {"repositories": [{"name": "a/b"}]}
    path.write_text(yaml.safe_dump(raw | ({"database_url": in_file} if in_file else {})))
    settings = load_settings(str(path), env={})
    assert settings.database_url == expected.format(conf=conf.resolve(), parent=tmp_path.resolve())


def test_a_relative_sqlite_path_in_the_environment_is_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "reviewer.yml").write_text("repositories: [{name: a/b}]\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings("conf/reviewer.yml", env={"REVIEWER_DATABASE_URL": "sqlite:///here.db"})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'here.db'}"


def test_repository_names_are_case_insensitive() -> None:
    settings = load({"repositories": [{"name": "Acme/API", "max_tokens": 99}]})
    assert settings.repo("acme/api").max_tokens == 99 and settings.repo("ACME/api").name == "Acme/API"
    with pytest.raises(ConfigError, match="acme/web is not configured"):
        settings.repo("acme/web")


def test_the_example_config_is_valid_and_matches_the_checkout() -> None:
    text = example_config()
    assert text == (Path(__file__).resolve().parents[2] / "reviewer.example.yml").read_text()
    settings = settings_from_mapping(yaml.safe_load(text), "example", {}, Path("/srv/reviewer"))
    assert settings.database_url == "sqlite:////srv/reviewer/reviewer.db"
    assert [r.name for r in settings.repositories] == ["acme/api", "acme/web"]

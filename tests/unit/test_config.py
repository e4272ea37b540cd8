"""Config validation: the minimal form works; every mistake is one line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reviewer.config import load_settings, settings_from_mapping
from reviewer.errors import ConfigError

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
    assert settings.database_url == "sqlite:///reviewer.db"
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
    ({"repositories": [{"name": "a/b"}, {"name": "a/b"}]}, "repositories", "twice"),
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

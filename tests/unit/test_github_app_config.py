"""GitHub credentials in the config: a personal token or a GitHub App (id + private key from the file or
the environment); either is enough, neither is one error line that names both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reviewer.config import require_github_token, settings_from_mapping
from reviewer.errors import ConfigError
from tests.appkeys import app_keys


def load(raw: dict[str, Any], env: dict[str, str], base: Path = Path(".")) -> Any:
    return settings_from_mapping(raw, "reviewer.yml", env, base)


def test_token_only() -> None:
    settings = load({}, {"GITHUB_TOKEN": "ghp_x"})
    assert settings.github_app is None and require_github_token(settings) == "ghp_x"
    assert settings.github.max_wait_seconds == 120 and settings.github.write_pause_seconds == 1.0


def test_app_from_the_environment_wins_over_a_token() -> None:
    pem = app_keys().private_pem
    settings = load({}, {"GITHUB_TOKEN": "ghp_x", "GITHUB_APP_ID": "12", "GITHUB_APP_PRIVATE_KEY": pem})
    assert settings.github_app is not None and settings.github_app.app_id == 12
    assert require_github_token(settings) is None
    assert pem not in repr(settings)


def test_app_from_the_file_with_a_key_path_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "app.pem").write_text(app_keys().private_pem)
    raw = {"github": {"app_id": 34, "private_key_path": "keys/app.pem", "installation_id": 56}}
    app = load(raw, {}, tmp_path).github_app
    assert (app.app_id, app.installation_id) == (34, 56)


def test_key_path_from_the_environment(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(app_keys().private_pem)
    app = load({"github": {"app_id": 7}}, {"GITHUB_APP_PRIVATE_KEY_PATH": str(key)}).github_app
    assert app is not None and app.private_key == app_keys().private_pem


def test_neither_token_nor_app_names_both_ways() -> None:
    with pytest.raises(ConfigError) as error:
        require_github_token(load({}, {}))
    assert "GITHUB_TOKEN" in error.value.message and "GITHUB_APP_ID" in error.value.message
    assert "github.app_id" in error.value.message and "\n" not in error.value.message


@pytest.mark.parametrize("raw,env,key,words", [
    ({}, {"GITHUB_APP_ID": "12"}, "github.private_key_path", "needs its private key"),
    ({}, {"GITHUB_APP_ID": "twelve", "GITHUB_APP_PRIVATE_KEY": "x"}, "GITHUB_APP_ID", "not a number"),
    ({"github": {"private_key_path": "k.pem"}}, {}, "github.app_id", "no app id"),
    ({"github": {"app_id": 1, "private_key_path": "missing.pem"}}, {}, "github.private_key_path", "cannot read"),
    ({}, {"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "not a key"}, "GITHUB_APP_PRIVATE_KEY", "not a PEM"),
    ({"github": {"app_id": 0}}, {}, "github.app_id", "greater than"),
    ({"github": {"max_wait_seconds": -1}}, {}, "github.max_wait_seconds", "greater than"),
])
def test_bad_app_settings_are_one_line(tmp_path: Path, raw: dict[str, Any], env: dict[str, str], key: str,
                                       words: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(raw, env, tmp_path)
    assert error.value.key == key and words in error.value.message

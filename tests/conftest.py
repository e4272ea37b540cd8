"""Shared fixtures: a database URL for each engine (SQLite file, fresh PostgreSQL database), the two
emulators on free ports, and a helper that writes a config and drives the real CLI against them.

PostgreSQL tests run against 127.0.0.1:5432 (override with REVIEWER_TEST_POSTGRES_URL). They are
skipped with a reason when the server is unreachable, unless REVIEWER_TEST_POSTGRES=1 (as in
.ci/run), which turns an unreachable server into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from reviewer.cli import cli
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator

POSTGRES_ADMIN_URL = os.environ.get("REVIEWER_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GITHUB_TOKEN = "ghp_test_token_0123456789"
ANTHROPIC_KEY = "sk-ant-test-key-0123456789"


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:  # any driver or network error means "not available here"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Any]:
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("REVIEWER_TEST_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {problem}")
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def new_postgres_database(admin: Any) -> tuple[str, str]:
    name = f"reviewer_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return name, url


def drop_postgres_database(admin: Any, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reviewer.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    name, url = new_postgres_database(admin)
    try:
        yield url
    finally:
        drop_postgres_database(admin, name)


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    with GitHubEmulator(token=GITHUB_TOKEN) as emulator:
        yield emulator


@pytest.fixture
def anthropic_api() -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator(api_key=ANTHROPIC_KEY, polls_to_end=1) as emulator:
        yield emulator


@dataclass
class Service:
    """A configured `reviewer` pointed at the emulators; `cli()` runs a command in-process,
    `spawn()` in a subprocess (for crash tests)."""

    config_path: Path
    env: dict[str, str]
    github: GitHubEmulator
    anthropic: AnthropicEmulator
    database_url: str
    raw: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, ["--config", str(self.config_path), *args], env={**self.env, **(env or {})},
                             catch_exceptions=False)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "reviewer", "--config", str(self.config_path), *args],
                                env={**os.environ, **self.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def rewrite(self, **changes: Any) -> None:
        self.raw.update(changes)
        self.config_path.write_text(yaml.safe_dump(self.raw, sort_keys=False))


def write_service(tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic: AnthropicEmulator,
                  repositories: list[dict[str, Any]], **extra: Any) -> Service:
    raw: dict[str, Any] = {
        "database_url": database_url,
        "defaults": {"model": "claude-opus-4-7", "schedule": "nightly", "max_tokens": 2048},
        "repositories": repositories,
        "intervals": {"poll_seconds": 0.05, "lease_seconds": 30},
        "github": {"write_pause_seconds": 0},
        "metrics": {"port": 0},
        "anthropic": {"create_grace_seconds": 0},  # the emulator answers at once: no request is in flight
        **extra,
    }
    path = tmp_path / "reviewer.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {"GITHUB_TOKEN": GITHUB_TOKEN, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "GITHUB_API_URL": github.url,
           "ANTHROPIC_BASE_URL": anthropic.url, "REVIEWER_CONFIG": "", "REVIEWER_DATABASE_URL": ""}
    return Service(path, env, github, anthropic, database_url, raw)

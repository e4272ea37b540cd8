"""Private code stays private: the SQLite database (it holds the diffs) and its -wal, -shm, lock and
backup files are readable by their owner only, whatever the umask; the public review names the config file,
never its path on the server; and the logs carry no diff or prompt, even at debug, unless the operator
asks for them with `--log-prompts`."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from reviewer.db import make_engine
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.locks import single_instance
from reviewer.migrate import upgrade
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, diff_for, ok, own_reviews

DIFF_LINE = "WHERE name LIKE '%{name}%'"  # a line of diff_for(1)'s new side
PROMPT_LINE = "report_review"  # the forced tool of every prompt


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (files 0644), so that only the service's own care makes them private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path, prefix: str) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.name.startswith(prefix)}


def test_the_sqlite_files_are_readable_by_their_owner_only(tmp_path: Path, open_umask: None, github: GitHubEmulator,
                                                           anthropic_api: AnthropicEmulator) -> None:
    github.add_repo(REPO)
    database = tmp_path / "data" / "r.db"
    database.parent.mkdir()
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade(engine, "0001")  # an older schema, so that `db upgrade` backs the file up first
    service = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}])
    ok(service.cli("db", "upgrade"))
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("cycle"))  # the submit lock file
    with engine.connect() as connection, single_instance(engine):  # -wal, -shm and the instance lock exist now
        connection.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
        connection.commit()
        found = modes(database.parent, "r.db")
    engine.dispose()
    assert {"r.db", "r.db-wal", "r.db-shm", "r.db.lock"} <= set(found)
    assert any(".bak-" in name for name in found) and sum(".lock" in name for name in found) >= 2, found
    assert {name: mode for name, mode in found.items() if mode != 0o600} == {}


def test_an_older_open_backup_is_made_private_when_written_again(tmp_path: Path, open_umask: None) -> None:
    database = tmp_path / "r.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine, "0001")
    backup = tmp_path / "r.db.bak-0001"
    backup.write_text("an old copy")
    backup.chmod(0o644)
    upgrade(engine)
    engine.dispose()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600 and backup.stat().st_size > len("an old copy")


def test_the_review_names_the_config_file_not_its_path(service: Service) -> None:
    service.github.add_file(REPO, ".github/reviewer.yml", "severity_threshold: low\n")
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    ok(service.cli("cycle"))
    (review,) = own_reviews(service.github, REPO, number)
    assert "config: reviewer.yml + .github/reviewer.yml (default branch)" in review["body"]
    assert str(service.config_path.parent) not in review["body"]


def test_debug_logs_carry_no_diff_or_prompt_unless_asked(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    quiet = service.cli("--log-level", "debug", "cycle")
    ok(quiet)
    assert "DEBUG" in quiet.stderr  # it was a debug run
    assert DIFF_LINE not in quiet.stderr and PROMPT_LINE not in quiet.stderr

    service.github.push(REPO, 1, diff_for(1, version=2))
    loud = service.cli("--log-level", "debug", "--log-prompts", "cycle")
    ok(loud)
    assert DIFF_LINE in loud.stderr and PROMPT_LINE in loud.stderr  # the flag shows the SDKs' bodies

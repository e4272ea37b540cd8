"""A newcomer's first command works on an empty database (it creates the schema), several instances
started at once on one empty database migrate it once and all start, and the database a config names
is the same whatever directory the command runs from."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from reviewer.db import make_engine
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.migrate import current_revision, head_revision
from reviewer.models import Deployment
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, diff_for, jobs, ok

FIRST_COMMANDS = [["collect"], ["status"], ["costs"], ["batches"], ["submit"], ["submit", "--dry-run"], ["poll"],
                  ["post"], ["explain", "1"]]


def schema(database_url: str) -> tuple[str | None, int, int]:
    """The revision, the rows of alembic_version and the deployment rows: a schema made once has one each."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one()
            deployments = connection.execute(select(func.count()).select_from(Deployment)).scalar_one()
        return current_revision(engine), versions, deployments
    finally:
        engine.dispose()


@pytest.fixture
def newcomer(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    """A configured service on an empty database (no `db upgrade`)."""
    github.add_repo(REPO)
    return write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}])


@pytest.mark.parametrize("command", FIRST_COMMANDS, ids=" ".join)
def test_the_first_command_on_an_empty_database_creates_the_schema(newcomer: Service, command: list[str]) -> None:
    result = newcomer.cli(*command)
    if command[0] == "explain":
        assert result.exit_code == 1 and "error: no job 1" in result.stderr
    else:
        assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert schema(newcomer.database_url) == (head_revision(), 1, 1)


def test_the_newcomer_goes_from_collect_to_a_posted_review(newcomer: Service) -> None:
    newcomer.github.open_pull(REPO, title="Search", diff=diff_for(1))
    assert "queued 1" in ok(newcomer.cli("collect"))
    ok(newcomer.cli("submit"))
    ok(newcomer.cli("poll"))
    ok(newcomer.cli("post"))
    assert [j.state for j in jobs(newcomer.database_url)] == ["posted"]


def _read_lines(process: subprocess.Popen[bytes], lines: list[str], started: threading.Event) -> None:
    assert process.stderr is not None
    for raw in process.stderr:
        line = raw.decode(errors="replace")
        lines.append(line)
        if "reviewer is running" in line:
            started.set()


@pytest.mark.slow
def test_three_cycles_started_at_once_on_an_empty_database_migrate_it_once(newcomer: Service) -> None:
    newcomer.github.open_pull(REPO, title="Search", diff=diff_for(1))
    processes = [newcomer.spawn("cycle") for _ in range(3)]
    outcomes = [p.communicate(timeout=120) for p in processes]
    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    assert schema(newcomer.database_url) == (head_revision(), 1, 1)
    assert [j.state for j in jobs(newcomer.database_url)] == ["posted"]  # one job, reviewed once


@pytest.mark.postgres
@pytest.mark.slow
def test_three_services_started_at_once_on_an_empty_postgres_database_all_start(
        tmp_path: Path, postgres_admin: Engine, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    """`docker compose up --scale reviewer=3` on a fresh database: one migrates, the others wait for it."""
    from tests.conftest import drop_postgres_database, new_postgres_database

    name, url = new_postgres_database(postgres_admin)
    try:
        github.add_repo(REPO)
        service = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}])
        processes = [service.spawn("--log-level", "info", "run") for _ in range(3)]
        logs: list[list[str]] = [[] for _ in processes]
        started = [threading.Event() for _ in processes]
        readers = [threading.Thread(target=_read_lines, args=(p, lines, event), daemon=True)
                   for p, lines, event in zip(processes, logs, started, strict=True)]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 90
        for event in started:
            event.wait(max(deadline - time.monotonic(), 0))
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process, reader in zip(processes, readers, strict=True):
            process.wait(timeout=60)
            reader.join(timeout=10)
            for stream in (process.stdout, process.stderr):
                assert stream is not None
                stream.close()
        for process, lines, event in zip(processes, logs, started, strict=True):
            assert event.is_set() and process.returncode == 0, "".join(lines)
            assert not any("Traceback" in line for line in lines), "".join(lines)
        assert sum("database migrated from empty" in line for lines in logs for line in lines) == 1
        assert schema(url) == (head_revision(), 1, 1)
    finally:
        drop_postgres_database(postgres_admin, name)


def test_the_same_config_from_two_working_directories_uses_one_database(
        tmp_path: Path, github: GitHubEmulator, anthropic_api: AnthropicEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Cron runs in $HOME, the operator in the config's folder: one queue, each PR reviewed once."""
    github.add_repo(REPO)
    github.open_pull(REPO, title="Search", diff=diff_for(1))
    conf, cron_home, operator = (tmp_path / n for n in ("conf", "home", "work"))
    for folder in (conf, cron_home, operator):
        folder.mkdir()
    service = write_service(conf, "sqlite:///reviewer.db", github, anthropic_api, [{"name": REPO}])
    database = conf.resolve() / "reviewer.db"
    monkeypatch.chdir(cron_home)
    assert "queued 1" in ok(service.cli("collect"))
    monkeypatch.chdir(operator)
    assert "queued" not in ok(service.cli("collect"))  # the same queue: nothing new
    status = ok(service.cli("status"))
    assert f"Database: sqlite:///{database}" in status and "acme/api: queued 1" in status
    assert [p.name for p in (*cron_home.iterdir(), *operator.iterdir())] == []
    assert len(jobs(f"sqlite:///{database}")) == 1
    # REVIEWER_DATABASE_URL is relative to the working directory, as paths from the environment are
    status = ok(service.cli("status", env={"REVIEWER_DATABASE_URL": "sqlite:///mine.db"}))
    assert f"Database: sqlite:///{operator.resolve() / 'mine.db'}" in status and (operator / "mine.db").exists()


def test_status_shows_the_database_without_its_password(newcomer: Service) -> None:
    url = make_url(newcomer.database_url)
    if url.drivername.startswith("postgresql"):
        url = url.set(password="s3cret-pw")  # trust authentication ignores it
        newcomer.rewrite(database_url=url.render_as_string(hide_password=False))
    status = ok(newcomer.cli("status"))
    assert f"Database: {url.render_as_string(hide_password=True)}" in status
    assert "s3cret-pw" not in status

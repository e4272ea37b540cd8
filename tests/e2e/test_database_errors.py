"""The database failing is an error, not a crash: a database that does not exist, an unsupported URL, a
read-only SQLite file or folder (or a PostgreSQL server that takes no writes), a full disk and a locked
database give one `error: ...` line and a non-zero exit from every command, never a traceback, and lose
nothing: once the database is fixed, the next run reviews the pull request exactly once.

Read-only files and a full disk are made real for the subprocess alone: as root, in a private mount
namespace (`unshare --mount`: a read-only bind mount, a tiny tmpfs); otherwise with file permissions (a
full disk is then skipped: it needs a mount)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import make_diff
from tests.conftest import Service, drop_postgres_database, new_postgres_database, write_service
from tests.e2e.helpers import BEFORE, REPO, after_for, diff_for, jobs, ok, own_reviews
from tests.e2e.test_bad_input import one_error_line

COMMANDS = [["status"], ["collect"], ["submit"], ["submit", "--dry-run"], ["poll"], ["poll", "--wait"], ["post"],
            ["cycle"], ["run"], ["costs"], ["batches"], ["batches", "cancel", "1"], ["explain", "1"],
            ["db", "upgrade"], ["db", "check"]]


@cache
def can_confine() -> bool:
    """Root with a working `unshare --mount` (mounts visible to one subprocess only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


def cli_process(service: Service, *args: str, setup: str = "", after: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess; `setup` and `after` are shell lines run around it in a private mount
    namespace (setup's mounts are seen by this process alone and vanish with it)."""
    command = shlex.join([sys.executable, "-m", "reviewer", "--config", str(service.config_path), *args])
    env = {**os.environ, **service.env}
    if not setup and not after:
        return subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, timeout=120)
    script = f"set -e\n{setup}\nset +e\n{command}\nrc=$?\n{after}\nexit $rc"
    return subprocess.run(["unshare", "--mount", "sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)


def one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert all(w in errors[0] for w in words), errors[0]
    return errors[0]


def reviewed_once(service: Service, number: int) -> None:
    ok(service.cli("cycle"))
    assert [j.state for j in jobs(service.database_url)] == ["posted"]
    assert len(own_reviews(service.github, REPO, number)) == 1


# --- a database that is not there, a URL that names no supported database ---------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def missing_database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """A URL naming a database that does not exist, and what the error says about it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'no-such-folder' / 'r.db'}", "unable to open database file"
    admin = request.getfixturevalue("postgres_admin")
    name, url = new_postgres_database(admin)
    drop_postgres_database(admin, name)
    return url, f'database "{name}" does not exist'


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_database_that_does_not_exist(tmp_path: Path, missing_database: tuple[str, str], github: GitHubEmulator,
                                        anthropic_api: AnthropicEmulator, args: list[str]) -> None:
    url, words = missing_database
    service = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}])
    line = one_error_line(service.cli(*args))
    assert words in line and ("create it" in line or "folder exists" in line)
    assert "password" not in line


@pytest.mark.parametrize("url,words", [
    ("mysql://user@db/reviews", "'mysql' databases are not supported"),
    ("mongodb://db/reviews", "'mongodb' databases are not supported"),
    ("postgresql+psycopg2://user@db/reviews", "cannot use postgresql+psycopg2"),
    ("sqlite:///r.db?timeout=soon", "?timeout= must be a number of seconds"),
])
@pytest.mark.parametrize("args", [["status"], ["run"], ["db", "upgrade"]], ids=" ".join)
def test_an_unsupported_database_url(tmp_path: Path, github: GitHubEmulator, anthropic_api: AnthropicEmulator,
                                     url: str, words: str, args: list[str]) -> None:
    service = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}])
    line = one_error_line(service.cli(*args))
    assert line.startswith("error: database_url: ") and words in line


# --- a database that takes no writes ---------------------------------------------------------------


@pytest.fixture
def sqlite_service(tmp_path: Path, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    folder = tmp_path / "data"
    folder.mkdir()
    svc = write_service(tmp_path, f"sqlite:///{folder / 'r.db'}?timeout=0.5", github, anthropic_api,
                        [{"name": REPO}])
    ok(svc.cli("db", "upgrade"))
    return svc


def read_only(path: Path) -> Iterator[str]:
    """Shell setup that makes `path` read-only for the CLI subprocess (as root: a read-only bind mount;
    else: file permissions, restored afterwards)."""
    if can_confine():
        yield f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(path))}\n" \
              f"mount -o remount,ro,bind {shlex.quote(str(path))}"
        return
    mode = path.stat().st_mode
    path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        yield ""
    finally:
        path.chmod(mode)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_sqlite_database(sqlite_service: Service, what: str) -> None:
    number = sqlite_service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    database = Path(sqlite_service.database_url.removeprefix("sqlite:///").split("?")[0])
    target = database if what == "file" else database.parent
    for command in ("collect", "cycle"):
        for setup in read_only(target):
            result = cli_process(sqlite_service, command, setup=setup)
        line = one_line(result)
        assert ("readonly database" in line and "writable" in line if what == "file" else
                "unable to open database file" in line and "may write there" in line), line
    assert jobs(sqlite_service.database_url) == []
    reviewed_once(sqlite_service, number)


def test_the_service_on_a_read_only_database_logs_one_line_per_step(sqlite_service: Service) -> None:
    """`reviewer run` is a daemon: a database that turns read-only fails each step with one line, and the
    service goes on (and stops cleanly)."""
    sqlite_service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    database = Path(sqlite_service.database_url.removeprefix("sqlite:///").split("?")[0])
    for setup in read_only(database):
        script = f"{setup}\nexec " + shlex.join([sys.executable, "-m", "reviewer", "--config",
                                                  str(sqlite_service.config_path), "run"])
        process = subprocess.Popen(["unshare", "--mount", "sh", "-ec", script] if setup else shlex.split(
            script.removeprefix("\nexec ")), env={**os.environ, **sqlite_service.env}, stderr=subprocess.PIPE,
            text=True)
        try:
            assert process.stderr is not None
            for line in process.stderr:
                assert "Traceback" not in line
                if "step collect failed: database:" in line:
                    assert "attempt to write a readonly database" in line
                    break
        finally:
            process.send_signal(signal.SIGTERM)
            _, rest = process.communicate(timeout=30)
    assert "Traceback" not in rest and process.returncode == 0, rest


@pytest.fixture
def pg_service(tmp_path: Path, postgres_admin: Any, github, anthropic_api) -> Iterator[tuple[Service, str]]:  # type: ignore[no-untyped-def]
    """A service on a fresh PostgreSQL database, and the database's name (for ALTER DATABASE)."""
    github.add_repo(REPO)
    name, url = new_postgres_database(postgres_admin)
    try:
        svc = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}])
        ok(svc.cli("db", "upgrade"))
        yield svc, name
    finally:
        drop_postgres_database(postgres_admin, name)


@pytest.mark.postgres
def test_a_postgresql_server_that_takes_no_writes(pg_service: tuple[Service, str], postgres_admin: Any) -> None:
    service, name = pg_service
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    with postgres_admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    for command in ("collect", "cycle"):
        line = one_error_line(service.cli(command))
        assert "read-only transaction" in line and "takes no writes" in line
    with postgres_admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    reviewed_once(service, number)


# --- a full disk -------------------------------------------------------------------------------------


def test_a_full_disk(sqlite_service: Service, tmp_path: Path) -> None:
    if not can_confine():
        pytest.skip("a full disk is simulated with a tiny tmpfs: needs root and unshare --mount")
    generated = "".join(f"ROW_{i} = {'x' * 100!r}\n" for i in range(20_000))  # 2 MB: more than the disk has
    number = sqlite_service.github.open_pull(REPO, title="Huge", diff=make_diff({
        "app/users_1.py": (BEFORE, after_for(1)), "app/table.py": (None, generated)}))
    database = Path(sqlite_service.database_url.removeprefix("sqlite:///").split("?")[0])
    full, kept = tmp_path / "full", tmp_path / "kept"
    full.mkdir()
    kept.mkdir()
    size = database.stat().st_size + 96 * 1024  # the schema and a little room, not the 2 MB diff
    sqlite_service.rewrite(database_url=f"sqlite:///{full / 'r.db'}")
    result = cli_process(sqlite_service, "collect", setup=f"mount -t tmpfs -o size={size} tmpfs {full}\n"
                         f"cp {database} {full}/r.db", after=f"cp {full}/r.db* {kept}/")
    line = one_line(result, "database or disk is full", "free disk space")
    assert "Traceback" not in result.stderr, line
    for copied in kept.iterdir():  # what the full disk held afterwards: consistent, and no job half-written
        shutil.copy(copied, database.parent / copied.name.replace("r.db", database.name))
    sqlite_service.rewrite(database_url=f"sqlite:///{database}")
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert jobs(sqlite_service.database_url) == []
    reviewed_once(sqlite_service, number)


# --- a locked database -------------------------------------------------------------------------------


def test_a_locked_sqlite_database(sqlite_service: Service) -> None:
    number = sqlite_service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    database = sqlite_service.database_url.removeprefix("sqlite:///").split("?")[0]
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing for longer than ?timeout=0.5
    try:
        for command in ("collect", "cycle"):  # (reading goes on: WAL readers are not blocked by a writer)
            line = one_error_line(sqlite_service.cli(command))
            assert "database is locked" in line and "tries again" in line
    finally:
        holder.rollback()
        holder.close()
    reviewed_once(sqlite_service, number)


@pytest.mark.postgres
def test_a_locked_postgresql_table(pg_service: tuple[Service, str], postgres_admin: Any) -> None:
    service, name = pg_service
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    with postgres_admin.connect() as connection:
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET lock_timeout = '500ms'"))
    holder = create_engine(service.database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with holder.connect() as connection:
            connection.execute(text("LOCK TABLE review_jobs IN ACCESS EXCLUSIVE MODE"))
            line = one_error_line(service.cli("collect"))
            assert "lock timeout" in line and "tries again" in line
            connection.rollback()
    finally:
        holder.dispose()
    reviewed_once(service, number)

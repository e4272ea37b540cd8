"""SIGTERM stops `reviewer run` and `reviewer cycle` within Docker's 10 s grace even while a GitHub or
Anthropic call hangs (the emulator holds its answer after doing the work); the interrupted step is picked
up by the next run, which posts exactly one review."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from reviewer.db import make_engine, session_factory, transaction, utcnow
from reviewer.emulators._server import Hold
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.models import repo_state
from reviewer.shutdown import GRACE_SECONDS
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, batches, diff_for, jobs, ok, own_reviews

LEASE_SECONDS = 1.0
DOCKER_GRACE_SECONDS = 10.0
pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}],
                        intervals={"collect_seconds": 0.3, "poll_seconds": 0.1, "post_seconds": 0.2,
                                   "lease_seconds": LEASE_SECONDS})
    ok(svc.cli("db", "upgrade"))
    return svc


def terminate_while_held(process: subprocess.Popen[bytes], hold: Hold) -> tuple[float, str]:
    """SIGTERM once the call hangs; how long the process took to exit, and its log."""
    try:
        assert hold.reached.wait(120), process.communicate(timeout=5)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        return time.monotonic() - sent, stderr.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
        hold.release()


def test_cycle_stops_within_the_grace_while_posting_hangs(service: Service) -> None:
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    hold = service.github.server.hold_after_processing("POST", r"/pulls/\d+/reviews$")  # posted, no answer yet
    took, log = terminate_while_held(service.spawn("cycle"), hold)
    assert took < DOCKER_GRACE_SECONDS, log
    assert took >= GRACE_SECONDS - 0.5  # the running step was given its grace first
    assert "did not finish within 5s of SIGTERM" in log and "Traceback" not in log
    time.sleep(LEASE_SECONDS + 0.2)  # the abandoned posting lease expires
    assert "already posted 1" in ok(service.cli("cycle"))
    assert [j.state for j in jobs(service.database_url)] == ["posted"]
    assert len(own_reviews(service.github, REPO, number)) == 1


def test_run_stops_within_the_grace_while_a_batch_create_hangs(service: Service) -> None:
    number = service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    engine = make_engine(service.database_url)
    with transaction(session_factory(engine)) as session:  # a submission is due at start
        repo_state(session, REPO).last_submitted_at = utcnow() - timedelta(days=2)
    engine.dispose()
    hold = service.anthropic.server.hold_after_processing("POST", r"^/v1/messages/batches$")  # created, no answer
    process = service.spawn("--log-level", "info", "run")
    took, log = terminate_while_held(process, hold)
    assert took < DOCKER_GRACE_SECONDS, log
    assert process.returncode == 128 + signal.SIGTERM, log
    assert "received SIGTERM" in log and "did not finish within" in log and "Traceback" not in log
    time.sleep(LEASE_SECONDS + 0.2)
    ok(service.cli("cycle"))
    assert len(service.anthropic.batches) == 1  # adopted, not sent twice
    assert [b.state for b in batches(service.database_url)] == ["ended"]
    assert [j.state for j in jobs(service.database_url)] == ["posted"]
    assert len(own_reviews(service.github, REPO, number)) == 1


def test_a_second_sigterm_exits_at_once(service: Service) -> None:
    service.github.open_pull(REPO, title="Search", diff=diff_for(1))
    hold = service.github.server.hold_after_processing("POST", r"/pulls/\d+/reviews$")
    process = service.spawn("cycle")
    try:
        assert hold.reached.wait(120), process.communicate(timeout=5)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        hold.release()
    assert time.monotonic() - sent < GRACE_SECONDS and process.returncode == 128 + signal.SIGTERM
    assert "received SIGTERM again; exiting now" in stderr.decode()


def test_cycle_stops_within_the_grace_while_stuck_in_a_sqlite_lock_wait(
        tmp_path: Path, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> None:
    """The main thread is inside SQLite's C busy wait, where no Python signal handler can run: the watchdog
    learns of the signal from the wakeup fd and still ends the process in time."""
    github.add_repo(REPO)
    database = tmp_path / "r.db"
    service = write_service(tmp_path, f"sqlite:///{database}?timeout=60", github, anthropic_api, [{"name": REPO}])
    ok(service.cli("db", "upgrade"))
    number = github.open_pull(REPO, title="Search", diff=diff_for(1))
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # every write of the cycle waits (up to 60 s) in SQLite's busy handler
    try:
        process = service.spawn("cycle")
        deadline = time.monotonic() + 120
        while github.server.count("GET", f"/repos/{REPO}/pulls") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # it listed the pull requests: its next step is a write
        time.sleep(1.0)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        holder.rollback()
        holder.close()
    assert took < DOCKER_GRACE_SECONDS and process.returncode == 128 + signal.SIGTERM, stderr.decode()
    ok(service.cli("cycle"))
    assert len(own_reviews(github, REPO, number)) == 1

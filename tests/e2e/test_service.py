"""`reviewer run` as a process: it reviews on schedule (here: a missed slot caught up at start),
polls and posts on its intervals, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from reviewer.db import make_engine, session_factory, transaction, utcnow
from reviewer.models import repo_state
from tests.conftest import write_service
from tests.e2e.helpers import REPO, diff_for, jobs, own_reviews

pytestmark = pytest.mark.slow


def test_run_reviews_then_stops_cleanly_on_sigterm(tmp_path: Path, database_url: str, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    number = github.open_pull(REPO, title="Search", diff=diff_for(1))
    service = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}],
                            intervals={"collect_seconds": 0.3, "poll_seconds": 0.2, "post_seconds": 0.2,
                                       "lease_seconds": 30})
    assert service.cli("db", "upgrade").exit_code == 0
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:  # the service was down during last night's slot
        repo_state(session, REPO).last_submitted_at = utcnow() - timedelta(days=2)
    engine.dispose()

    process = service.spawn("--log-level", "info", "run")
    try:
        deadline = time.monotonic() + 120  # generous: CI machines are slow and busy
        while not own_reviews(github, REPO, number) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert own_reviews(github, REPO, number), "no review was posted by the service"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "catching up once" in log and "stopped cleanly" in log
    assert [j.state for j in jobs(database_url)] == ["posted"]
    assert len(own_reviews(github, REPO, number)) == 1

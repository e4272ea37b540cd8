"""Several instances: three `reviewer run` processes on one PostgreSQL database review 300 pull
requests with every review posted exactly once; SQLite refuses a second instance; SIGTERM in the
middle of a cycle loses nothing."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from reviewer.db import make_engine, session_factory, transaction, utcnow
from reviewer.emulators.samples import make_diff
from reviewer.models import repo_state
from tests.conftest import drop_postgres_database, new_postgres_database, write_service
from tests.e2e.helpers import REPO, diff_for, jobs, own_reviews

pytestmark = pytest.mark.slow
FAST = {"collect_seconds": 0.5, "poll_seconds": 0.3, "post_seconds": 0.3, "lease_seconds": 30}


def missed_last_night(database_url: str) -> None:
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:
        repo_state(session, REPO).last_submitted_at = utcnow() - timedelta(days=2)
    engine.dispose()


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return bool(condition())


def stop(processes: list[subprocess.Popen[bytes]]) -> list[str]:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [process.communicate(timeout=120)[1].decode() for process in processes]


@pytest.mark.postgres
def test_three_instances_post_every_review_exactly_once(tmp_path: Path, postgres_admin, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    name, url = new_postgres_database(postgres_admin)
    try:
        github.add_repo(REPO)
        numbers = [github.open_pull(REPO, title=f"PR {i}", diff=make_diff({f"m/f{i}.py": (None, f"X = {i}\n")}))
                   for i in range(300)]
        service = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}], intervals=FAST)
        assert service.cli("db", "upgrade").exit_code == 0
        missed_last_night(url)
        processes = [service.spawn("--log-level", "info", "run") for _ in range(3)]
        try:
            done = wait_for(lambda: all(j.state == "posted" for j in jobs(url)) and len(jobs(url)) == 300, 480)
        finally:
            logs = stop(processes)
        assert done, logs[0][-3000:]
        assert all(p.returncode == 0 for p in processes), logs
        for number in numbers:
            assert len(own_reviews(github, REPO, number)) == 1
        assert sum(len(b.requests) for b in anthropic_api.batches.values()) == 300  # nothing submitted twice
        actors = {line.split()[0] for log in logs for line in log.splitlines() if "posted" in line}
        assert actors  # the instances logged their work
    finally:
        drop_postgres_database(postgres_admin, name)


def test_sqlite_refuses_a_second_instance(tmp_path: Path, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    service = write_service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api, [{"name": REPO}],
                            intervals=FAST)
    first = service.spawn("--log-level", "info", "run")
    try:
        assert wait_for(lambda: (tmp_path / "r.db.lock").exists(), 60)
        time.sleep(0.5)
        second = service.spawn("run")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "another reviewer instance is already running" in err.decode()
        assert "PostgreSQL" in err.decode()
    finally:
        stop([first])
    assert first.returncode == 0


def test_sigterm_in_the_middle_of_a_cycle_loses_nothing(tmp_path: Path, database_url: str, github) -> None:  # type: ignore[no-untyped-def]
    from reviewer.emulators.anthropic import AnthropicEmulator
    from tests.conftest import ANTHROPIC_KEY

    github.add_repo(REPO)
    numbers = [github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i)) for i in range(3)]
    with AnthropicEmulator(api_key=ANTHROPIC_KEY, polls_to_end=10_000) as api:
        service = write_service(tmp_path, database_url, github, api, [{"name": REPO}], intervals=FAST)
        process = service.spawn("cycle")
        assert wait_for(lambda: len(api.batches) == 1, 60)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()
        assert "stopped on request" in out.decode()
        assert {j.state for j in jobs(database_url)} == {"submitted"}
        api.end_all()
        result = service.cli("cycle")
        assert result.exit_code == 0, result.output
    for number in numbers:
        assert len(own_reviews(github, REPO, number)) == 1
    assert {j.state for j in jobs(database_url)} == {"posted"}

"""Chaos: `reviewer cycle` killed with SIGKILL at random moments while pushes arrive, then ordinary runs.

Whatever the moment of each kill (importing, collecting, between a batch create and its record, while
polling, between a review post and its record), the ordinary runs that follow must leave every open pull
request's final head with exactly one review, no head with two, and no request paid twice: no job has
two succeeded results in the database, and no custom_id succeeded twice at the API.

The seed is fixed per engine so that a failure can be replayed; the test prints how many kills it made
and where each one landed (the last line the killed process had printed).
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, diff_for, jobs, own_reviews, results

pytestmark = pytest.mark.slow
PULLS = 4
KILLS = 12
SEED = 20261201


@pytest.fixture
def service(tmp_path: Path, database_url: str, github: GitHubEmulator, anthropic_api: AnthropicEmulator) -> Service:
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}],
                        intervals={"poll_seconds": 0.05, "lease_seconds": 2.0})
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc


class Watched:
    """A `reviewer --log-level info cycle` subprocess whose log lines are read as they come, with the
    moment each arrived (the log says what it is doing while it does it)."""

    def __init__(self, service: Service) -> None:
        self.started = time.monotonic()
        self.process = service.spawn("--log-level", "info", "cycle")
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for raw in self.process.stderr:
                self.lines.append((time.monotonic() - self.started, raw.decode(errors="replace").strip()))

    def first_line_at(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while not self.lines and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.lines[0][0] if self.lines else time.monotonic() - self.started

    def where(self) -> str:
        """The step the process was in: the logger of its last line (`reviewer.submit` -> submit)."""
        for _, line in reversed(self.lines):
            match = re.search(r" (?:INFO|WARNING|ERROR) reviewer(?:\.(\w+))?: (\w+)", line)
            if match:
                return match.group(1) or match.group(2)
        return "start-up"

    def finish(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # small (one summary per step): it never fills the pipe
            self.process.stdout.read()
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)


def timed_cycle(service: Service) -> tuple[float, float]:
    """One cycle run to its end: when its first log line came (start-up done) and when it ended."""
    watched = Watched(service)
    first = watched.first_line_at()
    watched.finish()
    assert watched.process.returncode == 0, watched.lines[-5:]
    return first, time.monotonic() - watched.started


def kill_at_random(service: Service, rng: random.Random, work_span: float) -> str:
    """A cycle killed at a random moment of its work (after start-up), or let finish if quicker."""
    watched = Watched(service)
    watched.first_line_at()
    try:
        watched.process.wait(timeout=rng.uniform(0, 1.2) * work_span)
        outcome = "finished"
    except subprocess.TimeoutExpired:
        watched.process.kill()
        outcome = "killed"
    watched.finish()
    return f"{outcome} in {watched.where()}"


def push(service: Service, rng: random.Random, numbers: list[int], versions: Counter[int]) -> None:
    for number in rng.sample(numbers, rng.randint(1, 2)):
        versions[number] += 1
        service.github.push(REPO, number, diff_for(number, versions[number] + 1))


def test_random_kills_while_pushes_arrive_lose_nothing_and_pay_nothing_twice(
        service: Service, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(f"{SEED}-{database_url.split(':')[0]}")
    numbers = [service.github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i)) for i in range(PULLS)]
    versions = Counter[int]()
    landed = Counter[str]()
    first_line, ended = timed_cycle(service)  # the first reviews, and the span the kills are spread over
    for _ in range(KILLS):
        if rng.random() < 0.8:
            push(service, rng, numbers, versions)
        landed[kill_at_random(service, rng, ended - first_line)] += 1
        time.sleep(2.1)  # the killed post's lease (2 s): a dead poster is recovered by the next run
    for _ in range(6):  # ordinary runs until nothing is left to do
        assert service.cli("cycle").exit_code == 0
        if all(j.state in ("posted", "skipped", "stale", "failed") for j in jobs(service.database_url)):
            break
    with capsys.disabled():
        kills = sum(n for outcome, n in landed.items() if outcome.startswith("killed"))
        print(f"\nchaos ({database_url.split(':')[0]}): {kills} kills of {KILLS} cycles; "
              + ", ".join(f"{outcome} x{n}" for outcome, n in sorted(landed.items())))

    for number in numbers:
        head = service.github.head_sha(REPO, number)
        reviews = own_reviews(service.github, REPO, number)
        per_head = Counter(review["commit_id"] for review in reviews)
        assert per_head[head] == 1, (number, per_head)
        assert max(per_head.values()) == 1, (number, per_head)  # no head reviewed twice
    succeeded = Counter(r.job_id for r in results(service.database_url) if r.result_type == "succeeded")
    assert not [job for job, n in succeeded.items() if n > 1], succeeded  # no job paid twice
    at_api = Counter(line["custom_id"] for batch in service.anthropic.batches.values() for line in batch.results
                     if line["result"]["type"] == "succeeded")
    assert not [custom for custom, n in at_api.items() if n > 1], at_api

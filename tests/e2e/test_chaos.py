"""Chaos: `reviewer cycle` killed with SIGKILL at random moments while pushes arrive, then ordinary runs.

Whatever the moment of each kill (importing, collecting, between a batch create and its record, while
polling, between a review post and its record), the ordinary runs that follow must leave every open pull
request's final head with exactly one review, no head with two, and no request paid twice: no job has
two succeeded results in the database, and no custom_id succeeded twice at the API.

The seed is fixed per engine so that a failure can be replayed; the test prints how many kills it made
and in which stage each one landed (the stage after the last one that printed its summary).
"""

from __future__ import annotations

import dataclasses
import random
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

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


STAGES = ("collect", "submit", "poll", "post")
_SUMMARY = re.compile(rf"^({'|'.join(STAGES)}): ")


class Watched:
    """A `reviewer --log-level info cycle` subprocess whose output is read as it comes, with the moment
    each line arrived: its log (stderr) says start-up is over, its stage summaries (stdout, unbuffered)
    say which stage ended last, so a kill is placed in the stage that was running."""

    def __init__(self, service: Service) -> None:
        self.started = time.monotonic()
        self.process = dataclasses.replace(service, env={**service.env, "PYTHONUNBUFFERED": "1"}).spawn(
            "--log-level", "info", "cycle")
        self.lines: list[tuple[float, str]] = []
        self.summaries: list[tuple[float, str]] = []  # (when, stage) of each stage summary
        self._readers = [threading.Thread(target=self._read, args=(stream, sink), daemon=True)
                         for stream, sink in ((self.process.stderr, self.lines), (self.process.stdout, None))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[bytes] | None, sink: list[tuple[float, str]] | None) -> None:
        assert stream is not None
        with stream:
            for raw in stream:
                line = raw.decode(errors="replace").strip()
                if sink is not None:
                    sink.append((time.monotonic() - self.started, line))
                elif (found := _SUMMARY.match(line)) is not None:
                    self.summaries.append((time.monotonic() - self.started, found.group(1)))

    def began(self, stage: str) -> float | None:
        """When `stage` began (start-up at once, collect at the first log line, any other when the stage
        before it printed its summary); None if it has not yet."""
        if stage == "start-up":
            return 0.0
        if stage == "collect":
            return self.lines[0][0] if self.lines else None
        before = STAGES[STAGES.index(stage) - 1]
        return next((at for at, done in self.summaries if done == before), None)

    def wait_for(self, stage: str, timeout: float = 120) -> float | None:
        deadline = time.monotonic() + timeout
        while (at := self.began(stage)) is None and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return at

    def where(self) -> str:
        """The stage that was running: the one after the last stage that printed its summary."""
        if not self.summaries:
            return "collect" if self.lines else "start-up"
        done = STAGES.index(self.summaries[-1][1])
        return STAGES[done + 1] if done + 1 < len(STAGES) else "the end"

    def finish(self) -> None:
        self.process.wait(timeout=60)
        for reader in self._readers:
            reader.join(timeout=10)


def timed_cycle(service: Service) -> dict[str, float]:
    """One cycle run to its end: how long its start-up and each of its stages took."""
    watched = Watched(service)
    watched.finish()
    assert watched.process.returncode == 0, watched.lines[-5:]
    began = [watched.began(stage) for stage in ("start-up", *STAGES)]
    ends = [*began[1:], time.monotonic() - watched.started]
    return {stage: max(end - start, 0.05) for stage, start, end in zip(("start-up", *STAGES), began, ends, strict=True)
            if start is not None and end is not None}


def kill_at_random(service: Service, rng: random.Random, spans: dict[str, float]) -> str:
    """A cycle killed at a random moment of a stage chosen at random (each as likely as the others,
    however short), or let finish if it is quicker."""
    stage = rng.choice(sorted(spans))
    watched = Watched(service)
    began = watched.wait_for(stage)
    try:  # a cycle that did not get there in time (stuck, or slow) is killed where it is
        watched.process.wait(timeout=0 if began is None else rng.uniform(0, 1.0) * spans[stage])
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
    spans = timed_cycle(service)  # the first reviews, and how long each stage takes: where kills are aimed
    for _ in range(KILLS):
        if rng.random() < 0.8:
            push(service, rng, numbers, versions)
        landed[kill_at_random(service, rng, spans)] += 1
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

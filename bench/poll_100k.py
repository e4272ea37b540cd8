"""Benchmark: the real `poll` stage storing the results of one ended batch of N small requests (default
100,000), the Anthropic emulator in its own process (so the service's memory and time are its own).

Prints the wall time of `poll_batches` until the batch's results are stored, the service's CPU time in
it (wall time on a shared machine includes waiting for a core), results per second, and the process's
ru_maxrss (peak RSS) before and after the poll.

    PYTHONPATH=. python bench/poll_100k.py [--requests N] [--database-url URL] [--analyze] [--profile]

It inserts N jobs in `submitted` with their batch row straight into a fresh database (SQLite in a
temporary folder unless --database-url, which must point at an empty database), creates the matching
batch in the emulator with the real `anthropic` client (small requests with the `report_review` tool,
custom_ids `<deployment prefix>-<job id>`; sent from a child process, so that the request list is not
in the service's peak RSS), ends it there, and then times one `poll_batches(rt)`: the retrieve, the
streamed download and the storing of every line. The emulator computes the results when the batch
ends, before the clock starts.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
from sqlalchemy import func, insert, select, text

from bench._emulators import EmulatorProcess
from reviewer.config import settings_from_mapping
from reviewer.db import transaction, utcnow
from reviewer.jobs import custom_id
from reviewer.models import Batch, Result, ReviewJob, deployment_prefix
from reviewer.poll import poll_batches
from reviewer.queue import BatchState, State
from reviewer.report import StageReport
from reviewer.review.parse import REVIEW_TOOL, TOOL_NAME
from reviewer.runtime import Runtime

API_KEY = "sk-ant-bench"
MODEL = "claude-opus-4-7"
REPOSITORIES = 10
INSERT_CHUNK = 5_000
DIFF = "+def average(items):\n+    return sum(items) / len(items)  # may divide by zero\n"


def runtime(database_url: str, api_url: str) -> Runtime:
    raw = {"database_url": database_url, "defaults": {"model": MODEL, "max_tokens": 1024},
           "repositories": [{"name": f"bench/repo-{r}"} for r in range(REPOSITORIES)],
           "intervals": {"poll_seconds": 0.01, "lease_seconds": 3600}}
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": api_url}
    rt = Runtime(settings_from_mapping(raw, "bench", env, Path.cwd()))
    rt.prepare_database(migrate=True)
    return rt


def requests(prefix: str, n: int) -> Iterator[dict[str, Any]]:
    for job_id in range(1, n + 1):
        yield {"custom_id": custom_id(prefix, job_id), "params": {
            "model": MODEL, "max_tokens": 1024, "tools": [REVIEW_TOOL],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
            "messages": [{"role": "user", "content": f"Review pull request {job_id}:\n{DIFF}"}]}}


def create_batch(api_url: str, prefix: str, n: int) -> str:
    """Create the batch from a process of its own, so its request list stays out of the service's peak RSS."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return str(pool.apply(_create, (api_url, prefix, n)))


def _create(api_url: str, prefix: str, n: int) -> str:
    client = anthropic.Anthropic(api_key=API_KEY, base_url=api_url, max_retries=0, timeout=600)
    try:
        return client.messages.batches.create(requests=list(requests(prefix, n))).id  # type: ignore[arg-type]
    finally:
        client.close()


def job_rows(n: int, batch_id: int) -> Iterator[list[dict[str, Any]]]:
    now = utcnow()
    chunk: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        chunk.append({"id": i, "repository": f"bench/repo-{i % REPOSITORIES}", "pr_number": i,
                      "head_sha": f"{i:040x}", "diff": DIFF, "state": State.SUBMITTED.value, "attempts": 1,
                      "post_attempts": 0, "batch_id": batch_id, "model": MODEL, "created_at": now, "updated_at": now})
        if len(chunk) == INSERT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build(rt: Runtime, anthropic_id: str, n: int) -> None:
    """The batch row and its N submitted jobs, as `submit` leaves them."""
    with transaction(rt.sessions) as session:
        batch = Batch(state=BatchState.SUBMITTED.value, anthropic_id=anthropic_id, request_count=n,
                      created_at=utcnow(), submitted_at=utcnow(), custom_id_prefix=rt.custom_id_prefix)
        session.add(batch)
        session.flush()
        batch_id = batch.id
    for chunk in job_rows(n, batch_id):
        with transaction(rt.sessions) as session:
            session.execute(insert(ReviewJob), chunk)


def stored(rt: Runtime) -> tuple[int, str, dict[str, int]]:
    with rt.sessions() as session:
        results = session.scalar(select(func.count()).select_from(Result)) or 0
        state = session.scalars(select(Batch.state)).one()
        jobs = {state: count for state, count in
                session.execute(select(ReviewJob.state, func.count()).group_by(ReviewJob.state))}
    return results, state, jobs


def profiled(stage: Callable[[Runtime], StageReport], rt: Runtime) -> StageReport:
    profiler = cProfile.Profile()
    report = profiler.runcall(stage, rt)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    return report


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(n: int, database_url: str, profile: bool = False, analyze: bool = False) -> None:
    with EmulatorProcess("anthropic", api_key=API_KEY, polls_to_end=1) as api:
        rt = runtime(database_url, api.url)
        try:
            with rt.sessions() as session:
                prefix = deployment_prefix(session)
            started = time.perf_counter()
            anthropic_id = create_batch(api.url, prefix, n)
            build(rt, anthropic_id, n)
            api.call("end_all")  # the results are computed now, in the emulator's process
            if analyze:
                with rt.engine.begin() as connection:  # what autovacuum does a minute after a large change
                    connection.execute(text("ANALYZE"))
            print(f"  setup (create batch, insert jobs, end)   {time.perf_counter() - started:10.1f} s")
            before, cpu = rss_mib(), time.process_time()
            started = time.perf_counter()
            report = profiled(poll_batches, rt) if profile else poll_batches(rt)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            results, state, jobs = stored(rt)
            print(f"  poll_batches wall time                   {wall:10.1f} s")
            print(f"  service CPU time (user + system)         {cpu:10.1f} s")
            print(f"  results per second                       {results / wall:10,.0f}")
            print(f"  results stored                           {results:10,}  (batch {state}; jobs {jobs})")
            print(f"  service ru_maxrss before / after poll    {before:10,.0f} / {rss_mib():,.0f} MiB")
            print(f"  emulator process                         {api.usage()}")
            if report.errors:
                print("poll errors:", *report.errors, sep="\n  ", file=sys.stderr)
        finally:
            rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the poll on stderr")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the fresh tables before the poll (as autovacuum would have by then)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        print(f"poll + store {args.requests:,} results, database {url.split('://')[0]}")
        run(args.requests, url, args.profile, args.analyze)


if __name__ == "__main__":
    main()

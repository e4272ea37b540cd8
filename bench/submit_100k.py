"""Benchmark: the real `submit` stage on a queue of N small review jobs (default 100,000), against an
in-process Anthropic emulator over real HTTP, on a fresh SQLite database (or --database-url).

Prints wall time (queue build, render + submit), peak memory (tracemalloc: the stage's peak above what was
already allocated when it started; and the process's ru_maxrss), the number of batches
and requests, and with --poll the time to poll and store every result and to build `reviewer costs` over
them (every grouping).

    python bench/submit_100k.py [--requests N] [--repositories R] [--database-url URL] [--poll]
                                [--no-tracemalloc]

The emulator runs in this process, so both memory figures include what it allocates while the stage runs
(it parses every create body and builds every results download). tracemalloc slows allocation-heavy code
several times over; use --no-tracemalloc for wall times that are not inflated by it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from reviewer.config import settings_from_mapping
from reviewer.db import transaction, utcnow
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.samples import make_diff
from reviewer.ledger import GROUPINGS, format_ledger, read_ledger
from reviewer.models import Batch, Result, ReviewJob
from reviewer.pipeline import wait_for_batches
from reviewer.runtime import Runtime
from reviewer.submit import submit_queued

API_KEY = "sk-ant-bench"
MODEL = "claude-opus-4-7"
INSERT_CHUNK = 5_000
BEFORE = "def total(items):\n    return sum(items)\n"


def small_diff(i: int) -> str:
    after = BEFORE + f"\n\ndef average_{i}(items):\n    return total(items) / len(items)  # may divide by zero\n"
    return make_diff({f"src/module_{i % 97}.py": (BEFORE, after)})


def job_rows(n: int, repositories: int) -> Iterator[list[dict[str, Any]]]:
    now = utcnow()
    chunk: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        chunk.append({"repository": f"bench/repo-{i % repositories}", "pr_number": i, "head_sha": f"{i:040x}",
                      "base_ref": "main", "head_ref": f"feature-{i}", "title": f"Average helper {i}",
                      "author": "dev", "body": "", "url": "", "labels": "", "diff": small_diff(i),
                      "diff_source": "diff", "state": "queued", "attempts": 0, "post_attempts": 0,
                      "created_at": now, "updated_at": now})
        if len(chunk) == INSERT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build_queue(rt: Runtime, n: int, repositories: int) -> None:
    for chunk in job_rows(n, repositories):
        with transaction(rt.sessions) as session:
            session.execute(insert(ReviewJob), chunk)


@contextmanager
def measured(label: str, trace: bool, out: dict[str, float]) -> Iterator[None]:
    if trace:
        tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0] if trace else 0
    start = time.perf_counter()
    yield
    out[f"{label} s"] = time.perf_counter() - start
    if trace:  # the peak above what was already held (the emulator's batches, earlier stages' leftovers)
        out[f"{label} tracemalloc peak MiB (+)"] = (tracemalloc.get_traced_memory()[1] - before) / 2**20
    out[f"{label} ru_maxrss MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def runtime(database_url: str, api: AnthropicEmulator, repositories: int) -> Runtime:
    raw = {"database_url": database_url, "defaults": {"model": MODEL, "max_tokens": 1024},
           "repositories": [{"name": f"bench/repo-{r}"} for r in range(repositories)],
           "intervals": {"poll_seconds": 0.01, "lease_seconds": 3600}}
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": api.url}
    rt = Runtime(settings_from_mapping(raw, "bench", env, Path.cwd()))
    rt.prepare_database(migrate=True)
    return rt


def counts(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as session:
        return {"batches": session.scalar(select(func.count()).select_from(Batch)) or 0,
                "results": session.scalar(select(func.count()).select_from(Result)) or 0}


def run(args: argparse.Namespace, database_url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with AnthropicEmulator(api_key=API_KEY, polls_to_end=1) as api:
        rt = runtime(database_url, api, args.repositories)
        try:
            if args.trace:
                tracemalloc.start()
            with measured("queue build", args.trace, out):
                build_queue(rt, args.requests, args.repositories)
            with measured("render+submit", args.trace, out):
                report = submit_queued(rt)
            out["batches"] = report.counts.get("batches", 0)
            out["requests submitted"] = report.counts.get("submitted", 0)
            out["requests per batch (emulator)"] = max((len(b.requests) for b in api.batches.values()), default=0)
            if args.poll:
                with measured("poll+store", args.trace, out):
                    wait_for_batches(rt)
                out["results stored"] = counts(rt)["results"]
                with measured("ledger, all groupings", args.trace, out), rt.sessions() as session:
                    format_ledger(read_ledger(session, GROUPINGS), "table")
            if report.errors:
                print("submit errors:", *report.errors, sep="\n  ", file=sys.stderr)
        finally:
            rt.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repositories", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--poll", action="store_true", help="then poll and store every result")
    parser.add_argument("--no-tracemalloc", dest="trace", action="store_false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        print(f"{args.requests:,} jobs in {args.repositories} repositories, database "
              f"{url.split('://')[0]}, tracemalloc {'on' if args.trace else 'off'}")
        for name, value in run(args, url).items():
            print(f"  {name:<44} {value:>12,.1f}" if isinstance(value, float) else f"  {name:<44} {value:>12,}")


if __name__ == "__main__":
    main()

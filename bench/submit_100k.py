"""Benchmark: the real `submit` stage on a queue of N small review jobs (default 100,000), the Anthropic
emulator in its own process (bench/_emulators.py) so that the memory and CPU figures are the service's
own, on a fresh SQLite database (or --database-url, which must point at an empty database).

Prints the wall time of the queue build and of render + submit, the CPU seconds the service spent in
submit, the number of batches and requests and the largest create body (as the emulator received them),
the service's peak RSS (ru_maxrss of this process, which is the service: the queue build and submit
run here) and the emulator's, printed apart; with --poll, the time to poll and store every result and to
build `reviewer costs` over them (every grouping).

    PYTHONPATH=. python bench/submit_100k.py [--requests N] [--repositories R] [--database-url URL]
                                             [--poll] [--tracemalloc]

--tracemalloc adds the stage's Python-heap peak above what was allocated when it started (slower).
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

from bench._emulators import EmulatorProcess
from reviewer.config import settings_from_mapping
from reviewer.db import transaction, utcnow
from reviewer.emulators.samples import make_diff
from reviewer.ledger import GROUPINGS, format_ledger, read_ledger
from reviewer.models import Result, ReviewJob
from reviewer.pipeline import wait_for_batches
from reviewer.report import Count
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


def created_batches(emulator: Any) -> dict[str, int]:
    """In the emulator's process: the batches it holds and the largest create body it was sent."""
    bodies = [int(r.headers.get("content-length") or 0) for r in emulator.server.requests
              if r.method == "POST" and r.path == "/v1/messages/batches"]
    sizes = [len(b.requests) for b in emulator.batches.values()]
    return {"batches": len(sizes), "largest batch": max(sizes, default=0), "largest body": max(bodies, default=0)}


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


@contextmanager
def measured(label: str, trace: bool, out: dict[str, float]) -> Iterator[None]:
    if trace:
        tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0] if trace else 0
    start, cpu = time.perf_counter(), cpu_seconds()
    yield
    out[f"{label} s"] = time.perf_counter() - start
    out[f"{label} CPU s (service)"] = cpu_seconds() - cpu
    if trace:  # the peak above what was already held (earlier stages' leftovers)
        out[f"{label} tracemalloc peak MiB (+)"] = (tracemalloc.get_traced_memory()[1] - before) / 2**20
    out[f"{label} service ru_maxrss MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB


def runtime(database_url: str, api_url: str, repositories: int) -> Runtime:
    raw = {"database_url": database_url, "defaults": {"model": MODEL, "max_tokens": 1024},
           "repositories": [{"name": f"bench/repo-{r}"} for r in range(repositories)],
           "intervals": {"poll_seconds": 0.01, "lease_seconds": 3600}}
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": api_url}
    rt = Runtime(settings_from_mapping(raw, "bench", env, Path.cwd()))
    rt.prepare_database(migrate=True)
    return rt


def stored_results(rt: Runtime) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(Result)) or 0


def run(args: argparse.Namespace, database_url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with EmulatorProcess("anthropic", api_key=API_KEY, polls_to_end=1) as api:
        rt = runtime(database_url, api.url, args.repositories)
        try:
            if args.trace:
                tracemalloc.start()
            with measured("queue build", args.trace, out):
                build_queue(rt, args.requests, args.repositories)
            with measured("render+submit", args.trace, out):
                report = submit_queued(rt)
            out["requests submitted"] = report.counts.get(Count.SUBMITTED, 0)
            out.update(api.seed("bench.submit_100k:created_batches"))
            if args.poll:
                with measured("poll+store", args.trace, out):
                    wait_for_batches(rt)
                out["results stored"] = stored_results(rt)
                with measured("ledger, all groupings", args.trace, out), rt.sessions() as session:
                    format_ledger(read_ledger(session, GROUPINGS), "table")
            usage = api.usage()
            out["emulator ru_maxrss MiB (own process)"] = usage["max_rss_mib"]
            out["emulator CPU s (own process)"] = usage["cpu_seconds"]
            if report.errors:
                print("submit errors:", *report.errors, sep="\n  ", file=sys.stderr)
        finally:
            rt.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repositories", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="an empty database; default: a fresh SQLite file")
    parser.add_argument("--poll", action="store_true", help="then poll and store every result")
    parser.add_argument("--tracemalloc", dest="trace", action="store_true", help="also the Python-heap peak")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        print(f"{args.requests:,} jobs in {args.repositories} repositories, database "
              f"{url.split('://')[0]}, tracemalloc {'on' if args.trace else 'off'}")
        for name, value in run(args, url).items():
            print(f"  {name:<44} {value:>14,.1f}" if isinstance(value, float) else f"  {name:<44} {value:>14,}")


if __name__ == "__main__":
    main()

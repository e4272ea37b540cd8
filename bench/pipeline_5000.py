"""Benchmark: the whole pipeline on an organisation-sized load (default 5,000 pull requests over 50
repositories) through the local emulators, with the real PyGithub and anthropic clients.

Prints wall time per stage, GitHub requests per reviewed pull request (by endpoint; those answered 304
cost no quota and are counted apart), and peak memory.
The emulators run in this process, so the memory figures include them (an upper bound for the service).

    python bench/pipeline_5000.py                      # 5,000 PRs, 50 repositories, SQLite in a temp dir
    python bench/pipeline_5000.py --prs 500 --repos 10 --database-url postgresql://postgres@127.0.0.1/bench
    python bench/pipeline_5000.py --freshness-seconds 0   # the check before posting lists again before every post
    python bench/pipeline_5000.py --prs 120 --repos 2 --paced   # one post a second, as GitHub paces writes
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reviewer.collect import collect_pulls
from reviewer.config import settings_from_mapping
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import make_diff
from reviewer.pipeline import wait_for_batches
from reviewer.post import post_answered
from reviewer.runtime import Runtime
from reviewer.submit import submit_queued

BEFORE = "".join(f"def handler_{i}(request):\n    return respond(request, {i})\n\n" for i in range(12))


def pull_diff(repo: int, number: int) -> str:
    after = BEFORE.replace("respond(request, 3)", f"respond(request, {number}, timeout=None)")
    after += (f"\n\ndef search_{number}(conn, name):\n"
              f"    return conn.execute(f\"SELECT * FROM t WHERE n = '{{name}}'\")\n")
    return make_diff({f"svc{repo}/handlers.py": (BEFORE, after)})


def seed(github: GitHubEmulator, repos: int, prs: int) -> list[str]:
    names = [f"org/service-{r:02d}" for r in range(repos)]
    for r, name in enumerate(names):
        github.add_repo(name)
        for n in range(prs // repos):
            github.open_pull(name, title=f"Change {n}", diff=pull_diff(r, n))
    return names


def endpoint(path: str) -> str:
    path = re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{repo}", path)
    return re.sub(r"/\d+", "/{n}", path)


def timed(label: str, run: Callable[[], Any], times: dict[str, float]) -> Any:
    started = time.perf_counter()
    result = run()
    times[label] = time.perf_counter() - started
    print(f"  {label:<10} {times[label]:8.1f} s   {getattr(result, 'summary', lambda: '')()}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prs", type=int, default=5000)
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--freshness-seconds", type=float, default=10.0, help="github.freshness_seconds")
    parser.add_argument("--paced", action="store_true",
                        help="post at GitHub's pace for content-creating requests (write_pause_seconds 1): "
                             "use with a small --prs, e.g. --prs 120 --repos 2")
    parser.add_argument("--trace-memory", action="store_true", help="also trace Python allocations (slow)")
    args = parser.parse_args()
    if args.trace_memory:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp, GitHubEmulator(token="ghp_bench") as github, \
            AnthropicEmulator(api_key="sk-ant-bench", polls_to_end=1) as anthropic:
        names = seed(github, args.repos, args.prs)
        raw: dict[str, Any] = {"database_url": args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}",
               "repositories": [{"name": n} for n in names], "intervals": {"poll_seconds": 0.5},
               "github": {"write_pause_seconds": 1.0 if args.paced else 0,
                          "freshness_seconds": args.freshness_seconds},
               "defaults": {"max_tokens": 2048}}
        env = {"GITHUB_TOKEN": "ghp_bench", "ANTHROPIC_API_KEY": "sk-ant-bench", "GITHUB_API_URL": github.url,
               "ANTHROPIC_BASE_URL": anthropic.url}
        rt = Runtime(settings_from_mapping(raw, "bench.yml", env, Path(tmp)))
        rt.prepare_database(migrate=True)
        github.server.requests.clear()
        print(f"{args.prs} pull requests in {args.repos} repositories; database {raw['database_url'].split(':')[0]}")
        times: dict[str, float] = {}
        timed("collect", lambda: collect_pulls(rt), times)
        timed("submit", lambda: submit_queued(rt), times)
        timed("poll", lambda: wait_for_batches(rt)[-1], times)
        posted = timed("post", lambda: post_answered(rt), times)
        collect_again = github.server.count()
        timed("re-collect", lambda: collect_pulls(rt), times)  # nothing changed: listings only
        again = github.server.count() - collect_again
        rt.close()
        reviewed = posted.counts.get("posted", 0)
        run = github.server.requests[:collect_again]
        requests = collections.Counter(f"{r.method} {endpoint(r.path)}" for r in run)
        free = collections.Counter(f"{r.method} {endpoint(r.path)}" for r in run if r.status == 304)
        total, charged = len(run), sum(1 for r in run if r.status != 304)
        peak = tracemalloc.get_traced_memory()[1] if args.trace_memory else 0
        pipeline = sum(t for label, t in times.items() if label != "re-collect")
        print(f"\nreviews posted: {reviewed}; wall time of the four stages {pipeline:.1f} s")
        print(f"GitHub requests for the run: {charged} charged = {charged / max(reviewed, 1):.2f} per reviewed PR "
              f"(sent: {total} = {total / max(reviewed, 1):.2f}, of which {total - charged} answered 304, free)")
        print(f"  {'charged':>7}  {'304':>6}  endpoint")
        for name, count in requests.most_common():
            print(f"  {count - free[name]:7d}  {free[name]:6d}  {name}")
        print(f"second collection of unchanged PRs: {again} requests "
              f"({sum(1 for r in github.server.requests[-again:] if r.status == 304) if again else 0} answered 304)")
        traced = f"{peak / 2**20:.0f} MiB traced by Python, " if args.trace_memory else ""
        print(f"peak memory: {traced}{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB max RSS "
              "(emulators included)")


if __name__ == "__main__":
    main()

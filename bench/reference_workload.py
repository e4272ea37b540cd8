"""Benchmark: the reference workload side by side (issue 10, target 5). 5,000 pull requests over 50
repositories, each with a diff of about 75 KB (about 20,000 input tokens: many hunks over several files,
deterministic from `--seed`, generated inside the GitHub emulator's process), served by the emulators in
processes of their own, run twice:

1. the guide's naive script (bench/_guide_script.py, a process of its own): PyGithub fetches every diff,
   every request is built in memory, ONE create (over the 256 MB limit at this size: the API answers 413),
   then the same requests split in two creates, retrieve until ended, every result listed;
2. the service: `reviewer collect`, `submit`, `poll --wait`, `post`, each the venv's real `reviewer`
   command in a process of its own, on a config file in a temp dir and SQLite (or `--database-url`).

Wall time, CPU (user + sys, from os.wait4) and max RSS of every process; batches created and the largest
create body (the Content-Length of each create, read from the Anthropic emulator's request log inside its
process); GitHub requests per reviewed PR (the GitHub emulator's log); reviews posted; what the guide's
single create got back; and the CPU ratio service / guide.

    PYTHONPATH=. .venv/bin/python bench/reference_workload.py                       # full size
    PYTHONPATH=. .venv/bin/python bench/reference_workload.py --prs 200 --repos 5   # small
    PYTHONPATH=. .venv/bin/python bench/reference_workload.py --database-url postgresql://postgres@127.0.0.1/bench_ref
    PYTHONPATH=. .venv/bin/python bench/reference_workload.py --profile post        # that phase under cProfile

`--database-url` must name an empty database. `--profile PHASE` runs that service phase under cProfile
(its numbers then include the profiler's overhead) and prints the 15 entries of largest cumulative time.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._emulators import ROOT, EmulatorProcess
from bench._reference_diffs import Repository

TOKEN, KEY = "ghp_bench", "sk-ant-bench"
SERVICE_PHASES = (("collect", ["collect"]), ("submit", ["submit"]), ("poll", ["poll", "--wait"]),
                  ("post", ["post"]))
GUIDE_ROWS = {"collect": "load diffs", "submit": "build + create", "poll": "poll + results"}
BATCHES_PATH = "/v1/messages/batches"


# in the emulators' processes (through EmulatorProcess.seed) ----------------------------------------------


def repo_name(index: int) -> str:
    return f"org/service-{index:02d}"


def seed(github: Any, *, seed: int, repos: int, prs: int, diff_bytes: int) -> dict[str, Any]:
    """Opens `prs` pull requests over `repos` repositories; the size of their diffs."""
    sizes: list[int] = []
    for r in range(repos):
        github.add_repo(repo_name(r))
        repository = Repository(seed, r)
        for number in range(1, prs // repos + (r < prs % repos) + 1):
            diff = repository.pull_diff(seed, number, diff_bytes)
            github.open_pull(repo_name(r), title=f"Rework the {r}/{number} handlers", diff=diff,
                             body="Refactors the handlers and adds the missing checks.")
            sizes.append(len(diff.encode()))
    return {"pulls": len(sizes), "mean_bytes": sum(sizes) / max(len(sizes), 1), "max_bytes": max(sizes, default=0)}


def create_bodies(anthropic: Any) -> list[tuple[int, int]]:
    """(Content-Length, status) of every batch create the emulator received."""
    return [(int(r.headers.get("content-length") or 0), r.status) for r in anthropic.server.requests
            if r.method == "POST" and r.path.rstrip("/") == BATCHES_PATH]


def reviews_posted(github: Any, login: str = "reviewer-bot") -> int:
    return sum(1 for repo in github._repos.values() for pull in repo.pulls.values()
               for review in pull.reviews if review["user_login"] == login)


# measuring a process --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    wall: float
    cpu: float
    max_rss_mib: float


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[Usage, str]:
    """Runs argv to completion; its wall time, CPU and max RSS (os.wait4), and its output."""
    with log.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, rusage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if child.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv[-3:])} exited {child.returncode}: {text.strip()[-600:]}")
    return Usage(wall, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss / 1024), text


# run 1: the guide -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuideRun:
    total: Usage
    phases: dict[str, Usage]
    report: dict[str, Any]
    bodies: list[tuple[int, int]]
    github_requests: int


def guide_phases(total: Usage, marks: list[dict[str, Any]]) -> dict[str, Usage]:
    """Per-phase usage from the script's own marks (max RSS is the process's peak so far)."""
    phases = {"start-up": Usage(total.wall - (marks[-1]["wall"] - marks[0]["wall"]), marks[0]["cpu"],
                                marks[0]["max_rss_mib"])}
    for before, after in itertools.pairwise(marks):
        phases[after["phase"]] = Usage(after["wall"] - before["wall"], after["cpu"] - before["cpu"],
                                       after["max_rss_mib"])
    return phases


def run_guide(github: EmulatorProcess, repos: int, parts: int, tmp: Path) -> GuideRun:
    with EmulatorProcess("anthropic", api_key=KEY, polls_to_end=1) as anthropic:
        github.clear()
        out = tmp / f"guide-{parts}.json"
        argv = [sys.executable, "-m", "bench._guide_script", "--github-url", github.url, "--anthropic-url",
                anthropic.url, "--github-token", TOKEN, "--anthropic-key", KEY, "--out", str(out),
                "--parts", str(parts), *[f"--repo={repo_name(r)}" for r in range(repos)]]
        print(f"guide, {parts} create(s) ...", flush=True)
        total, _ = run_measured(argv, _env(), tmp / f"guide-{parts}.log")
        report = json.loads(out.read_text())
        bodies = anthropic.seed("bench.reference_workload:create_bodies")
        return GuideRun(total, guide_phases(total, report["marks"]), report, bodies, len(github.requests()))


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


# run 2: the service ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRun:
    phases: dict[str, Usage]
    outputs: dict[str, str]
    bodies: list[tuple[int, int]]
    requests: dict[str, collections.Counter[str]]  # phase -> endpoint -> count
    posted: int
    profile: Path | None


def write_config(tmp: Path, repos: int, database_url: str | None) -> Path:
    config = {"database_url": database_url or f"sqlite:///{tmp / 'reviewer.db'}",
              "repositories": [{"name": repo_name(r)} for r in range(repos)],
              "intervals": {"poll_seconds": 0.5}, "github": {"write_pause_seconds": 0}}
    path = tmp / "reviewer.yml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def endpoint(method: str, path: str) -> str:
    path = re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{repo}", path)
    return f"{method} {re.sub(r'/[0-9]+', '/{n}', path)}"


def service_argv(config: Path, args: list[str], profile: Path | None) -> list[str]:
    if profile is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "reviewer", "--config", str(config),
                *args]
    return [str(Path(sys.executable).parent / "reviewer"), "--config", str(config), *args]


def run_service(github: EmulatorProcess, repos: int, database_url: str | None, profile_phase: str | None,
                tmp: Path) -> ServiceRun:
    with EmulatorProcess("anthropic", api_key=KEY, polls_to_end=1) as anthropic:
        config = write_config(tmp, repos, database_url)
        env = _env(GITHUB_TOKEN=TOKEN, ANTHROPIC_API_KEY=KEY, GITHUB_API_URL=github.url,
                   ANTHROPIC_BASE_URL=anthropic.url)
        env.pop("REVIEWER_DATABASE_URL", None)
        env.pop("REVIEWER_CONFIG", None)
        run_measured(service_argv(config, ["db", "upgrade"], None), env, tmp / "db-upgrade.log")
        phases, outputs, requests = {}, {}, {}
        profile = tmp / f"{profile_phase}.prof" if profile_phase else None
        for name, args in SERVICE_PHASES:
            github.clear()
            print(f"service: reviewer {' '.join(args)} ...", flush=True)
            argv = service_argv(config, args, profile if name == profile_phase else None)
            phases[name], outputs[name] = run_measured(argv, env, tmp / f"{name}.log")
            requests[name] = collections.Counter(endpoint(m, p) for m, p, _ in github.requests())
            print(f"  {phases[name].wall:.1f} s wall, {phases[name].cpu:.1f} s CPU: "
                  f"{outputs[name].strip().splitlines()[-1] if outputs[name].strip() else ''}", flush=True)
        bodies = anthropic.seed("bench.reference_workload:create_bodies")
    return ServiceRun(phases, outputs, bodies, requests, github.seed("bench.reference_workload:reviews_posted"),
                      profile)


# the table ------------------------------------------------------------------------------------------------


def _cell(usage: Usage | None) -> str:
    if usage is None:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    return f"{usage.wall:8.1f} {usage.cpu:8.1f} {usage.max_rss_mib:8.0f}"


def _mb(size: int) -> str:
    return f"{size:,} bytes ({size / 1e6:.1f} MB, {size / 2**20:.1f} MiB)"


def _creates(bodies: list[tuple[int, int]]) -> str:
    ok = [size for size, status in bodies if status == 200]
    refused = [f"{status} ({size:,} bytes)" for size, status in bodies if status != 200]
    largest = _mb(max(ok)) if ok else "none accepted"
    return f"{len(ok)} created, largest body {largest}" + (f"; refused: {', '.join(refused)}" if refused else "")


def print_table(workload: dict[str, Any], single: GuideRun, halves: GuideRun, service: ServiceRun) -> None:
    print(f"\n{workload['pulls']} pull requests in {workload['repos']} repositories, diffs of "
          f"{workload['mean_bytes'] / 1000:.1f} KB on average (largest {workload['max_bytes'] / 1000:.1f} KB)\n")
    print(f"{'phase':<26} {'guide (2 creates)':>26}   {'service':>26}")
    print(f"{'':<26} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8}   {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8}")
    rows: list[tuple[str, Usage | None, Usage | None]] = [("start-up (imports)", halves.phases.get("start-up"), None)]
    for name, _ in SERVICE_PHASES:
        label = f"{name} / {GUIDE_ROWS[name]}" if name in GUIDE_ROWS else name
        rows.append((label, halves.phases.get(GUIDE_ROWS.get(name, "")), service.phases[name]))
    rows.append(("guide: process results", halves.phases.get("process"), None))
    service_total = Usage(sum(u.wall for u in service.phases.values()), sum(u.cpu for u in service.phases.values()),
                          max(u.max_rss_mib for u in service.phases.values()))
    rows.append(("total (whole processes)", halves.total, service_total))
    for label, guide, ours in rows:
        print(f"{label:<26} {_cell(guide)}   {_cell(ours)}")
    print_facts(single, halves, service, service_total)


def print_facts(single: GuideRun, halves: GuideRun, service: ServiceRun, service_total: Usage) -> None:
    create = single.report["creates"][0]
    answer = (f"HTTP {create['status']} {create['error']}: {create['message']}" if "status" in create
              else f"accepted ({create['batch_id']})")
    github = sum(sum(c.values()) for c in service.requests.values())
    load_cpu = halves.phases["load diffs"].cpu
    print(f"\nguide, one create of {create['requests']} requests: {answer}")
    print(f"  its process: {_cell(single.total).strip()} (wall s, CPU s, RSS MiB); creates {_creates(single.bodies)}")
    print(f"guide, two creates: {_creates(halves.bodies)}; results saved {halves.report['saved']}, "
          f"errored {halves.report['errors']}; GitHub requests {halves.github_requests}")
    print(f"service: {_creates(service.bodies)}; reviews posted {service.posted}")
    print(f"GitHub requests per reviewed PR (service): {github} / {service.posted} = "
          f"{github / max(service.posted, 1):.2f}")
    for phase, counts in service.requests.items():
        print(f"  {phase:<8} " + ", ".join(f"{n} {e}" for e, n in counts.most_common()))
    print(f"CPU service / guide: {service_total.cpu:.1f} / {halves.total.cpu:.1f} s = "
          f"{service_total.cpu / halves.total.cpu:.2f}x (guide without fetching diffs: "
          f"{halves.total.cpu - load_cpu:.1f} s, {service_total.cpu / max(halves.total.cpu - load_cpu, 1e-9):.2f}x)")


WRAPPERS = r"^(?!.*(click/|runpy|reviewer/cli\.py|reviewer/__main__|builtins\.exec))"  # the command's frames


def print_profile(path: Path, count: int = 15) -> None:
    print(f"\ncProfile of {path.stem}: top {count} by cumulative time (below the CLI's own frames), then by own time")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(WRAPPERS, count)
    stats.sort_stats("tottime").print_stats(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prs", type=int, default=5000)
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--diff-kb", type=float, default=75.0, help="diff size per PR, in KB of 1,000 bytes")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temp dir)")
    parser.add_argument("--profile", choices=[name for name, _ in SERVICE_PHASES], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess("github", token=TOKEN) as github:
        started = time.perf_counter()
        workload = github.seed("bench.reference_workload:seed", seed=args.seed, repos=args.repos, prs=args.prs,
                               diff_bytes=int(args.diff_kb * 1000))
        print(f"seeded {workload['pulls']} pull requests in {time.perf_counter() - started:.0f} s; "
              f"GitHub emulator {github.usage()['max_rss_mib']:.0f} MiB", flush=True)
        single = run_guide(github, args.repos, 1, Path(tmp))
        halves = run_guide(github, args.repos, 2, Path(tmp))
        service = run_service(github, args.repos, args.database_url, args.profile, Path(tmp))
        print_table({**workload, "repos": args.repos}, single, halves, service)
        print(f"GitHub emulator's own process: {github.usage()}")
        if service.profile is not None:
            print_profile(service.profile)


if __name__ == "__main__":
    main()

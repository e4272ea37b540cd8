"""How long `reviewer --help`, `reviewer status` and `reviewer costs` take, start to finish, as whole
processes: each is run several times (after a warm-up) on a small SQLite database seeded by `reviewer demo`
(5 posted reviews, their costs and skips) in a temporary folder, and the median wall time is printed with
the fastest and slowest run and the median CPU time (user + sys: less sensitive to a busy machine). Two
floors are printed beside them: a bare interpreter, and one that only imports click and SQLAlchemy's ORM
(which `status` and `costs` cannot do without).

    python bench/cli_start.py                       # 7 runs each
    python bench/cli_start.py --runs 15
    PYTHONPATH=/tmp/old python bench/cli_start.py   # another copy of the package (e.g. `git archive` of a commit)

The commands run with this interpreter (`python -m reviewer`), the environment it was given and the
temporary folder as their working directory (so PYTHONPATH decides which copy of the package runs).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_SECONDS = 0.5


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `argv`."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed, children_cpu() - cpu


def timings(argv: Sequence[str], cwd: Path, env: dict[str, str], runs: int, warmup: int) -> list[tuple[float, float]]:
    for _ in range(warmup):
        run_once(argv, cwd, env)
    return [run_once(argv, cwd, env) for _ in range(runs)]


def seed(folder: Path, env: dict[str, str]) -> Path:
    """`reviewer demo --dir FOLDER`: the whole pipeline against the emulators, leaving its config and its
    SQLite database (posted reviews, costs, skipped pull requests) behind."""
    done = subprocess.run([sys.executable, "-m", "reviewer", "demo", "--dir", str(folder)], env=env, cwd=folder,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"reviewer demo failed: {done.stderr.strip()[-500:]}")
    return folder / "reviewer.yml"


def clean_env() -> dict[str, str]:
    """The caller's environment without the settings that would point the commands elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("REVIEWER_", "GITHUB_", "ANTHROPIC_"))}


def commands(config: Path) -> list[tuple[str, list[str]]]:
    reviewer = [sys.executable, "-m", "reviewer"]
    return [
        ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
        ("import click + sqlalchemy.orm (floor)", [sys.executable, "-c", "import click, sqlalchemy.orm"]),
        ("reviewer --help", [*reviewer, "--help"]),
        ("reviewer status", [*reviewer, "--config", str(config), "status"]),
        ("reviewer costs", [*reviewer, "--config", str(config), "costs"]),
    ]


def row(name: str, runs: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in runs]
    median = statistics.median(wall)
    verdict = "" if "floor" in name else ("  under 0.5 s" if median < TARGET_SECONDS else "  over 0.5 s")
    return (f"{name:<40} {median:>8.3f} {min(wall):>8.3f} {max(wall):>8.3f} "
            f"{statistics.median(c for _, c in runs):>8.3f}{verdict}")


def package_location(env: dict[str, str], cwd: Path) -> str:
    probe = "import reviewer; print(reviewer.__file__)"
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=cwd, capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs of each command")
    parser.add_argument("--warmup", type=int, default=1, help="runs not counted, first")
    args = parser.parse_args()
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="reviewer-cli-start-") as tmp:
        config = seed(Path(tmp), env)
        print(f"package: {package_location(env, Path(tmp))}; {args.runs} runs each after {args.warmup} warm-up; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'command (wall seconds; CPU: user + sys)':<40} {'median':>8} {'min':>8} {'max':>8} {'CPU':>8}")
        for name, argv in commands(config):
            print(row(name, timings(argv, Path(tmp), env, args.runs, args.warmup)), flush=True)


if __name__ == "__main__":
    main()

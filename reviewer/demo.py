"""`reviewer demo`: the whole pipeline, for real, against the local emulators on a SQLite file in a
temporary folder. The real PyGithub and anthropic clients talk HTTP to the emulators; nothing is mocked.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reviewer.config import settings_from_mapping
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import seed_demo
from reviewer.ledger import cost_rows, format_cost_table
from reviewer.pipeline import run_cycle
from reviewer.runtime import Runtime

DEMO_GITHUB_TOKEN = "ghp_demo"
DEMO_ANTHROPIC_KEY = "sk-ant-demo"


def demo_config(database_url: str, repositories: list[str]) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "defaults": {"model": "claude-opus-4-7", "schedule": "nightly", "max_tokens": 4096},
        "repositories": [{"name": name} for name in repositories],
        "intervals": {"poll_seconds": 0.2, "lease_seconds": 60},
        "github": {"write_pause_seconds": 0},
    }


def run_demo(workdir: str | None, echo: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="reviewer-demo-") as tmp:
        folder = Path(workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with GitHubEmulator(token=DEMO_GITHUB_TOKEN) as github, AnthropicEmulator(api_key=DEMO_ANTHROPIC_KEY) as api:
            pulls = seed_demo(github)
            repositories = sorted({repo for repo, _ in pulls})
            raw = demo_config(f"sqlite:///{folder / 'reviewer.db'}", repositories)
            (folder / "reviewer.yml").write_text(yaml.safe_dump(raw, sort_keys=False))
            env = {"GITHUB_TOKEN": DEMO_GITHUB_TOKEN, "ANTHROPIC_API_KEY": DEMO_ANTHROPIC_KEY,
                   "GITHUB_API_URL": github.url, "ANTHROPIC_BASE_URL": api.url}
            settings = settings_from_mapping(raw, str(folder / "reviewer.yml"), env, folder)
            echo(f"GitHub emulator at {github.url}, Anthropic emulator at {api.url}, database in {folder}")
            echo(f"{len(pulls)} open pull requests in {', '.join(repositories)}\n")
            rt = Runtime(settings)
            try:
                rt.prepare_database(migrate=True)
                reports = run_cycle(rt, echo)
                _show_reviews(github, pulls, [n for r in reports for n in r.notes], echo)
                with rt.sessions() as session:
                    echo(format_cost_table("cost by review", cost_rows(session, "review")))
            finally:
                rt.close()


def _show_reviews(github: GitHubEmulator, pulls: list[tuple[str, int]], notes: list[str],
                  echo: Callable[[str], None]) -> None:
    echo("")
    for repo, number in pulls:
        reviews = github.reviews(repo, number)
        if not reviews:
            why = next((n for n in notes if n.startswith(f"{repo}#{number} ")), "see `reviewer status`")
            echo(f"=== {repo}#{number}: no review posted ({why})\n")
            continue
        for review in reviews:
            echo(f"=== {repo}#{number} — review by {review['user_login']} on {review['commit_id'][:7]}")
            echo(review["body"])
            for comment in review["comments"]:
                where = f"{comment['start_line']}-{comment['line']}" if comment["start_line"] else comment["line"]
                echo(f"\n  >> inline comment on {comment['path']}:{where}")
                echo("     " + "\n     ".join(comment["body"].splitlines()))
            echo("")

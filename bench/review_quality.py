"""Measure the demo's reviews: how many findings were anchored inline, how many went to the body
("Outside the diff"), and how many tokens the ignore patterns saved on the demo pull requests.

    python bench/review_quality.py
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from reviewer.config import settings_from_mapping
from reviewer.demo import DEMO_ANTHROPIC_KEY, DEMO_GITHUB_TOKEN, demo_config
from reviewer.emulators.anthropic import AnthropicEmulator
from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import seed_demo
from reviewer.pipeline import run_cycle
from reviewer.review.trim import DEFAULT_IGNORES, estimate_tokens, fit_diff
from reviewer.runtime import Runtime

OUTSIDE_ENTRY = re.compile(r"^- line \d+", re.MULTILINE)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, GitHubEmulator(token=DEMO_GITHUB_TOKEN) as github, \
            AnthropicEmulator(api_key=DEMO_ANTHROPIC_KEY) as api:
        pulls = seed_demo(github)
        raw = demo_config(f"sqlite:///{Path(tmp) / 'r.db'}", sorted({r for r, _ in pulls}))
        env = {"GITHUB_TOKEN": DEMO_GITHUB_TOKEN, "ANTHROPIC_API_KEY": DEMO_ANTHROPIC_KEY,
               "GITHUB_API_URL": github.url, "ANTHROPIC_BASE_URL": api.url}
        rt = Runtime(settings_from_mapping(raw, "demo.yml", env, Path(tmp)))
        rt.prepare_database(migrate=True)
        run_cycle(rt)
        rt.close()
        inline = outside = 0
        for repo, number in pulls:
            for review in github.reviews(repo, number):
                inline += len(review["comments"])
                outside += len(OUTSIDE_ENTRY.findall(review["body"].split("### Outside the diff", 1)[-1])
                               if "### Outside the diff" in review["body"] else [])
        total = inline + outside
        print(f"findings posted: {total}; inline {inline} ({inline / max(total, 1):.0%}), "
              f"outside the diff {outside}")
        full = saved = 0
        for repo, number in pulls:
            diff = github.pull_diff(repo, number)
            fitted = fit_diff(diff, ignore=DEFAULT_IGNORES, budget_tokens=120_000)
            full += estimate_tokens(diff)
            saved += fitted.ignored_tokens
        print(f"demo diffs: {full:,} tokens; ignore patterns leave out {saved:,} ({saved / max(full, 1):.0%})")


if __name__ == "__main__":
    main()

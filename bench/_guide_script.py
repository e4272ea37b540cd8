"""The guide's naive batch script ("Claude Batch API 50% Discount Complete Guide", shared/reference/
000_12df32688032f166.txt, "The Technique"), as close to its text as the SDK allows, run by
bench/reference_workload.py as a process of its own so that its CPU and peak memory are its own.

The guide takes the diffs as given (`load_pending_reviews()  # Your data source`); here they come from
the GitHub emulator the simplest way PyGithub allows: list each repository's open pull requests, then GET
each one with the diff media type through PyGithub's requester (PyGithub has no call for the diff).
Two fixes the current SDK needs: `client.batches` is `client.messages.batches`, and the model is the id
the emulator knows (`claude-opus-4-7`; the guide's `claude-opus-4-7-20250415` is not a model id); and
PyGithub pauses 0.25 s between requests by default, which is turned off as the service's own pause is.
Everything else is the guide's: every request built in memory, one create (or, with `--parts 2`, the
same list split in two creates), retrieve until ended, `results()` read whole into a list, then a loop
that saves each review's text.

    python -m bench._guide_script --github-url U --anthropic-url U --repos 50 --parts 1 --out guide.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import anthropic
from github import Auth, Github

INSTRUCTIONS = ("You are a senior engineer reviewing a pull request. Point out bugs, security problems and "
                "risky changes, each with its file and line, most severe first. Be concise.")
DIFF_MEDIA_TYPE = "application/vnd.github.diff"
MODEL = "claude-opus-4-7"

saved: dict[str, str] = {}
errors: dict[str, Any] = {}
marks: list[dict[str, float | str]] = []


def mark(phase: str) -> None:
    """Wall clock, CPU (user + sys) and max RSS of this process at the end of `phase`."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    marks.append({"phase": phase, "wall": time.perf_counter(), "cpu": own.ru_utime + own.ru_stime,
                  "max_rss_mib": own.ru_maxrss / 1024})


def load_pending_reviews(gh: Github, repos: list[str]) -> list[dict[str, Any]]:
    reviews = []
    for name in repos:
        for pr in gh.get_repo(name).get_pulls(state="open"):
            _, _, diff_text = gh.requester.requestJson("GET", pr.url, headers={"Accept": DIFF_MEDIA_TYPE})
            reviews.append({"id": f"{name.replace('/', '_')}-{pr.number}", "diff_text": diff_text,
                            "instructions": INSTRUCTIONS})
    return reviews


def submit_review_batch(client: anthropic.Anthropic, reviews: list[dict[str, Any]]) -> str:
    """Submit code reviews as a batch for 50% savings. (The guide's function, SDK path and model fixed.)"""
    requests = []
    for review in reviews:
        requests.append({
            "custom_id": review["id"],
            "params": {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": [
                    {
                        "role": "user",
                        "content": (
                            f"{review['instructions']}\n\n"
                            f"Code diff:\n```\n{review['diff_text']}\n```"
                        )
                    }
                ]
            }
        })
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    print(f"Batch {batch.id}: {len(requests)} requests submitted")
    print(f"Estimated cost: ${len(requests) * 0.1125:.2f} "
          f"(vs ${len(requests) * 0.225:.2f} standard)")
    return batch.id


def poll_batch(client: anthropic.Anthropic, batch_id: str, interval: int = 30) -> list[Any]:
    """Wait for batch completion and return results."""
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        counts = batch.request_counts
        if batch.processing_status == "ended":
            print(f"Done: {counts.succeeded} succeeded, "
                  f"{counts.errored} errored")
            break
        print(f"Processing: {counts.processing}/{counts.succeeded + counts.processing + counts.errored}")
        time.sleep(interval)
    return list(client.messages.batches.results(batch_id))


def save_review(review_id: str, review_text: str) -> None:
    saved[review_id] = review_text


def log_error(review_id: str, error: Any) -> None:
    errors[review_id] = error


def process(results: list[Any]) -> None:
    for result in results:
        review_id = result.custom_id
        if result.result.type == "succeeded":
            review_text = result.result.message.content[0].text
            save_review(review_id, review_text)
        else:
            log_error(review_id, result.result.error if result.result.type == "errored" else result.result.type)


def create_all(client: anthropic.Anthropic, reviews: list[dict[str, Any]], parts: int) -> list[dict[str, Any]]:
    """The guide's one create (parts=1), or the same reviews in `parts` creates; what each got back."""
    size = -(-len(reviews) // parts)
    outcomes: list[dict[str, Any]] = []
    for start in range(0, len(reviews), size):
        chunk = reviews[start:start + size]
        try:
            outcomes.append({"requests": len(chunk), "batch_id": submit_review_batch(client, chunk)})
        except anthropic.APIStatusError as exc:
            outcomes.append({"requests": len(chunk), "status": exc.status_code, "error": type(exc).__name__,
                             "message": str(exc)[:300]})
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--github-url", "--anthropic-url", "--github-token", "--anthropic-key", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--repo", dest="repos", action="append", required=True)
    parser.add_argument("--parts", type=int, default=1)
    args = parser.parse_args()
    mark("start-up")
    # no pause between reads, as the service's github.request_pause_seconds: 0 (PyGithub's default is 0.25 s)
    gh = Github(base_url=args.github_url, auth=Auth.Token(args.github_token), seconds_between_requests=0)
    client = anthropic.Anthropic(api_key=args.anthropic_key, base_url=args.anthropic_url)
    reviews = load_pending_reviews(gh, args.repos)
    mark("load diffs")
    outcomes = create_all(client, reviews, args.parts)
    mark("build + create")
    results = [r for o in outcomes if "batch_id" in o for r in poll_batch(client, o["batch_id"], interval=30)]
    mark("poll + results")
    process(results)
    mark("process")
    with open(args.out, "w") as out:
        json.dump({"marks": marks, "creates": outcomes, "saved": len(saved), "errors": len(errors),
                   "reviews": len(reviews)}, out)


if __name__ == "__main__":
    main()

"""Benchmark (arithmetic only): dollars per review on the standard API, on the Message Batches API, and on
batches with a cached shared prompt prefix, for a workload shaped like the README's reference one.

Every review sends `--input` tokens (default 20,000) and gets `--output` tokens back (default 5,000). The
first `--prefix` tokens (default 4,000: system prompt, rubric, tool schema) are the same for every review of
a repository and carry a 1-hour cache breakpoint. Reviews go out `--per-repo` at a time per repository
(default 25): the first one writes the cache; of the others, `--hit-rate` (default 0.9; the reference
puts batch cache hits at 30-98%, best effort) read it and the rest write it again. Costs come from
`reviewer.cost` alone, per request and rounded once to micro-USD exactly as the ledger records them; the
week is `--weekly` reviews (default 5,000) in groups of `--per-repo`.

    python bench/dollars_per_review.py [--model M] [--hit-rate 0.9] [--per-repo 25] [--prefix 4000] ...
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from reviewer.cost import Price, Usage, cost_of, format_usd, load_price_table

SENSITIVITY = (0.0, 0.3, 0.6, 0.9, 1.0)


@dataclass(frozen=True)
class Workload:
    input_tokens: int
    output_tokens: int
    prefix_tokens: int
    per_repo: int
    hit_rate: float
    weekly: int

    def hits(self, group: int) -> int:
        """Reviews of a group of `group` that read the cache: all but the first can."""
        return round(self.hit_rate * (group - 1)) if group > 1 else 0


def request_cost(usage: Usage, price: Price, batch: bool) -> int:
    return cost_of(usage, price, batch=batch).charged_micro_usd  # what is charged (standard price if not batch)


def group_cost(w: Workload, group: int, price: Price, *, batch: bool, cache: bool) -> int:
    """Micro-USD for `group` reviews of one repository."""
    if not cache or w.prefix_tokens < price.min_cacheable_tokens:  # too short a prefix is silently not cached
        return group * request_cost(Usage(w.input_tokens, w.output_tokens), price, batch)
    rest = w.input_tokens - w.prefix_tokens
    write = Usage(rest, w.output_tokens, cache_creation_input_tokens=w.prefix_tokens,
                  cache_creation_5m_tokens=0, cache_creation_1h_tokens=w.prefix_tokens)
    read = Usage(rest, w.output_tokens, cache_read_input_tokens=w.prefix_tokens)
    hits = w.hits(group)
    return hits * request_cost(read, price, batch) + (group - hits) * request_cost(write, price, batch)


def total_cost(w: Workload, reviews: int, price: Price, *, batch: bool, cache: bool) -> int:
    full, rest = divmod(reviews, w.per_repo)
    cost = full * group_cost(w, w.per_repo, price, batch=batch, cache=cache)
    return cost + (group_cost(w, rest, price, batch=batch, cache=cache) if rest else 0)


MODES = (("standard API", False, False), ("standard API + cache", False, True),
         ("batch", True, False), ("batch + cache", True, True))


def table(w: Workload, price: Price) -> list[str]:
    baseline = total_cost(w, w.weekly, price, batch=False, cache=False)
    lines = [f"{'mode':<22} {'per review':>11} {f'per week ({w.weekly:,})':>18} {'vs standard':>12}"]
    for name, batch, cache in MODES:
        week = total_cost(w, w.weekly, price, batch=batch, cache=cache)
        per_review = total_cost(w, w.per_repo, price, batch=batch, cache=cache) / w.per_repo
        lines.append(f"{name:<22} {format_usd(round(per_review), 4):>11} {format_usd(week):>18} "
                     f"{week / baseline:>12.1%}")
    return lines


def sensitivity(w: Workload, price: Price) -> str:
    cells = []
    for rate in SENSITIVITY:
        varied = Workload(w.input_tokens, w.output_tokens, w.prefix_tokens, w.per_repo, rate, w.weekly)
        cells.append(f"{rate:.0%} {format_usd(total_cost(varied, w.weekly, price, batch=True, cache=True))}")
    return "batch + cache per week by hit rate: " + ", ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="claude-opus-4-7")
    parser.add_argument("--input", type=int, default=20_000, help="input tokens per review, prefix included")
    parser.add_argument("--output", type=int, default=5_000)
    parser.add_argument("--prefix", type=int, default=4_000, help="shared, cached prefix tokens")
    parser.add_argument("--per-repo", type=int, default=25, help="reviews per repository per batch")
    parser.add_argument("--hit-rate", type=float, default=0.9)
    parser.add_argument("--weekly", type=int, default=5_000)
    args = parser.parse_args()
    prices = load_price_table()
    price = prices.price(args.model)
    w = Workload(args.input, args.output, args.prefix, args.per_repo, args.hit_rate, args.weekly)
    hits = w.hits(w.per_repo)
    print(f"{args.model} (prices of {prices.published}): {w.input_tokens:,} input + {w.output_tokens:,} output "
          f"tokens per review, {w.prefix_tokens:,} of them a shared prefix cached for 1h")
    print(f"{w.per_repo} reviews per repository: {hits} cache reads, {w.per_repo - hits} cache writes "
          f"(hit rate {w.hit_rate:.0%} of the {w.per_repo - 1} that can hit)")
    if w.prefix_tokens < price.min_cacheable_tokens:
        print(f"note: {args.model} caches prefixes of {price.min_cacheable_tokens:,} tokens or more; nothing is cached")
    print()
    print("\n".join(table(w, price)))
    print()
    print(sensitivity(w, price))


if __name__ == "__main__":
    main()

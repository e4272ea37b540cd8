"""Plausible pull-request diffs for bench/reference_workload.py: deterministic from a seed, about
`diff_bytes` each, many hunks over several files of Python that reads like a service's code.

Each repository has a fixed set of modules (the base branch); a pull request edits several of them (a few
lines changed and some inserted in many functions, a new function or two) and sometimes adds a test file.
The unified diff is written straight from the edits (three lines of context, nearby hunks merged, as git
does) rather than through difflib, which would take minutes at 5,000 pull requests of 75 KB.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from reviewer.emulators.samples import _abbrev

CONTEXT = 3
VERBS = ("load", "fetch", "build", "parse", "render", "store", "sync", "merge", "resolve", "validate", "refresh",
         "publish", "collect", "export", "normalize", "schedule", "compute", "apply", "reconcile", "archive")
NOUNS = ("invoice", "account", "refund", "session", "order", "payment", "ledger", "customer", "webhook", "token",
         "report", "shipment", "catalog", "quota", "profile", "event", "export", "tenant", "receipt", "batch")
ATTRS = ("items", "lines", "entries", "rows", "events", "records", "children", "updates", "parts", "values")
ERRORS = ("ValueError", "LookupError", "RuntimeError", "PermissionError", "TimeoutError")
PACKAGES = ("billing", "accounts", "orders", "gateway", "reports", "notify", "search", "storage", "auth", "sync")
STATEMENTS = (
    "{v} = {call}({a}, timeout={n})",
    "if {v} is None:\n        raise {err}(f\"no {noun} for {{{a}!r}}\")",
    "for item in {v}.{attr}:\n        {acc}.append(_{verb}_one(item, {a}))",
    "log.debug(\"{verb} %s: %d {attr}\", {a}, len({acc}))",
    "{acc} = [x for x in {acc} if x.{noun}_id != {a}.id]",
    "with self._lock:\n        self._cache[{a}.id] = {acc}",
    "if len({acc}) > MAX_{NOUN}S:\n        {acc} = {acc}[:MAX_{NOUN}S]",
    "total = sum(x.amount for x in {acc}) if {acc} else Decimal(\"0\")",
    "{v} = self._session.execute(select({Noun}).where({Noun}.id == {a}.id)).scalar_one_or_none()",
    "try:\n        {v} = {call}({a})\n    except {err} as exc:\n        log.warning(\"{verb} failed: %s\", exc)",
    "metrics.increment(\"{noun}.{verb}\", tags={{\"tenant\": {a}.tenant}})",
    "{acc}.sort(key=lambda x: (x.created_at, x.id))",
)


@dataclass(frozen=True)
class Edit:
    start: int  # first old line replaced (0-based)
    removed: int  # old lines replaced
    added: tuple[str, ...]  # new lines, each ending in "\n"


def _words(rng: random.Random) -> dict[str, object]:
    noun = rng.choice(NOUNS)
    return {"verb": rng.choice(VERBS), "noun": noun, "Noun": noun.capitalize(), "NOUN": noun.upper(),
            "attr": rng.choice(ATTRS), "err": rng.choice(ERRORS), "n": rng.randint(2, 60),
            "a": noun, "v": f"{noun}_{rng.choice(ATTRS)}", "acc": rng.choice(ATTRS),
            "call": f"{rng.choice(PACKAGES)}.{rng.choice(VERBS)}_{rng.choice(NOUNS)}"}


def _statement(rng: random.Random) -> list[str]:
    text = "    " + rng.choice(STATEMENTS).format(**_words(rng))
    return [line + "\n" for line in text.split("\n")]


def function(rng: random.Random, index: int) -> list[str]:
    words = _words(rng)
    name = f"{words['verb']}_{words['noun']}_{index}"
    lines = [f"def {name}({words['a']}: {words['Noun']}, *, strict: bool = False) -> list[{words['Noun']}]:\n",
             f"    \"\"\"{str(words['verb']).capitalize()} the {words['noun']}'s {words['attr']}.\"\"\"\n",
             f"    {words['acc']}: list[{words['Noun']}] = []\n"]
    for _ in range(rng.randint(4, 9)):
        lines += _statement(rng)
    return [*lines, f"    return {words['acc']}\n", "\n", "\n"]


def module(rng: random.Random, package: str, functions: int) -> list[str]:
    lines = [f"\"\"\"{package}: the {rng.choice(NOUNS)} service.\"\"\"\n", "\n", "from __future__ import annotations\n",
             "\n", "import logging\n", "from decimal import Decimal\n", "\n",
             f"from {package} import metrics\n", f"from {package}.models import select\n", "\n",
             "log = logging.getLogger(__name__)\n", "\n", "\n"]
    for index in range(functions):
        lines += function(rng, index)
    return lines


def edits_for(rng: random.Random, old: Sequence[str], count: int) -> list[Edit]:
    """`count` edits at distinct, sorted places of `old`: each replaces 0-3 body lines by 1-6 new ones."""
    bodies = [i for i, line in enumerate(old) if line.startswith("    ") and not line.startswith('    """')]
    spots = sorted(rng.sample(bodies, min(count, len(bodies))))
    edits: list[Edit] = []
    end = 0
    for spot in spots:
        if spot < end:
            continue
        removed = min(rng.randint(0, 3), len(old) - spot)
        added = tuple(line for _ in range(rng.randint(1, 3)) for line in _statement(rng))
        edits.append(Edit(spot, removed, added))
        end = spot + removed + 1
    return edits


def apply_edits(old: Sequence[str], edits: Sequence[Edit]) -> list[str]:
    new: list[str] = []
    cursor = 0
    for edit in edits:
        new += old[cursor:edit.start]
        new += edit.added
        cursor = edit.start + edit.removed
    return new + list(old[cursor:])


def _groups(edits: Sequence[Edit]) -> list[list[Edit]]:
    """Edits whose contexts touch or overlap go in one hunk, as in git."""
    groups: list[list[Edit]] = []
    for edit in edits:
        if groups and edit.start - (groups[-1][-1].start + groups[-1][-1].removed) <= 2 * CONTEXT:
            groups[-1].append(edit)
        else:
            groups.append([edit])
    return groups


def hunks(old: Sequence[str], edits: Sequence[Edit]) -> str:
    out: list[str] = []
    shift = 0  # new line number minus old line number before the current group
    for group in _groups(edits):
        first = max(group[0].start - CONTEXT, 0)
        last = min(group[-1].start + group[-1].removed + CONTEXT, len(old))
        body: list[str] = []
        cursor = first
        for edit in group:
            body += [" " + line for line in old[cursor:edit.start]]
            body += ["-" + line for line in old[edit.start:edit.start + edit.removed]]
            body += ["+" + line for line in edit.added]
            cursor = edit.start + edit.removed
        body += [" " + line for line in old[cursor:last]]
        old_count = last - first
        new_count = old_count + sum(len(e.added) - e.removed for e in group)
        out.append(f"@@ -{_range(first, old_count)} +{_range(first + shift, new_count)} @@\n")
        out += body
        shift += new_count - old_count
    return "".join(out)


def _range(start: int, count: int) -> str:
    return f"{start + 1 if count else start},{count}"


def file_diff(path: str, old: Sequence[str] | None, new: Sequence[str], patch: str) -> str:
    new_text = "".join(new)
    if old is None:
        header = f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..{_abbrev(new_text)}\n"
        return header + f"--- /dev/null\n+++ b/{path}\n" + patch
    index = f"index {_abbrev(''.join(old))}..{_abbrev(new_text)} 100644\n"
    return f"diff --git a/{path} b/{path}\n{index}--- a/{path}\n+++ b/{path}\n" + patch


def new_file(rng: random.Random, path: str, functions: int) -> str:
    lines = module(rng, path.split("/")[0], functions)
    return file_diff(path, None, lines, f"@@ -0,0 +1,{len(lines)} @@\n" + "".join("+" + line for line in lines))


class Repository:
    """One repository's base branch: `modules` files of about 60 functions each, from the seed."""

    def __init__(self, seed: int, index: int, modules: int = 12) -> None:
        rng = random.Random(seed * 1_000_003 + index)
        self.index = index
        self.files = {f"{p}/{n}.py": module(rng, p, 60)
                      for p, n in ((rng.choice(PACKAGES), f"{rng.choice(NOUNS)}_{m}") for m in range(modules))}

    def pull_diff(self, seed: int, number: int, diff_bytes: int) -> str:
        """A diff of about `diff_bytes`: edited modules (in path order) until the size is reached, and a
        new test file in one pull request of three."""
        rng = random.Random(f"{seed}/{self.index}/{number}")
        parts: list[str] = []
        size = 0
        if number % 3 == 0:
            parts.append(new_file(rng, f"tests/test_change_{number}.py", rng.randint(3, 8)))
            size = len(parts[0])
        for path in rng.sample(sorted(self.files), len(self.files)):
            if size >= diff_bytes:
                break
            old = self.files[path]
            count = max(1, min(40, (diff_bytes - size) // 700))
            edits = edits_for(rng, old, count)
            parts.append(file_diff(path, old, apply_edits(old, edits), hunks(old, edits)))
            size += len(parts[-1])
        return "".join(sorted(parts, key=lambda p: p.split(" ", 3)[2]))

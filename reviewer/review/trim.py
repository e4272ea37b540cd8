"""Fit a pull request's diff into one review request. Pure.

AI reviewers are known to fail on big pull requests in four ways: the request errors out, files are pruned
without a word, a green check with no comments, or an invented review. So here:

- files the model should not read (lock files, bundles, generated code, vendored code, media) are left out
  by gitignore-syntax patterns before anything is counted;
- the rest are ranked by relevance (source, then config, then tests, then docs) and kept WHOLE while they
  fit the token budget: a file is never cut in the middle;
- every file not kept is in `omitted` with a reason and its token cost: nothing is dropped silently
  (a file whose hunks are broken is left out too, so the kept diff always parses);
- each kept file's text is byte-identical to its section of the original diff, so the line numbers the
  model quotes still map back through `diffs.number_new_side`;
- `tokens <= budget_tokens`, except for a diff that cannot be parsed at all, which is passed whole;
- every path in the result is the real path (git's C-quoting of `"caf\\303\\251.py"` decoded, `paths`), the
  one GitHub's JSON and an inline comment use, and the one ignore patterns are matched against.

Speed: GitHub serves git diffs, which are split on their `diff --git` lines; only each file's header (the
lines before its first hunk) goes through unidiff, and changed lines are counted with `str.count`, so the
work is linear and mostly in C. Only kept files (at most the budget) are parsed in full, as a check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pathspec import GitIgnoreSpec
from pathspec.pattern import RegexPattern
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from reviewer.review.diffs import number_section
from reviewer.review.paths import strip_side, unquote

# Each group is ordered generic-first, because the LAST matching gitignore pattern is the one named in
# the reason ("ignored by pattern 'yarn.lock'" reads better than "'*.lock'").
DEFAULT_IGNORES: tuple[str, ...] = (
    # lock files: written by package managers, reviewed by nobody
    "*.lock", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
    "poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock", "Cargo.lock", "go.sum", "composer.lock",
    "Gemfile.lock", "packages.lock.json", "flake.lock",
    # minified and bundled output; `build/` only for its bundles, since scripts named build/ are code
    "*.min.js", "*.min.css", "*.map", "*.bundle.js", "*.chunk.js", "dist/", "**/build/**/*.js",
    "**/build/**/*.css",
    # generated code and snapshots
    "*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*.pb.go", "*.pb.gw.go", "*.generated.*", "*.g.dart",
    "*.freezed.dart", "__generated__/", "*.snap", "__snapshots__/",
    # vendored code
    "vendor/", "third_party/", "node_modules/",
    # binaries and media
    "*.png", "*.jpg", "*.jpeg", "*.gif", "*.bmp", "*.ico", "*.webp", "*.svg", "*.pdf", "*.zip", "*.gz",
    "*.tgz", "*.tar", "*.7z", "*.jar", "*.war", "*.class", "*.so", "*.dylib", "*.dll", "*.exe", "*.o",
    "*.a", "*.pyc", "*.whl", "*.woff*", "*.ttf", "*.otf", "*.eot", "*.mp3", "*.mp4", "*.mov", "*.wav",
    "*.webm", "*.psd", "*.sqlite", "*.bin",
)


@dataclass(frozen=True)
class Omitted:
    path: str
    reason: str  # one short human phrase, shown to the model and in the review body
    tokens: int  # estimated tokens this file would have cost (0 when unknown)


@dataclass(frozen=True)
class FittedDiff:
    diff: str  # the kept files' sections of the original diff, in original order
    kept: tuple[str, ...]
    omitted: tuple[Omitted, ...]  # every other file, in original order
    tokens: int  # estimated tokens of `diff`
    ignored_tokens: int  # tokens saved by ignore patterns
    over_hard_limit: bool  # the reviewable (not ignored, not binary) files are too big to review: skip
    # `diff` numbered on its new side while fitting (`diffs.number_section` of each kept file, in order;
    # empty when `diff` was not split into files), so that the prompt need not parse it again
    numbered: tuple[str, ...] = field(default=(), compare=False, repr=False)


# --- token estimate --------------------------------------------------------------------------------

# Calibration: Anthropic's guidance is roughly 3.5 characters per token for English text; source code
# lands in the same range (long identifiers tokenize well, punctuation and indentation runs do not), so
# 3.5 is used for diffs too, as 2 tokens per 7 characters, rounded up so the budget errs on the safe side.
# A non-ASCII character (CJK comments, emoji) costs at least one token of its own, so it counts as one.
# This is an estimate made without a network call; compare it with the `usage.input_tokens` the batch
# results report, or pass an exact `count` to `fit_diff`.
CHARS_PER_TOKEN_NUM, CHARS_PER_TOKEN_DEN = 7, 2


def estimate_tokens(text: str) -> int:
    """About 3.5 characters per token for code, one token per non-ASCII character; deterministic."""
    if text.isascii():
        return _per_chars(len(text))
    ascii_chars = len(text.encode("ascii", "ignore"))
    return _per_chars(ascii_chars) + len(text) - ascii_chars


def _per_chars(chars: int) -> int:
    return -(-chars * CHARS_PER_TOKEN_DEN // CHARS_PER_TOKEN_NUM)


# --- ignore patterns -------------------------------------------------------------------------------


def parse_ignore(patterns: Sequence[str]) -> GitIgnoreSpec:
    """gitignore-syntax patterns (blank lines and `#` comments allowed), checked one by one so that a
    bad one is named; a pattern that can never match (an unclosed `[`) is an error, not a silent no-op."""
    return _compile(tuple(patterns)).spec


def compile_ignores(patterns: Sequence[str]) -> Ignores:
    """`patterns` compiled once, for a caller that fits many diffs with the same patterns (the jobs of
    one repository); ValueError as in `parse_ignore`."""
    return _compile(tuple(patterns))


@dataclass(frozen=True)
class Ignores:
    """Ignore patterns, compiled."""

    spec: GitIgnoreSpec
    sources: tuple[str, ...]  # index for index, the text each of spec's patterns came from
    any_match: re.Pattern[str] | None  # matches a path iff at least one pattern does


@lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> Ignores:
    compiled, sources = [], []
    for text in patterns:
        if not text.strip() or text.startswith("#"):
            continue
        try:
            pattern = GitIgnoreSpec.from_lines([text]).patterns[0]
        except ValueError:  # pathspec's GitWildMatchPatternError, whose message adds nothing
            raise ValueError(f"ignore pattern {text!r} is not valid gitignore syntax") from None
        if pattern.include is None:
            raise ValueError(f"ignore pattern {text!r} can never match (an unclosed '[' or a bare '/'?)")
        compiled.append(pattern)
        sources.append(text)
    return Ignores(GitIgnoreSpec(compiled), tuple(sources), _any_match(compiled))


def _any_match(patterns: Sequence[RegexPattern]) -> re.Pattern[str] | None:
    """One regex for "does any pattern match": pathspec tries ~80 regexes per path in Python (0.15 ms),
    and most paths in a big PR match none. pathspec's own group names are made anonymous so the
    alternatives can be joined; None (no shortcut) if that ever stops compiling."""
    regexes = [p.regex for p in patterns]
    if not regexes or any(r is None or r.flags != re.UNICODE for r in regexes):
        return None
    try:
        return re.compile("|".join(f"(?:{_NAMED_GROUP.sub('(?:', r.pattern)})" for r in regexes if r))
    except re.error:
        return None


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


# --- splitting the diff into files -----------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: str  # the real path, as `diffs.changed_files` names it
    old_path: str | None  # the source path of a rename, for ignore matching
    text: str  # this file's section of the diff, byte for byte
    binary: bool
    changed: int  # added + removed lines


_GIT_HEADER = "diff --git "


def _split(diff: str) -> list[_File] | None:
    """The diff's files, or None when it does not parse."""
    starts = _git_starts(diff)
    if not starts:
        return _split_plain(diff)
    # text before the first `diff --git` (a format-patch mail header) belongs to no file and is dropped
    sections = [diff[start:end] for start, end in zip(starts, [*starts[1:], len(diff)], strict=True)]
    heads, bodies = zip(*(_head_and_body(text) for text in sections), strict=True)
    # one unidiff pass over all the headers (the lines before each file's first hunk) names every file
    try:
        patch = PatchSet("".join(heads))
    except UnidiffParseError:
        return None
    if len(patch) != len(sections):
        return None
    return [_File(unquote(f.path), _old_path(f.source_file, f.path), text, f.is_binary_file,
                  # inside hunks each line starting with + or - is a change (a removed "-- x" shows as "--- x")
                  body.count("\n+") + body.count("\n-"))
            for f, text, body in zip(patch, sections, bodies, strict=True)]


def _git_starts(diff: str) -> list[int]:
    """Where each `diff --git` line starts. Exact for a git diff: a hunk line starts with " ", "+", "-"
    or "\\", so no line inside a hunk can look like a file header."""
    starts = [0] if diff.startswith(_GIT_HEADER) else []
    at = diff.find("\n" + _GIT_HEADER)
    while at != -1:
        starts.append(at + 1)
        at = diff.find("\n" + _GIT_HEADER, at + 1)
    return starts


def _head_and_body(text: str) -> tuple[str, str]:
    hunk = text.find("\n@@ ") + 1
    return (text, "") if hunk == 0 else (text[:hunk], text[hunk - 1:])


def _split_plain(diff: str) -> list[_File] | None:
    """A diff without `diff --git` lines (`diff -u`): never what GitHub serves, so this slower path
    re-serialises each file through unidiff (same lines and numbers; hunk headers may be normalised)."""
    try:
        patch = PatchSet(diff)
    except UnidiffParseError:
        return None
    if not len(patch):
        return None
    return [_File(unquote(f.path), _old_path(f.source_file, f.path), str(f), f.is_binary_file,
                  f.added + f.removed) for f in patch]


def _old_path(source_file: str, path: str) -> str | None:
    old = strip_side(source_file)
    return None if old in ("/dev/null", unquote(path)) else old


# --- relevance -------------------------------------------------------------------------------------

SOURCE, CONFIG, TESTS, DOCS, OTHER = range(5)

_TEST_DIRS = frozenset({"test", "tests", "spec", "specs", "__tests__", "testing"})
_TEST_NAME = re.compile(r"^test_.*\.py$|_test\.(py|go|rb|exs?)$|_spec\.rb$|\.(spec|test)\.[cm]?[jt]sx?$"
                        r"|^conftest\.py$|Tests?\.(java|kt|cs|swift|scala)$")
_DOC_DIRS = frozenset({"doc", "docs"})
_DOC_EXTS = frozenset({".md", ".markdown", ".rst", ".adoc", ".txt"})
_DOC_NAMES = re.compile(r"^(README|CHANGELOG|CHANGES|LICENSE|COPYING|CONTRIBUTING|AUTHORS)\b", re.IGNORECASE)
_SOURCE_EXTS = frozenset({
    ".py", ".pyi", ".go", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".java", ".kt", ".kts", ".rs",
    ".rb", ".php", ".cs", ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".m", ".mm", ".swift",
    ".scala", ".sql", ".sh", ".bash", ".zsh", ".ps1", ".lua", ".pl", ".pm", ".r", ".dart", ".ex", ".exs",
    ".erl", ".hs", ".ml", ".clj", ".groovy", ".proto", ".graphql", ".vue", ".svelte",
    # templates and styles carry logic and injection risks of their own
    ".html", ".css", ".scss", ".sass", ".less", ".j2", ".jinja", ".erb", ".hbs",
})
_CONFIG_EXTS = frozenset({
    ".yml", ".yaml", ".toml", ".json", ".ini", ".cfg", ".conf", ".tf", ".tfvars", ".hcl", ".xml",
    ".gradle", ".properties", ".env", ".nix", ".bzl", ".cmake", ".mk", ".dockerfile",
})
_CONFIG_NAMES = re.compile(r"^(Dockerfile|Containerfile|Makefile|Jenkinsfile|Procfile|Vagrantfile|Gemfile"
                           r"|Pipfile|go\.mod|CODEOWNERS|BUILD|WORKSPACE|requirements.*\.txt|\.[a-z]+ignore"
                           r"|\.gitattributes|\.editorconfig)", re.IGNORECASE)
_CONFIG_DIRS = frozenset({".github", ".circleci", ".gitlab", "terraform", "helm", "k8s", "deploy"})


def relevance(path: str) -> int:
    """SOURCE < CONFIG < TESTS < DOCS < OTHER: what a reviewer reads first when not everything fits."""
    *parents, name = path.split("/")
    dirs = {d.lower() for d in parents}
    dot = name.rfind(".")
    suffix = name[dot:].lower() if dot > 0 else ""  # ".bashrc" has no suffix, as in pathlib
    if dirs & _TEST_DIRS or _TEST_NAME.search(name):
        return TESTS
    if dirs & _DOC_DIRS:
        return DOCS
    if suffix in _SOURCE_EXTS:
        return SOURCE
    if suffix in _CONFIG_EXTS or _CONFIG_NAMES.match(name) or dirs & _CONFIG_DIRS:
        return CONFIG
    if suffix in _DOC_EXTS or _DOC_NAMES.match(name):
        return DOCS
    return OTHER


# --- fitting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    index: int  # position in the original diff
    file: _File
    tokens: int


def fit_diff(diff: str, *, ignore: Sequence[str] | Ignores = DEFAULT_IGNORES, budget_tokens: int,
             hard_limit_tokens: int | None = None, count: Callable[[str], int] = estimate_tokens) -> FittedDiff:
    """The part of `diff` to send for review: ignored and binary files out, then whole files by relevance
    while they fit `budget_tokens`. `ignore` is patterns or `compile_ignores` of them. Raises ValueError
    for a bad ignore pattern."""
    ignores = ignore if isinstance(ignore, Ignores) else _compile(tuple(ignore))
    files = _split(diff)
    if files is None:  # not a diff we can read: the model still gets to see it
        tokens = count(diff)
        return FittedDiff(diff, (), (), tokens, 0, hard_limit_tokens is not None and tokens > hard_limit_tokens)
    omitted: dict[int, Omitted] = {}
    candidates: list[_Candidate] = []
    for index, f in enumerate(files):
        reason = _ignored_by(ignores, f)
        if reason is not None:
            omitted[index] = Omitted(f.path, reason, count(f.text))
        elif f.binary:
            omitted[index] = Omitted(f.path, _binary_reason(f.path), 0)
        else:
            candidates.append(_Candidate(index, f, count(f.text)))
    ignored_tokens = sum(o.tokens for o in omitted.values())  # binary files count 0
    left_out, parsed = _select(candidates, budget_tokens)
    chosen = [c for c in candidates if c.index not in left_out]
    omitted.update((c.index, Omitted(c.file.path, left_out[c.index], c.tokens)) for c in candidates
                   if c.index in left_out)
    reviewable = sum(c.tokens for c in candidates)
    return FittedDiff(
        diff="".join(c.file.text for c in chosen),
        kept=tuple(c.file.path for c in chosen),
        omitted=tuple(omitted[i] for i in sorted(omitted)),
        tokens=sum(c.tokens for c in chosen),
        ignored_tokens=ignored_tokens,
        over_hard_limit=hard_limit_tokens is not None and reviewable > hard_limit_tokens,
        numbered=tuple(parsed[c.index] for c in chosen if parsed[c.index]),
    )


def _ignored_by(ignores: Ignores, f: _File) -> str | None:
    """The reason a file is ignored, or None. The new path decides when a pattern matches it (so
    `!keep.lock` re-includes); otherwise a rename is ignored when its old path is."""
    for name, where in ((f.path, ""), (f.old_path, f" on its old path {f.old_path}")):
        if name is None:
            continue
        if ignores.any_match is not None and not ignores.any_match.match(name):
            continue
        result = ignores.spec.check_file(name)
        if result.include is not None and result.index is not None:
            return f"ignored by pattern {ignores.sources[result.index]!r}{where}" if result.include else None
    return None


def _binary_reason(path: str) -> str:
    # A text file marked binary is one GitHub gave no patch for (diffs.diff_from_file_patches writes the
    # same "Binary files ... differ" line for both), most often because it is too large.
    return "binary file" if relevance(path) == OTHER else "no patch from GitHub (too large or binary)"


def _select(candidates: Sequence[_Candidate], budget_tokens: int) -> tuple[dict[int, str], dict[int, str]]:
    """Greedy by relevance, the biggest change in the most relevant class first; returns index -> reason
    for the files left out, and index -> numbered text for the files kept. A file that does not fit is passed
    over, so smaller files after it still get in. Only files that fit are parsed in full, which keeps
    this linear in the budget, not the diff."""
    ranked = sorted(candidates, key=lambda c: (relevance(c.file.path), -c.file.changed, c.file.path))
    left_out: dict[int, str] = {}
    parsed: dict[int, str] = {}
    total = 0
    for c in ranked:
        if total + c.tokens > budget_tokens:
            left_out[c.index] = f"left out: over the token budget ({c.tokens:,} tokens)"
        elif (patch := number_section(c.file.text)) is None:  # a broken hunk would make the kept diff unreadable
            left_out[c.index] = "left out: its diff could not be parsed"
        else:
            parsed[c.index] = patch
            total += c.tokens
    return left_out, parsed

"""Unified diffs, pure: parse with `unidiff`, number the new side for the model, list changed files,
and rebuild a diff from GitHub's per-file listing when GitHub refuses the whole diff (over 300 files).

Invariants: every path this module hands out (`changed_files`, `DiffIndex`) is the real path, as GitHub's
JSON names it, never git's C-quoted form (`paths`); the prompt shows each file by `paths.shown`, and a
rebuilt diff quotes its names exactly as git does, so it parses like the diff GitHub would have served.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchedFile

from reviewer.review.paths import header_name, quote, shown, unquote


@dataclass(frozen=True)
class FilePatch:
    """One row of GitHub's `pulls/N/files` listing (real paths); `patch` is None for binary or oversized
    files and for a rename without changes (`changes` 0)."""

    path: str
    status: str
    patch: str | None
    previous_path: str | None = None
    changes: int | None = None  # added + removed lines, as GitHub counts them


def _parse(diff: str) -> PatchSet | None:
    try:
        return PatchSet(diff)
    except UnidiffParseError:
        return None


def changed_files(diff: str) -> list[str]:
    patch = _parse(diff)
    if patch is None:
        return []
    return [unquote(f.path) for f in patch]


def number_new_side(diff: str) -> str:
    """The diff with each new-side line prefixed by its line number, so references map back exactly.

    A diff that does not parse is returned as it is (the model still gets to read it).
    """
    patch = _parse(diff)
    if patch is None or not len(patch):
        return diff
    out: list[str] = []
    for file in patch:
        out.append(f"--- {_shown_name(file.source_file)}\n+++ {_shown_name(file.target_file)}")
        if file.is_binary_file:
            out.append("(binary file, not shown)")
        for hunk in file:
            out.append(f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start},{hunk.target_length} @@"
                       f"{(' ' + hunk.section_header) if hunk.section_header else ''}")
            for line in hunk:
                number = "" if line.target_line_no is None else str(line.target_line_no)
                out.append(f"{number:>5} {line.line_type}{line.value.rstrip(chr(10))}")
    return "\n".join(out)


def _shown_name(name: str) -> str:
    """A header name for the prompt: the real path with its a/ or b/ (git's quoting only where needed)."""
    return name if name == "/dev/null" else shown(unquote(name))


def diff_from_file_patches(files: Iterable[FilePatch]) -> str:
    """A git-style unified diff assembled from per-file patches; files without a patch are named but
    marked as not reviewable (binary or too large), never silently dropped."""
    parts = ["\n".join(_file_section(f)) for f in files]
    return "\n".join(parts) + ("\n" if parts else "")


def _file_section(f: FilePatch) -> list[str]:
    old = f.previous_path or f.path
    header = [f"diff --git {quote(old, 'a/')} {quote(f.path, 'b/')}"]
    if f.patch is None and f.previous_path and f.status == "renamed" and f.changes == 0:
        return [*header, "similarity index 100%", f"rename from {quote(old)}", f"rename to {quote(f.path)}"]
    if f.patch is None:
        source = "/dev/null" if f.status == "added" else quote(old, "a/")
        target = "/dev/null" if f.status == "removed" else quote(f.path, "b/")
        return [*header, f"Binary files {source} and {target} differ"]
    source = "/dev/null" if f.status == "added" else header_name(old, "a/")
    target = "/dev/null" if f.status == "removed" else header_name(f.path, "b/")
    return [*header, f"--- {source}", f"+++ {target}", f.patch.rstrip("\n")]


def without_content(diff: str) -> str | None:
    """Why a diff that changes files has nothing to review (every file only renamed, only its mode
    changed, or an empty file added or deleted), or None when some file has hunks or binary content."""
    if diff.startswith("@@ ") or "\n@@ " in diff:
        return None  # a hunk header: content (checked before parsing a diff of thousands of files)
    patch = _parse(diff)
    if patch is None or not len(patch) or any(len(f) or f.is_binary_file for f in patch):
        return None
    kinds = Counter(_bare_change(f) for f in patch)
    return "no content to review: only " + ", ".join(f"{n} {kind if n == 1 else kind + 's'}"
                                                      for kind, n in sorted(kinds.items()))


def _bare_change(f: PatchedFile) -> str:
    if f.is_rename:
        return "rename"
    if any(line.startswith("old mode") for line in f.patch_info or ()):
        return "mode change"
    return "empty file"


@dataclass(frozen=True)
class RightLine:
    hunk: int  # index of the hunk within its file: GitHub only accepts a range inside one hunk
    text: str
    added: bool


@dataclass(frozen=True)
class DiffIndex:
    """Where GitHub accepts an inline comment: for each file (by its real path), the new-side (RIGHT)
    lines of its hunks."""

    files: dict[str, dict[int, RightLine]]

    def line(self, path: str, number: int) -> RightLine | None:
        return self.files.get(path, {}).get(number)


def index_diff(diff: str) -> DiffIndex:
    patch = _parse(diff)
    files: dict[str, dict[int, RightLine]] = {}
    for file in patch or []:
        if file.is_removed_file:
            continue
        lines: dict[int, RightLine] = {}
        for number, hunk in enumerate(file):
            for line in hunk:
                if line.target_line_no is not None:
                    lines[line.target_line_no] = RightLine(number, line.value.rstrip("\n"), line.is_added)
        files[unquote(file.path)] = lines
    return DiffIndex(files)


def anchor_range(index: DiffIndex, path: str, line: int, start_line: int | None) -> str | None:
    """None when GitHub will accept an inline comment on `path` lines start_line..line (RIGHT side),
    else the reason it will not: the file is not in the diff, a line is outside every hunk, or the
    range crosses hunks."""
    if path not in index.files:
        return "file not in the diff"
    end = index.line(path, line)
    if end is None:
        return f"line {line} is not in the diff"
    if start_line is None or start_line == line:
        return None
    if start_line > line:
        return f"range {start_line}-{line} is reversed"
    start = index.line(path, start_line)
    if start is None:
        return f"line {start_line} is not in the diff"
    if start.hunk != end.hunk:
        return f"lines {start_line}-{line} span more than one hunk"
    return None

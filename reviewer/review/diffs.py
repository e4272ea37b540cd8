"""Unified diffs, pure: parse with `unidiff`, number the new side for the model, list changed files,
and rebuild a diff from GitHub's per-file listing when GitHub refuses the whole diff (over 300 files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError


@dataclass(frozen=True)
class FilePatch:
    """One row of GitHub's `pulls/N/files` listing; `patch` is None for binary or oversized files."""

    path: str
    status: str
    patch: str | None
    previous_path: str | None = None


def _parse(diff: str) -> PatchSet | None:
    try:
        return PatchSet(diff)
    except UnidiffParseError:
        return None


def changed_files(diff: str) -> list[str]:
    patch = _parse(diff)
    if patch is None:
        return []
    return [f.path for f in patch]


def number_new_side(diff: str) -> str:
    """The diff with each new-side line prefixed by its line number, so references map back exactly.

    A diff that does not parse is returned as it is (the model still gets to read it).
    """
    patch = _parse(diff)
    if patch is None or not len(patch):
        return diff
    out: list[str] = []
    for file in patch:
        out.append(f"--- {file.source_file}\n+++ {file.target_file}")
        if file.is_binary_file:
            out.append("(binary file, not shown)")
        for hunk in file:
            out.append(f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start},{hunk.target_length} @@"
                       f"{(' ' + hunk.section_header) if hunk.section_header else ''}")
            for line in hunk:
                number = "" if line.target_line_no is None else str(line.target_line_no)
                out.append(f"{number:>5} {line.line_type}{line.value.rstrip(chr(10))}")
    return "\n".join(out)


def diff_from_file_patches(files: Iterable[FilePatch]) -> str:
    """A git-style unified diff assembled from per-file patches; files without a patch are named but
    marked as not reviewable (binary or too large), never silently dropped."""
    parts: list[str] = []
    for f in files:
        old = f.previous_path or f.path
        header = [f"diff --git a/{old} b/{f.path}"]
        source = "/dev/null" if f.status == "added" else f"a/{old}"
        target = "/dev/null" if f.status == "removed" else f"b/{f.path}"
        if f.patch is None:
            header.append(f"Binary files {source} and {target} differ")
            parts.append("\n".join(header))
            continue
        header += [f"--- {source}", f"+++ {target}", f.patch.rstrip("\n")]
        parts.append("\n".join(header))
    return "\n".join(parts) + ("\n" if parts else "")


@dataclass(frozen=True)
class RightLine:
    hunk: int  # index of the hunk within its file: GitHub only accepts a range inside one hunk
    text: str
    added: bool


@dataclass(frozen=True)
class DiffIndex:
    """Where GitHub accepts an inline comment: for each file, the new-side (RIGHT) lines of its hunks."""

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
        files[file.path] = lines
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

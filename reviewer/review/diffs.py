"""Unified diffs, pure: parse with `unidiff`, number the new side for the model, list changed files,
and rebuild a diff from GitHub's per-file listing when GitHub refuses the whole diff (over 300 files).

Invariants: every path this module hands out (`changed_files`, `DiffIndex`) is the real path, as GitHub's
JSON names it, never git's C-quoted form (`paths`); the prompt shows each file by `paths.shown`, and a
rebuilt diff quotes its names exactly as git does, so it parses like the diff GitHub would have served.
`index_diff` gives exactly what unidiff's parse gives (tests/unit/test_diff_index.py compares them on
generated, mutated and tricky diffs) without unidiff's Line objects: it follows unidiff's header logic
with unidiff's own patterns, only counts each hunk's body, and builds a file's lines on first use.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from io import StringIO
from itertools import islice
from typing import NamedTuple

from unidiff import PatchSet
from unidiff.constants import (
    DEV_NULL,
    LINE_VALUE_NO_NEWLINE,
    RE_BINARY_DIFF,
    RE_DIFF_GIT_DELETED_FILE,
    RE_DIFF_GIT_HEADER,
    RE_DIFF_GIT_HEADER_NO_PREFIX,
    RE_DIFF_GIT_HEADER_URI_LIKE,
    RE_DIFF_GIT_INDEX,
    RE_DIFF_GIT_NEW_FILE,
    RE_DIFF_GIT_NEW_MODE,
    RE_DIFF_GIT_OLD_MODE,
    RE_HUNK_EMPTY_BODY_LINE,
    RE_HUNK_HEADER,
    RE_NO_NEWLINE_MARKER,
    RE_SOURCE_FILENAME,
    RE_TARGET_FILENAME,
)
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
    return number_files(patch)


def number_files(files: Iterable[PatchedFile]) -> str:
    """`number_new_side` of a diff already parsed: its files, in order (trim parses each file it keeps)."""
    out: list[str] = []
    for file in files:
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


def number_section(text: str) -> str | None:
    """`number_files(PatchSet(text))` from the same scan as `index_diff`, without unidiff's Line objects
    (submit numbers every kept file of every job); None where unidiff refuses `text`. A section with a
    binary marker is left to unidiff, which alone marks binary files."""
    if "Binary files " in text or "GIT binary patch" in text:
        patch = _parse(text)
        return None if patch is None else number_files(patch)
    lines = list(StringIO(text))  # split as unidiff splits (at "\n" only, ends kept)
    scanned = _Scan(lines).files()
    if scanned is None:
        return None
    out: list[str] = []
    for file, spans in scanned:
        out.append(f"--- {_shown_name(file.source_file)}\n+++ {_shown_name(file.target_file)}")
        for span in spans:
            out.append(f"@@ -{span.source_start},{span.source_length} +{span.target_start},{span.target_length} @@"
                       f"{(' ' + span.section_header) if span.section_header else ''}")
            out.extend(_numbered(lines, span))
    return "\n".join(out)


def _numbered(lines: list[str], span: _Span) -> Iterator[str]:
    """A hunk's body lines as `number_files` shows them (the scan validated every line's first character)."""
    target = span.target_start
    for line in islice(lines, span.first, span.end):
        kind = line[0]
        if kind in "\r\n":  # an empty context line: unidiff keeps only its line break as its value
            empty = RE_HUNK_EMPTY_BODY_LINE.match(line)
            kind, value = " ", empty.group("value") if empty else ""
        else:
            value = line[1:]
        number = ""
        if kind in "+ ":
            number, target = str(target), target + 1
        yield f"{number:>5} {kind}{value.rstrip(chr(10))}"
    for kind in span.trailing:
        yield f"{'':>5} {kind}{LINE_VALUE_NO_NEWLINE if kind else ''}"


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
    # git's shape: without the mode line a parser refuses `+++ /dev/null` (the whole diff with it)
    mode = {"added": ["new file mode 100644"], "removed": ["deleted file mode 100644"]}.get(f.status, [])
    return [*header, *mode, f"--- {source}", f"+++ {target}", f.patch.rstrip("\n")]


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
    lines of its hunks (`index_diff` builds a file's lines only when they are asked for)."""

    files: Mapping[str, Mapping[int, RightLine]]

    def line(self, path: str, number: int) -> RightLine | None:
        return self.files.get(path, {}).get(number)


def index_diff(diff: str) -> DiffIndex:
    """The index of `diff`, exactly as unidiff's parse would give it (nothing for a diff it refuses), from
    a scan that builds no object per line: posting places a few findings in diffs of thousands of lines."""
    lines = list(StringIO(diff))  # split as unidiff splits (at "\n" only, ends kept)
    scanned = _Scan(lines).files()
    spans: dict[str, list[_Span]] = {}
    for file, file_spans in scanned or ():
        if not _removed(file, file_spans):
            spans[unquote(file.path)] = file_spans
    return DiffIndex(_LazyFiles(lines, spans))


class _Span(NamedTuple):
    """A hunk's body: lines[first:end], its new side numbered from `target_start`; its header's other
    fields as unidiff's `Hunk` reads them."""

    target_start: int
    target_length: int
    first: int
    end: int
    source_start: int = 0
    source_length: int = 0
    section_header: str = ""
    # what unidiff appends to the hunk after its body: "\\" for a no-newline marker, "" for an empty line
    trailing: tuple[str, ...] = ()


def _removed(file: PatchedFile, spans: list[_Span]) -> bool:
    """unidiff's `PatchedFile.is_removed_file` (it keeps no Hunk objects: the spans stand for them)."""
    return file.target_file == DEV_NULL or (len(spans) == 1 and spans[0].target_start == 0
                                            and spans[0].target_length == 0)


class _LazyFiles(Mapping[str, Mapping[int, RightLine]]):
    """Path -> new-side lines, each file's built from its spans on first use."""

    def __init__(self, lines: list[str], spans: dict[str, list[_Span]]) -> None:
        self._lines, self._spans = lines, spans
        self._built: dict[str, dict[int, RightLine]] = {}

    def __getitem__(self, path: str) -> dict[int, RightLine]:
        built = self._built.get(path)
        if built is None:
            built = self._built[path] = _right_lines(self._lines, self._spans[path])
        return built

    def __contains__(self, path: object) -> bool:
        return path in self._spans

    def __iter__(self) -> Iterator[str]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


def _right_lines(lines: list[str], spans: list[_Span]) -> dict[int, RightLine]:
    """The new-side lines of one file's hunks, as unidiff numbers them (a later hunk's line wins)."""
    out: dict[int, RightLine] = {}
    for number, span in enumerate(spans):
        target = span.target_start
        for line in islice(lines, span.first, span.end):
            kind = line[0]
            if kind == "+" or kind == " ":
                out[target] = RightLine(number, line[1:].rstrip("\n"), kind == "+")
            elif kind in "\r\n":  # an empty context line: unidiff keeps only its line break as its text
                empty = RE_HUNK_EMPTY_BODY_LINE.match(line)
                out[target] = RightLine(number, empty.group("value").rstrip("\n") if empty else "", False)
            else:
                continue  # "-" and "\\": no new-side line
            target += 1
    return out


_ScannedFile = tuple[PatchedFile, list[_Span]]


class _Scan:
    """unidiff's `PatchSet._parse`, branch for branch with its own patterns, but a hunk's body is only
    counted and validated (its span kept), never turned into Line objects. `files()` is None where
    unidiff raises."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.at = lines, 0
        self.kinds = "".join([line[0] for line in lines])
        self.found: list[_ScannedFile] = []
        self.current: _ScannedFile | None = None
        self.in_info = False  # unidiff's `patch_info is not None`
        self.source: str | None = None  # a `---` name waiting for its `+++`

    def files(self) -> list[_ScannedFile] | None:
        try:
            while self.at < len(self.lines):
                self.at += 1
                self._line(self.lines[self.at - 1])
        except UnidiffParseError:
            return None
        return self.found

    def _start(self, source: str, target: str) -> None:
        self.current = (PatchedFile(None, source, target), [])
        self.found.append(self.current)

    def _line(self, line: str) -> None:
        if line.startswith("@@") and (found := RE_HUNK_HEADER.match(line)) is not None:
            self.in_info = False  # (no other pattern before it matches a line that starts so)
            self._hunk(found)
        elif self._git_header(line) or self._source_line(line) or self._target_line(line):
            return
        elif (found := RE_HUNK_HEADER.match(line)) is not None:
            self.in_info = False
            self._hunk(found)
        elif RE_NO_NEWLINE_MARKER.match(line):
            if self.current is None or not self.current[1]:
                raise UnidiffParseError("unexpected marker")
            self._trail("\\")
        elif line == "\n" and self.current is not None and self.current[1]:
            self._trail("")
        else:
            self._info_line(line)

    def _trail(self, kind: str) -> None:
        assert self.current is not None
        spans = self.current[1]
        spans[-1] = spans[-1]._replace(trailing=(*spans[-1].trailing, kind))

    def _git_header(self, line: str) -> bool:
        header = (RE_DIFF_GIT_HEADER.match(line) or RE_DIFF_GIT_HEADER_URI_LIKE.match(line)
                  or RE_DIFF_GIT_HEADER_NO_PREFIX.match(line))
        if header is not None:
            self.in_info, self.source = True, header.group("source")
            self._start(self.source, header.group("target"))
            return True
        new, deleted = RE_DIFF_GIT_NEW_FILE.match(line), RE_DIFF_GIT_DELETED_FILE.match(line)
        if new is not None or deleted is not None:
            if self.current is None or not self.in_info:
                raise UnidiffParseError("unexpected new or deleted file")
            if new is not None:
                self.current[0].source_file = DEV_NULL
            else:
                self.current[0].target_file = DEV_NULL
            return True
        return self.current is not None and self.in_info and any(
            pattern.match(line) for pattern in (RE_DIFF_GIT_OLD_MODE, RE_DIFF_GIT_NEW_MODE, RE_DIFF_GIT_INDEX))

    def _source_line(self, line: str) -> bool:
        found = RE_SOURCE_FILENAME.match(line)
        if found is None:
            return False
        self.source = found.group("filename")
        if self.current is not None and not self.in_info:
            self.current = None
        return True

    def _target_line(self, line: str) -> bool:
        found = RE_TARGET_FILENAME.match(line)
        if found is None:
            return False
        target = found.group("filename")
        if self.current is not None and self.current[0].target_file != target:
            raise UnidiffParseError("target without source")
        if self.current is None:
            if self.source is None:
                raise UnidiffParseError("target without source")
            self._start(self.source, target)
            self.in_info, self.source = False, None
        return True

    def _info_line(self, line: str) -> None:
        if not self.in_info:
            self.current, self.in_info = None, True
        binary = RE_BINARY_DIFF.match(line)
        if binary is not None:
            source = binary.group("source_filename")
            if self.current is None:
                self._start(source, binary.group("target_filename") or source)
            self.source, self.in_info, self.current = source, False, None
        elif line == "GIT binary patch\n":
            if self.current is None:
                raise UnidiffParseError("unexpected binary patch marker")
            self.in_info, self.current = False, None

    def _hunk(self, header: re.Match[str]) -> None:
        if self.current is None:
            raise UnidiffParseError("unexpected hunk")
        source_start, source_length, target_start, target_length, section = header.group(1, 2, 3, 4, 5)
        want_source = 1 if source_length is None else int(source_length)  # as unidiff's Hunk reads them
        want_target = 1 if target_length is None else int(target_length)
        end = _hunk_end(self.kinds, self.at, want_source, want_target)
        self.current[1].append(_Span(int(target_start), want_target, self.at, end, int(source_start), want_source,
                                     section))
        self.at = end


def _hunk_end(kinds: str, at: int, want_source: int, want_target: int) -> int:
    """Where the body of `hunk` from line `at` ends, as unidiff's `_parse_hunk` finds it line by line
    (`kinds`: each line's first character). No line adds more than one to either side's count, so the
    body holds at least as many more lines as the larger shortfall: grow it by that until both counts
    are reached (exactly: unidiff stops there) or the lines run out. unidiff reads at least one line."""
    end = min(at + max(want_source, want_target, 1), len(kinds))
    while True:
        body = kinds[at:end]
        both = body.count(" ") + body.count("\n") + body.count("\r")  # an empty line is context
        source, target = both + body.count("-"), both + body.count("+")
        if source + target - both + body.count("\\") != len(body):
            raise UnidiffParseError("hunk diff line expected")
        if source > want_source or target > want_target:
            raise UnidiffParseError("hunk is longer than expected")
        if source == want_source and target == want_target:
            return end
        if end == len(kinds):
            raise UnidiffParseError("hunk is shorter than expected")
        end = min(end + max(want_source - source, want_target - target, 1), len(kinds))


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

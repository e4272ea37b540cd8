"""`index_diff` scans a diff without unidiff's Line objects: on every diff, generated, mutated or tricky,
it must give exactly what unidiff's parse gives (the index the service used to build from `PatchSet`)."""

from __future__ import annotations

import random

import pytest
from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from reviewer.emulators.samples import make_diff
from reviewer.review.diffs import FilePatch, RightLine, diff_from_file_patches, index_diff, number_files, number_section
from reviewer.review.paths import unquote

WORDS = ["alpha", "beta", "gamma", "delta", "    return x", "", "\tpass", "if a:", "# note", "x = 1"]
TRICKY_NAMES = ["café.py", "my file.py", 'quo"te.py', "tab\there.py", "new\nline.py", "back\\slash.py", "a/b.py"]


def unidiff_index(diff: str) -> dict[str, dict[int, RightLine]]:
    """The index as the service built it with unidiff before (the reference)."""
    try:
        patch = PatchSet(diff)
    except UnidiffParseError:
        return {}
    files: dict[str, dict[int, RightLine]] = {}
    for file in patch:
        if file.is_removed_file:
            continue
        lines: dict[int, RightLine] = {}
        for number, hunk in enumerate(file):
            for line in hunk:
                if line.target_line_no is not None:
                    lines[line.target_line_no] = RightLine(number, line.value.rstrip("\n"), line.is_added)
        files[unquote(file.path)] = lines
    return files


def scanned(diff: str) -> dict[str, dict[int, RightLine]]:
    return {path: dict(lines) for path, lines in index_diff(diff).files.items()}


def _content(rng: random.Random, size: int) -> str:
    text = "\n".join(rng.choice(WORDS) for _ in range(size))
    return text + ("\n" if rng.random() < 0.8 else "")  # some files end without a newline


def _edited(rng: random.Random, old: str) -> str:
    lines = old.split("\n")
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(lines) + 1)
        if rng.random() < 0.5 and at < len(lines):
            del lines[at]
        else:
            lines.insert(at, rng.choice(WORDS) + "!")
    return "\n".join(lines)


def random_diff(rng: random.Random) -> str:
    changes: dict[str, tuple[str | None, str | None]] = {}
    for n in range(rng.randint(1, 5)):
        path = rng.choice([f"src/m{n}.py", rng.choice(TRICKY_NAMES)])
        old = None if rng.random() < 0.15 else _content(rng, rng.randint(0, 40))
        new = None if old is not None and rng.random() < 0.15 else _edited(rng, old or "")
        changes[path] = (old, new)
    return make_diff(changes)


def mutated(rng: random.Random, diff: str) -> str:
    """`diff` with a few lines deleted, doubled, re-prefixed or inserted: many of these unidiff refuses."""
    lines = diff.split("\n")
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(lines))
        choice = rng.randrange(6)
        if choice == 0:
            del lines[at]
        elif choice == 1:
            lines.insert(at, lines[at])
        elif choice == 2:
            lines[at] = rng.choice("+- \\x") + lines[at][1:]
        elif choice == 3:
            lines.insert(at, rng.choice(["", "\\ No newline at end of file", "\r", " x\r", "\rx", "@@ -1 +1 @@"]))
        elif choice == 4:
            lines[at] += "\r"
        else:
            lines.insert(at, rng.choice(["--- a/z.py", "+++ b/z.py", "diff --git a/z.py b/z.py", "GIT binary patch",
                                         "Binary files a/z.png and b/z.png differ", "new file mode 100644"]))
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(300))
def test_the_index_of_a_generated_diff_is_unidiffs(seed: int) -> None:
    rng = random.Random(seed)
    diff = random_diff(rng)
    assert scanned(diff) == unidiff_index(diff)
    broken = mutated(rng, diff)
    assert scanned(broken) == unidiff_index(broken)


@pytest.mark.parametrize("number", range(1, 7))
def test_the_index_of_a_reference_workload_diff_is_unidiffs(number: int) -> None:
    diffs = pytest.importorskip("bench._reference_diffs", reason="run from the checkout's root")
    diff = diffs.Repository(10, number).pull_diff(10, number, 75_000)
    assert scanned(diff) == unidiff_index(diff) and len(scanned(diff)) > 1


RENAME = "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
RENAME_EDIT = ("diff --git a/old.py b/new.py\nsimilarity index 90%\nrename from old.py\nrename to new.py\n"
               "index 1111111..2222222 100644\n--- a/old.py\n+++ b/new.py\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n")
BINARY = "diff --git a/img.png b/img.png\nindex 1111111..2222222 100644\nBinary files a/img.png and b/img.png differ\n"
NO_NEWLINE = ("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n"
              "\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
REMOVED = ("diff --git a/gone.py b/gone.py\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/gone.py\n"
           "+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n")
PLAIN = "--- x.py\t2024-01-01\n+++ x.py\t2024-01-02\n@@ -1 +1,2 @@\n a\n+b\n\n"
CRLF = "diff --git a/w.py b/w.py\n--- a/w.py\n+++ b/w.py\n@@ -1,3 +1,3 @@\n a\r\n\r\n-b\r\n+c\r\n"
EMPTY_HUNK_AT_END = "--- a/e.py\n+++ b/e.py\n@@ -0,0 +0,0 @@\n"
TRICKY = [RENAME, RENAME_EDIT, BINARY, NO_NEWLINE, REMOVED, PLAIN, CRLF, EMPTY_HUNK_AT_END, "", "not a diff\n",
          "@@ -1 +1 @@\n-a\n+b\n", RENAME + BINARY + NO_NEWLINE + REMOVED + RENAME_EDIT, NO_NEWLINE.rstrip("\n"),
          "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n",
          diff_from_file_patches([FilePatch("dead.py", "removed", "@@ -1 +0,0 @@\n-x")])]


@pytest.mark.parametrize("diff", TRICKY)
def test_the_index_of_a_tricky_diff_is_unidiffs(diff: str) -> None:
    assert scanned(diff) == unidiff_index(diff)


def test_the_index_of_a_rebuilt_diff_with_quoted_paths_is_unidiffs() -> None:
    files = [FilePatch(name, "modified", "@@ -1,2 +1,2 @@\n a\n-b\n+c") for name in TRICKY_NAMES]
    files += [FilePatch("pic.png", "added", None), FilePatch("to.py", "renamed", None, previous_path="from.py",
                                                             changes=0)]
    diff = diff_from_file_patches(files)
    assert scanned(diff) == unidiff_index(diff) and set(scanned(diff)) >= set(TRICKY_NAMES)


def test_a_files_lines_are_built_only_when_asked_for() -> None:
    index = index_diff(RENAME_EDIT + BINARY)
    assert "new.py" in index.files and "img.png" in index.files and "old.py" not in index.files
    assert index.line("new.py", 2) == RightLine(0, "c", True) and index.line("img.png", 1) is None
    assert index.line("missing.py", 1) is None


def unidiff_numbered(diff: str) -> str | None:
    try:
        return number_files(PatchSet(diff))
    except UnidiffParseError:
        return None


@pytest.mark.parametrize("seed", range(300))
def test_a_generated_diff_is_numbered_as_unidiff_numbers_it(seed: int) -> None:
    rng = random.Random(seed)
    diff = random_diff(rng)
    assert number_section(diff) == unidiff_numbered(diff)
    broken = mutated(rng, diff)
    assert number_section(broken) == unidiff_numbered(broken)


@pytest.mark.parametrize("diff", TRICKY)
def test_a_tricky_diff_is_numbered_as_unidiff_numbers_it(diff: str) -> None:
    assert number_section(diff) == unidiff_numbered(diff)


@pytest.mark.parametrize("number", range(1, 4))
def test_a_reference_workload_diff_is_numbered_as_unidiff_numbers_it(number: int) -> None:
    diffs = pytest.importorskip("bench.reference_workload", reason="run from the checkout's root")
    diff = diffs.Repository(20261201, number).pull_diff(20261201, number, 75_000)
    assert number_section(diff) == unidiff_numbered(diff)

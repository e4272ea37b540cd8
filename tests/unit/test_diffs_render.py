"""Diff numbering and the file-listing fallback; template rendering with StrictUndefined."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewer.errors import TemplateError
from reviewer.review.diffs import FilePatch, changed_files, diff_from_file_patches, index_diff, number_new_side
from reviewer.review.render import builtin_prompts_dir, render_prompt, template_exists

DIFF = """diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -1,4 +1,5 @@
 import os
-x = 1
+x = 2
+y = 3
 
 def f():
@@ -10,3 +11,3 @@ def g():
     a = 1
-    b = 2
+    b = 22
     return a
"""


def test_number_new_side_prefixes_new_line_numbers() -> None:
    lines = number_new_side(DIFF).splitlines()
    assert "    2 +x = 2" in lines
    assert "    3 +y = 3" in lines
    assert "      -x = 1" in lines
    assert "   12 +    b = 22" in lines


def test_changed_files_and_unparseable_diff() -> None:
    assert changed_files(DIFF) == ["app.py"]
    assert number_new_side("not a diff") == "not a diff"
    assert changed_files("@@ broken") == []


def test_diff_from_file_patches_round_trips_through_the_parser() -> None:
    patch = "@@ -1,2 +1,2 @@\n-a\n+b\n c\n"
    diff = diff_from_file_patches([FilePatch("src/x.py", "modified", patch),
                                   FilePatch("img.png", "added", None),
                                   FilePatch("new.py", "added", "@@ -0,0 +1 @@\n+print(1)\n")])
    assert changed_files(diff) == ["src/x.py", "img.png", "new.py"]
    assert "    1 +print(1)" in number_new_side(diff)


def test_a_rebuilt_diff_with_a_removed_file_still_parses_whole() -> None:
    """Without git's `deleted file mode` line the parser refuses the whole diff (`+++ /dev/null` without a
    source), and the review would lose every file of a PR over 300 files that deletes one."""
    diff = diff_from_file_patches([FilePatch("gone.py", "removed", "@@ -1,2 +0,0 @@\n-a\n-b"),
                                   FilePatch("kept.py", "modified", "@@ -1 +1 @@\n-a\n+b")])
    assert "deleted file mode 100644" in diff
    assert changed_files(diff) == ["gone.py", "kept.py"]
    assert index_diff(diff).line("kept.py", 1) is not None


def variables() -> dict[str, object]:
    return {"repo": "acme/api", "pr": {"number": 3, "title": "t", "author": "a", "body": "", "url": "u",
            "base_ref": "main", "head_ref": "f", "head_sha": "abc", "labels": []},
            "diff": "D", "files": ["a.py"], "instructions": "Use tabs.", "model": "m",
            "omitted": [{"path": "yarn.lock", "reason": "ignored"}], "incremental": True, "since_sha": "abcdef0123",
            "previous_summary": "Earlier: fine."}


def test_default_template_renders() -> None:
    prompt = render_prompt("review", variables())
    assert "acme/api" in prompt.system and "Use tabs." in prompt.system
    assert "#3" in prompt.user and "- a.py" in prompt.user
    assert "- yarn.lock: ignored" in prompt.user and "abcdef0" in prompt.user and "Earlier: fine." in prompt.user
    assert "report_review" in prompt.system


def test_strict_undefined_makes_typos_errors(tmp_path: Path) -> None:
    (tmp_path / "mine.system.j2").write_text("Review {{ repo }}")
    (tmp_path / "mine.user.j2").write_text("PR {{ pr.numbr }}")
    assert template_exists("mine", tmp_path)
    with pytest.raises(TemplateError, match="mine.user.j2"):
        render_prompt("mine", variables(), tmp_path)


def test_missing_template_and_builtin_dir() -> None:
    assert (builtin_prompts_dir() / "review.system.j2").is_file()
    assert not template_exists("absent", None)
    with pytest.raises(TemplateError, match="not found"):
        render_prompt("absent", variables())


def test_index_and_anchor_ranges() -> None:
    from reviewer.review.diffs import anchor_range, index_diff

    index = index_diff(DIFF)
    assert index.line("app.py", 2) is not None and index.line("app.py", 2).added  # type: ignore[union-attr]
    assert index.line("app.py", 4) is not None and not index.line("app.py", 4).added  # type: ignore[union-attr]
    assert anchor_range(index, "app.py", 3, None) is None
    assert anchor_range(index, "app.py", 3, 1) is None
    assert anchor_range(index, "app.py", 8, None) == "line 8 is not in the diff"
    assert anchor_range(index, "app.py", 12, 3) == "lines 3-12 span more than one hunk"
    assert anchor_range(index, "app.py", 2, 3) == "range 3-2 is reversed"
    assert anchor_range(index, "other.py", 1, None) == "file not in the diff"

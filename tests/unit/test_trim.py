"""trim.fit_diff: ignore patterns, whole files by relevance within the budget, every omission reported
with its reason, kept sections byte-identical to the original (issue 3, "Large pull requests")."""

from __future__ import annotations

import re

import pytest
from unidiff.patch import PatchSet

from reviewer.emulators.samples import REFUNDS_AFTER, REFUNDS_BEFORE, make_diff
from reviewer.review.diffs import FilePatch, changed_files, diff_from_file_patches, number_new_side
from reviewer.review.trim import (
    CONFIG,
    DEFAULT_IGNORES,
    DOCS,
    OTHER,
    SOURCE,
    TESTS,
    FittedDiff,
    Omitted,
    estimate_tokens,
    fit_diff,
    parse_ignore,
    relevance,
)

UNLIMITED = 10**9


def code(lines: int, tag: str = "x") -> str:
    return "".join(f"{tag}_{i} = compute({i})\n" for i in range(lines))


def added(*paths: str, lines: int = 5) -> str:
    """A diff that creates each path with `lines` lines of code (the same lines, so only paths differ)."""
    return make_diff({path: (None, code(lines)) for path in paths})


def sections(diff: str) -> dict[str, str]:
    """Each file's section of a git diff, found independently of the module under test."""
    parts = [p for p in re.split(r"(?m)^(?=diff --git )", diff) if p]
    return {PatchSet(part)[0].path: part for part in parts}


def lines_of(diff: str) -> dict[str, list[tuple[str, int | None, int | None, str]]]:
    return {f.path: [(line.line_type, line.source_line_no, line.target_line_no, line.value)
                     for hunk in f for line in hunk] for f in PatchSet(diff)}


# --- estimate_tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "tokens"), [
    ("", 0),
    ("a", 1),
    ("abcdefg", 2),  # 3.5 characters per token
    ("a" * 35, 10),
    ("a" * 36, 11),  # rounded up
    ("日本語", 3),  # one token per non-ASCII character
    ("é" + "a" * 7, 3),
])
def test_estimate_tokens(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_estimate_tokens_is_about_3_5_characters_per_token_on_a_real_diff() -> None:
    diff = make_diff({"payments/refunds.py": (REFUNDS_BEFORE, REFUNDS_AFTER)})
    assert estimate_tokens(diff) == -(-len(diff) * 2 // 7)


# --- ignore patterns -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "pattern"), [
    # lock files
    ("package-lock.json", "package-lock.json"),
    ("web/yarn.lock", "yarn.lock"),
    ("pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("poetry.lock", "poetry.lock"),
    ("Pipfile.lock", "Pipfile.lock"),
    ("Cargo.lock", "Cargo.lock"),
    ("go.sum", "go.sum"),
    ("composer.lock", "composer.lock"),
    ("Gemfile.lock", "Gemfile.lock"),
    ("uv.lock", "uv.lock"),
    ("deps/custom.lock", "*.lock"),
    # minified and bundled
    ("static/app.min.js", "*.min.js"),
    ("static/site.min.css", "*.min.css"),
    ("static/app.js.map", "*.map"),
    ("dist/index.js", "dist/"),
    ("packages/ui/dist/index.d.ts", "dist/"),
    ("web/build/static/js/main.js", "**/build/**/*.js"),
    # generated
    ("api/v1/service_pb2.py", "*_pb2.py"),
    ("api/service.pb.go", "*.pb.go"),
    ("src/client.generated.ts", "*.generated.*"),
    ("lib/model.g.dart", "*.g.dart"),
    ("src/__generated__/types.ts", "__generated__/"),
    ("ui/view.snap", "*.snap"),
    ("ui/__snapshots__/view.txt", "__snapshots__/"),
    # vendored
    ("vendor/github.com/pkg/errors/errors.go", "vendor/"),
    ("third_party/zlib/inflate.c", "third_party/"),
    ("node_modules/left-pad/index.js", "node_modules/"),
    # binaries and media
    ("assets/logo.png", "*.png"),
    ("img/photo.jpg", "*.jpg"),
    ("favicon.ico", "*.ico"),
    ("docs/manual.pdf", "*.pdf"),
    ("fonts/inter.woff2", "*.woff*"),
    ("lib/tool.jar", "*.jar"),
    ("lib/native.so", "*.so"),
    ("bin/app.exe", "*.exe"),
])
def test_default_ignores_catch_each_category(path: str, pattern: str) -> None:
    fitted = fit_diff(added(path, "src/app.py"), budget_tokens=UNLIMITED)
    assert fitted.kept == ("src/app.py",)
    [omitted] = fitted.omitted
    assert (omitted.path, omitted.reason) == (path, f"ignored by pattern {pattern!r}")


@pytest.mark.parametrize("path", [
    "src/app.py", "scripts/build/deploy.py", "build.gradle", "src/lockfile.py", "docs/build.md",
    "src/distance.go", "vendoring.md", "tests/test_snapshots.py",
])
def test_default_ignores_leave_code_alone(path: str) -> None:
    assert fit_diff(added(path), budget_tokens=UNLIMITED).kept == (path,)


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    (["*.lock", "!keep.lock"], "keep.lock", False),  # negation re-includes
    (["*.lock", "!keep.lock"], "sub/other.lock", True),
    (["generated/"], "src/generated/models.py", True),  # a directory pattern matches at any depth
    (["generated/"], "src/generated.py", False),  # ... but only directories
    (["/config/*.json"], "config/app.json", True),  # anchored to the root
    (["/config/*.json"], "sub/config/app.json", False),
    (["docs/**"], "docs/a/b.md", True),
    (["# a comment", "", "*.md"], "README.md", True),
    ([], "package-lock.json", False),  # no patterns, nothing ignored
    ([*DEFAULT_IGNORES, "!package-lock.json"], "package-lock.json", False),  # a repo re-includes a default
])
def test_custom_ignore_patterns(patterns: list[str], path: str, ignored: bool) -> None:
    fitted = fit_diff(added(path), ignore=patterns, budget_tokens=UNLIMITED)
    assert fitted.kept == (() if ignored else (path,))
    assert [o.reason.startswith("ignored by pattern") for o in fitted.omitted] == ([True] if ignored else [])


@pytest.mark.parametrize("bad", ["!", "src\\", "[", "src/[a-", "/"])
def test_a_bad_pattern_is_a_one_line_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_ignore(["*.lock", bad])
    message = str(excinfo.value)
    assert repr(bad) in message and "\n" not in message
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        fit_diff(added("a.py"), ignore=[bad], budget_tokens=UNLIMITED)


def test_parse_ignore_returns_a_gitignore_spec() -> None:
    spec = parse_ignore(["*.lock", "!keep.lock", "dist/"])
    assert spec.match_file("a/b.lock") and not spec.match_file("keep.lock") and spec.match_file("dist/x.js")


def test_tokens_saved_by_ignores_are_reported() -> None:
    diff = make_diff({"package-lock.json": (None, code(400, "lock")), "yarn.lock": (None, code(50, "y")),
                      "src/app.py": (None, code(5))})
    fitted = fit_diff(diff, budget_tokens=UNLIMITED)
    by_path = sections(diff)
    saved = estimate_tokens(by_path["package-lock.json"]) + estimate_tokens(by_path["yarn.lock"])
    assert fitted.ignored_tokens == saved == sum(o.tokens for o in fitted.omitted)
    assert fitted.tokens == estimate_tokens(by_path["src/app.py"])


# --- budget and relevance --------------------------------------------------------------------------


def test_budget_keeps_whole_files_by_relevance_and_reports_every_omission() -> None:
    diff = added("README.md", "deploy.yml", "src/app.py", "tests/test_app.py", lines=20)
    tokens = {path: estimate_tokens(text) for path, text in sections(diff).items()}
    budget = tokens["src/app.py"] + tokens["deploy.yml"] + 10  # room for two files, not three
    fitted = fit_diff(diff, budget_tokens=budget)
    assert fitted.kept == ("deploy.yml", "src/app.py")  # source, then config; in original order
    assert fitted.omitted == tuple(
        Omitted(path, f"left out: over the token budget ({tokens[path]:,} tokens)", tokens[path])
        for path in ("README.md", "tests/test_app.py"))
    assert fitted.tokens == tokens["deploy.yml"] + tokens["src/app.py"] <= budget
    assert fitted.diff == sections(diff)["deploy.yml"] + sections(diff)["src/app.py"]


@pytest.mark.parametrize(("first", "second"), [
    ("src/a.py", "app.yml"),
    ("cmd/main.go", "Dockerfile"),
    ("web/App.tsx", "infra/main.tf"),
    ("db/schema.sql", ".github/workflows/ci.yml"),
    ("Dockerfile", "tests/test_a.py"),
    ("pyproject.toml", "pkg/a_test.go"),
    ("terraform/vpc.hcl", "web/a.spec.ts"),
    ("src/__tests__/a.js", "docs/guide.md"),
    ("spec/models/user_spec.rb", "README.md"),
    ("CHANGELOG.md", "data/records.csv"),
])
def test_the_more_relevant_file_wins_the_last_place(first: str, second: str) -> None:
    diff = added(first, second)
    size = max(len(text) for text in sections(diff).values())  # either fits alone, not both
    fitted = fit_diff(diff, budget_tokens=size, count=len)
    assert fitted.kept == (first,)
    assert [o.path for o in fitted.omitted] == [second]


@pytest.mark.parametrize(("path", "kind"), [
    ("reviewer/trim.py", SOURCE), ("cmd/server/main.go", SOURCE), ("web/src/App.tsx", SOURCE),
    ("lib/parser.rs", SOURCE), ("db/migrations/0001.sql", SOURCE), ("src/util.h", SOURCE),
    ("Dockerfile", CONFIG), ("docker-compose.yml", CONFIG), ("pyproject.toml", CONFIG),
    ("package.json", CONFIG), ("infra/main.tf", CONFIG), (".github/CODEOWNERS", CONFIG),
    ("requirements-dev.txt", CONFIG), ("Makefile", CONFIG),
    ("tests/unit/test_trim.py", TESTS), ("test/helpers.js", TESTS), ("pkg/store_test.go", TESTS),
    ("web/a.spec.ts", TESTS), ("web/a.test.js", TESTS), ("src/__tests__/a.js", TESTS),
    ("spec/a_spec.rb", TESTS), ("src/test/java/FooTest.java", TESTS), ("conftest.py", TESTS),
    ("README.md", DOCS), ("docs/conf.py", DOCS), ("guide.rst", DOCS), ("LICENSE", DOCS),
    ("data/records.csv", OTHER), ("bin/run", OTHER),
])
def test_relevance_classes(path: str, kind: int) -> None:
    assert relevance(path) == kind


def test_within_a_class_the_bigger_change_comes_first_then_the_path() -> None:
    diff = make_diff({"src/small.py": (None, code(2)), "src/big.py": (None, code(12))})
    fitted = fit_diff(diff, budget_tokens=len(sections(diff)["src/big.py"]), count=len)
    assert fitted.kept == ("src/big.py",)
    tie = added("src/b.py", "src/a.py")
    assert fit_diff(tie, budget_tokens=len(sections(tie)["src/a.py"]), count=len).kept == ("src/a.py",)


def test_a_file_that_does_not_fit_is_passed_over_for_smaller_ones() -> None:
    small = [f"src/s{i}.py" for i in range(5)]
    diff = make_diff({"src/huge.py": (None, code(500)), **{path: (None, code(3)) for path in small}})
    budget = sum(len(sections(diff)[path]) for path in small) + 10
    fitted = fit_diff(diff, budget_tokens=budget, count=len)
    assert fitted.kept == tuple(small)
    huge = len(sections(diff)["src/huge.py"])
    assert fitted.omitted == (Omitted("src/huge.py", f"left out: over the token budget ({huge:,} tokens)", huge),)


def test_a_zero_budget_keeps_nothing_and_omits_everything() -> None:
    diff = added("a.py", "b.py")
    fitted = fit_diff(diff, budget_tokens=0)
    assert (fitted.kept, fitted.diff, fitted.tokens) == ((), "", 0)
    assert [o.path for o in fitted.omitted] == ["a.py", "b.py"]


# --- renames, deletions, binaries ------------------------------------------------------------------

PURE_RENAME = "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
QUOTED_RENAME = ('diff --git "a/vendor/caf\\303\\251.py" "b/src/caf\\303\\251.py"\nsimilarity index 100%\n'
                 'rename from "vendor/caf\\303\\251.py"\nrename to "src/caf\\303\\251.py"\n')


def renamed(old: str, new: str) -> str:
    return diff_from_file_patches([FilePatch(new, "renamed", "@@ -1,2 +1,2 @@\n a\n-b\n+c\n", old)])


@pytest.mark.parametrize(("diff", "ignore", "kept", "reason"), [
    (renamed("vendor/lib.py", "src/lib.py"), DEFAULT_IGNORES, (),
     "ignored by pattern 'vendor/' on its old path vendor/lib.py"),
    (renamed("src/lib.py", "vendor/lib.py"), DEFAULT_IGNORES, (), "ignored by pattern 'vendor/'"),
    (renamed("src/a.py", "src/b.py"), DEFAULT_IGNORES, ("src/b.py",), None),
    (renamed("old.lock", "keep.lock"), ["*.lock", "!keep.lock"], ("keep.lock",), None),  # new path decides
    (PURE_RENAME, DEFAULT_IGNORES, ("new.py",), None),
    (QUOTED_RENAME, DEFAULT_IGNORES, (), "ignored by pattern 'vendor/' on its old path vendor/café.py"),
    (make_diff({"node_modules/x/index.js": ("a\n", None)}), DEFAULT_IGNORES, (),
     "ignored by pattern 'node_modules/'"),
    (make_diff({"src/old.py": ("a\n", None)}), DEFAULT_IGNORES, ("src/old.py",), None),
    (make_diff({"src/empty.py": (None, "")}), DEFAULT_IGNORES, ("src/empty.py",), None),
])
def test_renamed_deleted_and_empty_files(diff: str, ignore: list[str], kept: tuple[str, ...],
                                         reason: str | None) -> None:
    fitted = fit_diff(diff, ignore=ignore, budget_tokens=UNLIMITED)
    assert fitted.kept == kept
    assert [o.reason for o in fitted.omitted] == ([] if reason is None else [reason])
    if kept:
        assert fitted.diff == diff


GIT_BINARY = ("diff --git a/model.onnx b/model.onnx\nindex 1111111..2222222 100644\nGIT binary patch\n"
              "literal 5\nMcmZ?wbhEZ\n\nliteral 0\nHcmV?d00001\n\n")


@pytest.mark.parametrize(("diff", "path", "reason"), [
    (diff_from_file_patches([FilePatch("assets/blob.bin", "added", None)]), "assets/blob.bin", "binary file"),
    (GIT_BINARY, "model.onnx", "binary file"),
    (diff_from_file_patches([FilePatch("src/huge.py", "modified", None)]), "src/huge.py",
     "no patch from GitHub (too large or binary)"),
    (diff_from_file_patches([FilePatch("data/fixtures.json", "added", None)]), "data/fixtures.json",
     "no patch from GitHub (too large or binary)"),
])
def test_binary_files_are_omitted_with_unknown_cost(diff: str, path: str, reason: str) -> None:
    fitted = fit_diff(added("src/app.py") + diff, ignore=(), budget_tokens=UNLIMITED, hard_limit_tokens=1)
    assert fitted.kept == ("src/app.py",)
    assert fitted.omitted == (Omitted(path, reason, 0),)
    assert fitted.ignored_tokens == 0


def test_a_binary_file_matching_a_pattern_is_reported_as_ignored() -> None:
    diff = diff_from_file_patches([FilePatch("assets/logo.png", "added", None)])
    [omitted] = fit_diff(diff, budget_tokens=UNLIMITED).omitted
    assert omitted.reason == "ignored by pattern '*.png'"


# --- hard limit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit_delta", "over"), [(0, False), (-1, True), (1, False)])
def test_hard_limit_counts_the_reviewable_files_only(limit_delta: int, over: bool) -> None:
    code_diff = added("src/a.py", "src/b.py", lines=30)
    diff = code_diff + make_diff({"package-lock.json": (None, code(2000, "lock"))})  # far over any limit
    reviewable = len(code_diff)
    fitted = fit_diff(diff, budget_tokens=100, hard_limit_tokens=reviewable + limit_delta, count=len)
    assert fitted.over_hard_limit is over
    # the rest is computed all the same, for the report
    assert [o.path for o in fitted.omitted] == ["src/a.py", "src/b.py", "package-lock.json"]


def test_no_hard_limit_is_never_over() -> None:
    assert not fit_diff(added("a.py", lines=5000), budget_tokens=10).over_hard_limit


# --- unparseable input -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "not a diff at all\n", "@@ broken", "Subject: hello\n\nno files here\n"])
def test_an_unparseable_diff_is_passed_whole(text: str) -> None:
    assert fit_diff(text, budget_tokens=1) == FittedDiff(text, (), (), estimate_tokens(text), 0, False)
    assert fit_diff(text, budget_tokens=1, hard_limit_tokens=0).over_hard_limit is (estimate_tokens(text) > 0)


def test_a_file_with_broken_hunks_is_left_out_and_the_rest_still_parses() -> None:
    broken = ("diff --git a/src/a.py b/src/a.py\nindex 1..2 100644\n--- a/src/a.py\n+++ b/src/a.py\n"
              "@@ -1,5 +1,5 @@\n x\n")
    good = added("src/b.py")
    fitted = fit_diff(broken + good, budget_tokens=UNLIMITED)
    assert fitted.kept == ("src/b.py",) and fitted.diff == good
    assert fitted.omitted == (Omitted("src/a.py", "left out: its diff could not be parsed", estimate_tokens(broken)),)


# --- the kept diff maps back -----------------------------------------------------------------------


def mixed_diff() -> str:
    return make_diff({
        "payments/refunds.py": (REFUNDS_BEFORE, REFUNDS_AFTER),
        "payments/models.py": (code(80), code(80).replace("x_10 ", "y_10 ").replace("x_60 ", "y_60 ")),
        "payments/big.py": (None, code(3000)),
        "yarn.lock": (None, code(100, "lock")),
        "docs/refunds.md": ("# Refunds\n", "# Refunds\n\nSearch by merchant.\n"),
        "tests/test_refunds.py": (code(10), code(12)),
    }) + diff_from_file_patches([FilePatch("img/chart.bin", "added", None)])


def test_the_kept_diff_round_trips_with_identical_new_side_line_numbers() -> None:
    diff = mixed_diff()
    fitted = fit_diff(diff, budget_tokens=2000)
    assert "payments/refunds.py" in fitted.kept and "payments/big.py" not in fitted.kept
    original, kept = lines_of(diff), lines_of(fitted.diff)
    assert list(kept) == list(fitted.kept)
    for path in fitted.kept:
        assert kept[path] == original[path]
        assert sections(fitted.diff)[path] == sections(diff)[path]  # byte for byte
    assert number_new_side(fitted.diff) == "\n".join(number_new_side(sections(diff)[p]) for p in fitted.kept)


def test_every_file_is_kept_or_omitted_in_original_order() -> None:
    diff = mixed_diff()
    fitted = fit_diff(diff, budget_tokens=2000)
    assert sorted(fitted.kept + tuple(o.path for o in fitted.omitted)) == sorted(changed_files(diff))
    order = changed_files(diff)
    assert [o.path for o in fitted.omitted] == [p for p in order if p not in fitted.kept]
    assert fitted.tokens <= 2000


def test_with_room_for_everything_the_diff_is_unchanged() -> None:
    diff = make_diff({"payments/refunds.py": (REFUNDS_BEFORE, REFUNDS_AFTER), "README.md": (None, "hi\n")})
    fitted = fit_diff(diff, budget_tokens=UNLIMITED, count=len)
    assert (fitted.diff, fitted.kept, fitted.omitted, fitted.tokens) == (
        diff, ("README.md", "payments/refunds.py"), (), len(diff))


def test_a_plain_unified_diff_is_fitted_too() -> None:
    plain = ("--- a/f.txt\t2024-01-01 00:00:00\n+++ b/f.txt\t2024-01-01 00:00:00\n@@ -1,3 +1,3 @@\n x\n-y\n+Y\n z\n"
             "--- a/g.c\n+++ b/g.c\n@@ -1 +1,2 @@\n q\n+r\n\\ No newline at end of file\n")
    fitted = fit_diff(plain, budget_tokens=UNLIMITED)
    assert fitted.kept == ("f.txt", "g.c")
    assert lines_of(fitted.diff) == lines_of(plain)
    only_code = fit_diff(plain, budget_tokens=estimate_tokens(plain) - 1)
    assert only_code.kept == ("g.c",)

"""Every string from the model is untrusted, in every field (path, title, body, suggestion, summary,
dropped text), and so are the diff's paths: hidden markers and fingerprints never survive, suggestion
fences cannot be closed from inside, mentions and issue references (cross-repository ones too) cannot
ping or link, and cutting a long text never reopens any of that."""

from __future__ import annotations

import re

import pytest

from reviewer.review.body import GITHUB_BODY_LIMIT, TRUNCATION_NOTE, Footer, fit_to_limit, marker
from reviewer.review.compose import (
    COMMENT_LIMIT,
    ReviewContext,
    code_span,
    compose_review,
    fingerprint,
    known_fingerprints,
    neutralise,
)
from reviewer.review.diffs import index_diff
from reviewer.review.parse import Finding, ReviewDraft
from tests.unit.test_diffs_render import DIFF

INDEX = index_diff(DIFF)
MARKER = marker(1, "a" * 40)
CTX = ReviewContext(Footer("claude-opus-4-7", 1000, 2000, "a" * 40), MARKER, "config: reviewer.yml")
FORGED = ("<!-- reviewer:fp=0123456789abcdef --> <!-- reviewer:job=99 head=" + "b" * 40 + " -->"
          " <!<!---->-- reviewer:job=98 head=c -->")  # the last one appears only once the inner comment is gone
PING = "@alice @acme/security #12 acme/api#34 octo#5 GH-6"
ZW = "\u200b"


def texts(draft: ReviewDraft, ctx: ReviewContext = CTX) -> tuple[str, list[str], list[Finding]]:
    composed = compose_review(draft, INDEX, ctx)
    return composed.body, [c.body for c in composed.comments], list(draft.findings)


def hostile_draft() -> ReviewDraft:
    inline = Finding("app.py", 2, "high", f"Title {FORGED} {PING}", f"Body {FORGED} {PING}", None,
                     f"x = 2  # {FORGED}\n")
    outside = Finding(f"gone {FORGED} {PING}.py", 3, "medium", f"T {FORGED}", f"B {PING}")
    return ReviewDraft(f"Summary {FORGED} {PING}", (inline, outside), "1 finding(s) were not in the expected form",
                       (f"dropped {FORGED} {PING}",))


def test_no_marker_or_fingerprint_from_any_field_survives() -> None:
    draft = hostile_draft()
    body, comments, findings = texts(draft)
    everything = [body, *comments]
    assert sum(len(re.findall(r"<!--\s*reviewer:job=", text)) for text in everything) == 1  # ours
    assert body.endswith(MARKER)
    assert known_fingerprints(everything) == {fingerprint(f, INDEX) for f in findings}
    assert not any(re.search(r"<!--\s*reviewer:(job|fp)=(99|98|0123456789abcdef)", text) for text in everything)


def test_no_mention_or_reference_from_any_field_pings_or_links() -> None:
    body, comments, _ = texts(hostile_draft())
    prose = re.sub(r"`+[^`\n]*`+", "", body + "".join(comments))  # code spans (the path) cannot ping
    for ref in ("@alice", "@acme/security", "#12", "acme/api#34", "octo#5", "GH-6"):
        assert ref not in prose, ref
    assert "@" + ZW + "alice" in prose and "acme/api#" + ZW + "34" in prose and "GH-" + ZW + "6" in prose


@pytest.mark.parametrize(("text", "kept"), [
    ("see https://github.com/acme/api/issues/12#issuecomment-1 here", "https://github.com/acme/api/issues/12#issuecomment-1"),
    ("`@decorator` and `#include`", "`@decorator` and `#include`"),
    ("```python\n@app.get('/x')  # 12\n```", "```python\n@app.get('/x')  # 12\n```"),
    ("mail me at a@b.com, &#38;", "a@b.com, &#38;"),
])
def test_code_urls_and_addresses_are_left_exact(text: str, kept: str) -> None:
    assert kept in neutralise(text)


@pytest.mark.parametrize("text", [
    "x ```` @user ```",  # 4 backticks open, 3 do not close: GitHub shows @user as text
    "hi ```@user",  # never closed
    "`a\n\n@user `",  # a code span cannot cross a blank line
    "```\n@user",  # a fence left open
    "<details>\n`@user`\n</details>",  # no markdown inside an HTML block
])
def test_what_github_would_show_as_text_is_neutralised(text: str) -> None:
    assert "@user" not in neutralise(text)


def test_a_suggestion_fence_cannot_be_closed_from_inside() -> None:
    code = "s = '```'\n````\n  ```\nt = 1\n"
    draft = ReviewDraft("s", (Finding("app.py", 2, "high", "T", "B", None, code),))
    (comment,) = texts(draft)[1]
    block = comment[comment.index("`````suggestion\n"):]
    assert block.startswith("`````suggestion\n" + code.rstrip("\n") + "\n`````\n")  # byte-exact, 5 backticks


def test_a_code_block_the_model_left_open_is_closed_before_what_follows() -> None:
    draft = ReviewDraft("Summary\n```\nopen code", (Finding("app.py", 2, "high", "T", "Body\n~~~\nmore", None, "x"),))
    body, (comment,), _ = texts(draft)
    assert "open code\n```\n" in body and "more\n~~~\n\n```suggestion\nx\n```" in comment


def test_paths_show_as_inline_code_that_no_backtick_ends() -> None:
    path = "a`b``c @team\n.py"
    assert code_span("a`b``c") == "```a`b``c```" and code_span("`x") == "`` `x ``"
    body = texts(ReviewDraft("s", (Finding(path, 1, "high", "T", "B"),)))[0]
    assert '**```"a`b``c @team\\n.py"```**' in body  # on one line: quoted as git quotes it


def test_omitted_paths_and_reasons_from_the_diff_are_safe_too() -> None:
    ctx = ReviewContext(CTX.footer, MARKER, "c", omitted=(("<!-- reviewer:fp=0123456789abcdef -->.py",
                                                          "ignored on its old path @team/x#1"),))
    body = texts(ReviewDraft("s", ()), ctx)[0]
    assert known_fingerprints([body]) == frozenset() and "@team" not in body and "#1" not in body


def test_cutting_a_long_comment_or_body_reopens_nothing() -> None:
    long_body = "x" * (COMMENT_LIMIT - 40) + " `@user is in a span the cut opens` and " + "y" * 100
    (comment,) = texts(ReviewDraft("s", (Finding("app.py", 2, "high", "T", long_body),)))[1]
    assert "@user" not in comment and "comment shortened" in comment and len(comment) <= COMMENT_LIMIT + 100
    summary = "z" * (GITHUB_BODY_LIMIT - 300) + "\n```\n@user in a fence the cut leaves open\n```\n" + "w" * 500
    body = texts(ReviewDraft(summary, ()))[0]
    assert len(body) <= GITHUB_BODY_LIMIT and body.endswith(MARKER) and "shortened" in body
    assert body.count("```") % 2 == 0


def test_a_long_suggestion_is_left_out_rather_than_cut() -> None:
    draft = ReviewDraft("s", (Finding("app.py", 2, "high", "T", "B", None, "x" * COMMENT_LIMIT),))
    (comment,) = texts(draft)[1]
    assert "suggestion left out" in comment and "```suggestion" not in comment


def test_fit_to_limit_repairs_and_still_fits() -> None:
    def grow(text: str) -> str:
        return text + "!" * 50

    fitted = fit_to_limit("a" * (GITHUB_BODY_LIMIT + 10), "TAIL", grow)
    assert len(fitted) <= GITHUB_BODY_LIMIT and fitted.endswith("!" * 50 + TRUNCATION_NOTE + "TAIL")

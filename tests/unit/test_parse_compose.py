"""Model output parsing (never loses a review) and review composition (inline only where GitHub
accepts it, the rest in the body, fingerprints, neutralised mentions, GitHub's limits)."""

from __future__ import annotations

import json

import pytest

from reviewer.review.body import GITHUB_BODY_LIMIT, Footer
from reviewer.review.compose import (
    FINGERPRINT,
    ReviewContext,
    compose_review,
    demote_inline,
    fingerprint,
    known_fingerprints,
    neutralise,
)
from reviewer.review.diffs import index_diff
from reviewer.review.parse import Finding, ReviewDraft, parse_review
from tests.unit.test_diffs_render import DIFF

CTX = ReviewContext(Footer("claude-opus-4-7", 1000, 2000, "a" * 40), "<!-- reviewer:job=1 head=x -->",
                    "config: reviewer.yml")
INDEX = index_diff(DIFF)


def tool(payload: object) -> str:
    return json.dumps([{"type": "tool_use", "id": "toolu_1", "name": "report_review", "input": payload}])


def test_parse_tool_answer_orders_by_severity_and_keeps_bad_findings_as_text() -> None:
    draft = parse_review(tool({"summary": "Risky.", "findings": [
        {"path": "app.py", "line": 3, "severity": "low", "title": "Nit", "body": "b"},
        {"path": "b/app.py", "line": 2, "severity": "CRITICAL", "title": "Bad", "body": "b", "start_line": 1},
        {"path": "app.py", "line": "two", "severity": "high", "title": "No line", "body": "b"},
        {"line": 4, "title": "No path", "body": "x"},
    ]}), "tool_use")
    assert [f.title for f in draft.findings] == ["Bad", "Nit"]
    assert draft.findings[0].path == "app.py" and draft.findings[0].start_line == 1
    assert len(draft.dropped) == 2 and "2 finding(s)" in (draft.problem or "")


@pytest.mark.parametrize("content,stop,text,words", [
    (json.dumps([{"type": "text", "text": "Free text review"}]), "end_turn", None, "free text"),
    (json.dumps([{"type": "text", "text": '{"summary": "cut'}]), "max_tokens", None, "max_tokens"),
    ("not json", "end_turn", "fallback text", "free text"),
    (tool({"summary": "s"}), "tool_use", None, "no list of findings"),
    (tool(["not", "an", "object"]), "tool_use", None, "not an object"),
])
def test_malformed_answers_still_give_a_summary(content: str, stop: str, text: str | None, words: str) -> None:
    draft = parse_review(content, stop, text)
    assert draft.problem is not None and words in draft.problem
    composed = compose_review(draft, INDEX, CTX)
    assert "Note:" in composed.body and composed.comments == ()


def test_json_output_format_is_accepted() -> None:
    content = json.dumps([{"type": "text", "text": json.dumps({"summary": "ok", "findings": []})}])
    assert parse_review(content, "end_turn") == ReviewDraft("ok", ())


def finding(line: int, start: int | None = None, suggestion: str | None = None, severity: str = "high",
            path: str = "app.py", title: str = "T") -> Finding:
    return Finding(path, line, severity, title, "Body @alice see #12", start, suggestion)


def test_inline_only_on_diff_lines_and_the_rest_outside() -> None:
    draft = ReviewDraft("Sum", (finding(2), finding(3, 2, "x = 3\ny = 4"), finding(8), finding(12, 3, "z"),
                                finding(1, path="missing.py")))
    composed = compose_review(draft, INDEX, CTX)
    assert [(c.path, c.line, c.start_line) for c in composed.comments] == [("app.py", 2, None), ("app.py", 3, 2)]
    assert "```suggestion\nx = 3\ny = 4\n```" in composed.comments[1].body
    assert composed.outside == 3 and "### Outside the diff (3)" in composed.body
    assert "line 8 is not in the diff" in composed.body and "`missing.py`" in composed.body
    assert composed.comments[0].as_github() == {"path": "app.py", "line": 2, "side": "RIGHT",
                                                "body": composed.comments[0].body}


def test_range_across_hunks_without_suggestion_is_kept_inline_on_its_last_line() -> None:
    composed = compose_review(ReviewDraft("s", (finding(12, 3),)), INDEX, CTX)
    assert [(c.line, c.start_line) for c in composed.comments] == [(12, None)]


def test_cap_on_inline_comments_and_threshold() -> None:
    draft = ReviewDraft("s", (finding(2, severity="high"), finding(3, severity="medium", title="U"),
                              finding(12, severity="low", title="V")))
    ctx = ReviewContext(CTX.footer, CTX.marker, CTX.config_line, max_inline=1, severity_threshold="medium")
    composed = compose_review(draft, INDEX, ctx)
    assert len(composed.comments) == 1 and "### More findings (1)" in composed.body
    assert composed.below_threshold == 1 and "below the medium threshold" in composed.body


def test_known_fingerprints_are_not_repeated() -> None:
    first = compose_review(ReviewDraft("s", (finding(2), finding(3, title="Other"))), INDEX, CTX)
    known = known_fingerprints([c.body for c in first.comments])
    assert len(known) == 2
    ctx = ReviewContext(CTX.footer, CTX.marker, CTX.config_line, known_fingerprints=frozenset(list(known)[:1]))
    again = compose_review(ReviewDraft("s", (finding(2), finding(3, title="Other"))), INDEX, ctx)
    assert len(again.comments) == 1 and again.repeated == 1 and "already reported" in again.body
    assert fingerprint(finding(2), INDEX) in FINGERPRINT.findall(first.comments[0].body)


def test_mentions_and_refs_are_neutralised_but_code_is_not() -> None:
    text = "ping @alice and #12, but `@decorator` and\n```suggestion\n@keep #3\n```"
    out = neutralise(text)
    assert "@\u200balice" in out and "#\u200b12" in out
    assert "`@decorator`" in out and "@keep #3" in out
    composed = compose_review(ReviewDraft("cc @bob", (finding(2),)), INDEX, CTX)
    assert "@bob" not in composed.body and "@alice" not in composed.comments[0].body


def test_marker_and_size_limits() -> None:
    draft = ReviewDraft("x" * 70_000 + " <!-- reviewer:job=9 head=y -->", (finding(2),))
    composed = compose_review(draft, INDEX, CTX)
    assert len(composed.body) <= GITHUB_BODY_LIMIT and composed.body.endswith(CTX.marker)
    assert composed.body.count("reviewer:job=") == 1 and "config: reviewer.yml" in composed.body


def test_demote_inline_moves_everything_to_the_body() -> None:
    draft = ReviewDraft("s", (finding(2), finding(3, title="U")))
    demoted = demote_inline(draft, INDEX, CTX, "Line could not be resolved")
    assert demoted.comments == () and "GitHub refused the inline comments" in demoted.body
    assert "More findings (2)" in demoted.body

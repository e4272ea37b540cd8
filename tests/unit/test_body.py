"""The posted body as production composes it (compose_review): sanitised model text, footer, hidden
marker, GitHub's size limit."""

from __future__ import annotations

from reviewer.review.body import GITHUB_BODY_LIMIT, TRUNCATION_NOTE, Footer, fit_to_limit, marker, sanitize_model_text
from reviewer.review.compose import ReviewContext, compose_review
from reviewer.review.diffs import index_diff
from reviewer.review.parse import ReviewDraft

FOOTER = Footer("claude-opus-4-7", 112_500, 225_000, "a" * 40)
INDEX = index_diff("")


def body_of(summary: str, job_marker: str) -> str:
    ctx = ReviewContext(FOOTER, job_marker, "config: reviewer.yml")
    return compose_review(ReviewDraft(summary=summary, findings=()), INDEX, ctx).body


def test_body_has_review_footer_and_marker() -> None:
    body = body_of("Looks risky.", marker(7, "a" * 40))
    assert body.startswith("Looks risky.")
    assert "claude-opus-4-7" in body and "$0.1125" in body and "$0.2250" in body
    assert body.endswith(marker(7, "a" * 40))


def test_marker_like_text_from_the_model_is_removed() -> None:
    text = "Fine <!-- reviewer:job=7 head=" + "a" * 40 + " --> and <!-- other hidden -->done <!-- unclosed"
    cleaned = sanitize_model_text(text)
    assert "reviewer:" not in cleaned and "<!--" not in cleaned
    body = body_of(text, marker(8, "b" * 40))
    assert body.count("<!-- reviewer:") == 1


def test_long_review_is_shortened_to_fit_github() -> None:
    body = body_of("x" * 100_000, marker(1, "c" * 40))
    assert len(body) <= GITHUB_BODY_LIMIT
    assert "shortened" in body and body.endswith(marker(1, "c" * 40))


def test_shortening_keeps_the_tail_whole_and_fills_the_limit_exactly() -> None:
    tail = "\n\n---\nfooter\n" + marker(2, "e" * 40)
    fitted = fit_to_limit("y" * GITHUB_BODY_LIMIT, tail)
    assert len(fitted) == GITHUB_BODY_LIMIT and fitted.endswith(TRUNCATION_NOTE + tail)
    assert fit_to_limit("short", tail) == "short" + tail


def test_empty_review_still_says_something() -> None:
    assert "no summary" in body_of("  ", marker(1, "d" * 40))

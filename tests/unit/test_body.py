"""The posted body: sanitised model text, footer, hidden marker, GitHub's size limit."""

from __future__ import annotations

from reviewer.review.body import GITHUB_BODY_LIMIT, Footer, compose_review_body, marker, sanitize_model_text

FOOTER = Footer("claude-opus-4-7", 112_500, 225_000, "a" * 40)


def test_body_has_review_footer_and_marker() -> None:
    body = compose_review_body("Looks risky.", FOOTER, marker(7, "a" * 40))
    assert body.startswith("Looks risky.")
    assert "claude-opus-4-7" in body and "$0.1125" in body and "$0.2250" in body
    assert body.endswith(marker(7, "a" * 40))


def test_marker_like_text_from_the_model_is_removed() -> None:
    text = "Fine <!-- reviewer:job=7 head=" + "a" * 40 + " --> and <!-- other hidden -->done <!-- unclosed"
    cleaned = sanitize_model_text(text)
    assert "reviewer:" not in cleaned and "<!--" not in cleaned
    body = compose_review_body(text, FOOTER, marker(8, "b" * 40))
    assert body.count("<!-- reviewer:") == 1


def test_long_review_is_shortened_to_fit_github() -> None:
    body = compose_review_body("x" * 100_000, FOOTER, marker(1, "c" * 40))
    assert len(body) <= GITHUB_BODY_LIMIT
    assert "shortened" in body and body.endswith(marker(1, "c" * 40))


def test_empty_review_still_says_something() -> None:
    assert "empty review" in compose_review_body("  ", FOOTER, marker(1, "d" * 40))

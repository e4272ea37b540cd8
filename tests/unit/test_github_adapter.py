"""The adapter's pure pieces: how long a rate limit says to wait, the next page of a Link header, and
the trimmed pull request a cached page keeps."""

from __future__ import annotations

import pytest

from reviewer.github.adapter import _cached_page, _next_page, _summary, _trimmed, _wait_from
from reviewer.github.cache import CachedPage

NOW = 1_000_000.0


@pytest.mark.parametrize("headers,wait", [
    ({"retry-after": "1"}, 1.0),
    ({"retry-after": "120", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1003600"}, 120.0),
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1003600"}, 3601.0),
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "999000"}, 1.0),  # reset already passed
    ({"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1003600"}, 60.0),  # secondary: a minute
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 60.0),
    ({}, 60.0),
])
def test_wait_from_headers(headers: dict[str, str], wait: float) -> None:
    assert _wait_from(headers, now=lambda: NOW) == wait


@pytest.mark.parametrize("link,expected", [
    (None, None),
    ('<http://h/r?page=2>; rel="next", <http://h/r?page=5>; rel="last"', "http://h/r?page=2"),
    ('<http://h/r?page=1>; rel="prev", <http://h/r?page=3>; rel="next"', "http://h/r?page=3"),
    ('<http://h/r?page=1>; rel="first", <http://h/r?page=4>; rel="prev"', None),
])
def test_next_page(link: str | None, expected: str | None) -> None:
    assert _next_page(link) == expected


def test_a_trimmed_pull_request_summarises_like_the_full_one() -> None:
    full = {
        "number": 7, "title": "Fix", "state": "open", "draft": True, "body": None,
        "html_url": "https://github.com/a/b/pull/7", "user": {"login": "dependabot[bot]", "type": "Bot", "id": 1},
        "head": {"sha": "h" * 40, "ref": "fix", "repo": {"id": 3}}, "base": {"sha": "b" * 40, "ref": "main"},
        "labels": [{"name": "deps", "color": "fff"}], "milestone": None, "_links": {},
    }
    assert _summary(_trimmed(full)) == _summary(full)
    summary = _summary(full)
    assert (summary.author, summary.author_type, summary.draft, summary.labels) == (
        "dependabot[bot]", "Bot", True, ("deps",))


def test_an_unreadable_cached_page_is_ignored() -> None:
    assert _cached_page(CachedPage('"e"', '{"items": [], "next": null}')) == ('"e"', [], None)
    assert _cached_page(CachedPage('"e"', "[1, 2]")) is None
    assert _cached_page(CachedPage('"e"', "not json")) is None
    assert _cached_page(None) is None

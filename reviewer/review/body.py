"""The text of a posted review, pure: the model's review made safe to post, a short footer (model,
what this review cost, what the standard API would have charged), and a hidden marker that names the
job, so posting can look itself up and never post the same review twice.

Anyone can type a marker into a comment, so only reviews by the service's own identity count (see
github.py), and marker-like text in the model's output is removed before posting: from prose every HTML
comment goes and any `<!--` left is broken, so no marker or fingerprint can survive, however nested; code
(a suggestion) loses only our markers and keeps every other byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from reviewer.cost import format_usd

GITHUB_BODY_LIMIT = 65_536
MARKER_PREFIX = "<!-- reviewer:"
_MARKER = re.compile(r"<!--\s*reviewer:[^>]*-->", re.IGNORECASE)
_HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_MARKER_OPENER = re.compile(r"<!--(?=\s*reviewer:)", re.IGNORECASE)
BROKEN_OPENER = "<!\u200b--"  # shows as `<!--`, opens no comment, matches no marker
TRUNCATION_NOTE = "\n\n*(review shortened to fit GitHub's size limit)*"


@dataclass(frozen=True)
class Footer:
    model: str
    cost_micro_usd: int
    standard_cost_micro_usd: int
    head_sha: str
    batch: bool = True


def marker(job_id: int, head_sha: str) -> str:
    return f"{MARKER_PREFIX}job={job_id} head={head_sha} -->"


def sanitize_model_text(text: str) -> str:
    """Remove HTML comments (and so anything that looks like our marker or a fingerprint) from the model's
    prose; an opener that removing them put together (`<!<!---->--`) is broken."""
    return _HTML_COMMENT.sub("", _MARKER.sub("", text)).replace("<!--", BROKEN_OPENER).strip()


def strip_markers(code: str) -> str:
    """Code from the model (a suggestion) without our markers and fingerprints (the opener of one left
    unclosed is broken); every other byte is kept."""
    return _MARKER_OPENER.sub(BROKEN_OPENER, _MARKER.sub("", code))


def footer_line(footer: Footer) -> str:
    mode = "batch" if footer.batch else "standard API"
    cost = format_usd(footer.cost_micro_usd, 4)
    standard = format_usd(footer.standard_cost_micro_usd, 4)
    return (f"<sub>Automated review by reviewer · {footer.model} · reviewed commit {footer.head_sha[:7]} · "
            f"cost {cost} ({mode}; the standard API would have charged {standard})</sub>")


def shorten(text: str, limit: int, note: str, repair: Callable[[str], str] = str) -> str:
    """`text` if it has at most `limit` characters, else a prefix of it mended by `repair` (which closes
    what the cut left open, and may lengthen it) plus `note`: `limit` characters at most."""
    room = limit - len(note)
    keep = room
    while len(text) > limit:
        cut = repair(text[:keep].rstrip())
        if len(cut) <= room:
            return cut + note
        keep = max(keep - (len(cut) - room), 0)
    return text


def fit_to_limit(text: str, tail: str, repair: Callable[[str], str] = str) -> str:
    """`text` + `tail` (footer and marker, never cut), `text` shortened with a note if the whole would pass
    GitHub's 65,536 characters."""
    return shorten(text, GITHUB_BODY_LIMIT - len(tail), TRUNCATION_NOTE, repair) + tail

"""Compose the review to post, pure: a parsed draft plus the diff's index become a review body and
inline comments that GitHub will accept.

- A finding becomes an inline comment only where GitHub takes one: a RIGHT-side line of a hunk, and a
  range within one hunk. Everything else goes into the body under "Outside the diff", under its file
  and line; nothing is dropped.
- At most `max_inline` inline comments; the rest go into the body, most severe first.
- Each finding carries a hidden fingerprint (file, the text of its line, its title); a finding whose
  fingerprint is already on the pull request is not repeated.
- Every string from the model (summary, path, title, body, suggestion, dropped text) is untrusted, and
  so is every path of the diff (the pull request's author named the files): hidden markers and
  fingerprints are stripped from all of them; `@name`, `#123`, `owner/repo#123` and `GH-123` are
  neutralised outside closed fenced code blocks, one-line code spans and URLs (full issue URLs stay
  links); a code block left open is closed, also where a cut opened one, so it swallows nothing after it;
  a path shows as one line of inline code no backtick can end; a suggestion is fenced by more backticks
  than its longest run, and is byte-exact but for our markers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

from reviewer.review.body import (
    BROKEN_OPENER,
    GITHUB_BODY_LIMIT,
    Footer,
    fit_to_limit,
    footer_line,
    sanitize_model_text,
    shorten,
    strip_markers,
)
from reviewer.review.diffs import DiffIndex, anchor_range
from reviewer.review.parse import SEVERITIES, Finding, ReviewDraft
from reviewer.review.paths import shown

FINGERPRINT = re.compile(r"<!--\s*reviewer:fp=([0-9a-f]{8,64})\s*-->")
# @user and @org/team (not an e-mail address), #12 and owner/repo#12 (not an &#38; entity), GH-12
_REFERENCE = re.compile(r"(?<!\w)@(?=[A-Za-z0-9])|(?<!&)#(?=[A-Za-z0-9])|\bGH-(?=\d)", re.IGNORECASE)
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SPAN_OR_URL = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)|https?://[^\s<>()\[\]`]+")  # within one line
_HTML_BLOCK = re.compile(r"^ {0,3}<[A-Za-z!?/]", re.MULTILINE)  # GitHub reads no markdown in it
_BACKTICKS = re.compile(r"`+")
ZERO_WIDTH = "\u200b"
COMMENT_LIMIT = GITHUB_BODY_LIMIT - 500
MAX_PATH_SHOWN = 300
SHORTENED_NOTE = "\n\n*(comment shortened)*"
UNLISTED_NOTE = "GitHub did not list them (it lists at most 3,000 files of a pull request)"


@dataclass(frozen=True)
class InlineComment:
    path: str
    line: int
    start_line: int | None
    body: str

    def as_github(self) -> dict[str, object]:
        comment: dict[str, object] = {"path": self.path, "line": self.line, "side": "RIGHT", "body": self.body}
        if self.start_line is not None:
            comment.update(start_line=self.start_line, start_side="RIGHT")
        return comment


@dataclass(frozen=True)
class ReviewContext:
    footer: Footer
    marker: str
    config_line: str
    max_inline: int = 30
    severity_threshold: str = "low"
    known_fingerprints: frozenset[str] = frozenset()
    omitted: tuple[tuple[str, str], ...] = ()  # (path, reason) of files the model did not see
    unlisted: int = 0  # files of the pull request that GitHub did not list (over its 3,000), so not seen
    since_sha: str | None = None  # incremental review: changes since this commit


@dataclass(frozen=True)
class ComposedReview:
    body: str
    comments: tuple[InlineComment, ...]
    outside: int
    repeated: int
    below_threshold: int
    notes: tuple[str, ...] = field(default=())


def neutralise(text: str) -> str:
    """Break @mentions and issue references in prose so a review cannot ping people or link issues; closed
    fenced code blocks, code spans and URLs are left exact (all of it is prose inside an HTML block)."""
    if _HTML_BLOCK.search(text):
        return _REFERENCE.sub(_broken, text)
    lines = text.split("\n")
    code = {number for block in _fences(lines)[0] for number in block}
    return "\n".join(line if number in code else _neutralise_line(line) for number, line in enumerate(lines))


def _neutralise_line(line: str) -> str:
    parts, at = [], 0
    for kept in _SPAN_OR_URL.finditer(line):
        parts += [_REFERENCE.sub(_broken, line[at:kept.start()]), kept.group(0)]
        at = kept.end()
    return "".join([*parts, _REFERENCE.sub(_broken, line[at:])])


def _broken(match: re.Match[str]) -> str:
    return match.group(0) + ZERO_WIDTH


def _fences(lines: list[str]) -> tuple[list[range], str | None]:
    """The closed fenced code blocks of `lines` (line ranges, fence lines included), and the fence of a
    block left open at the end (None when none is)."""
    closed: list[range] = []
    start, fence = -1, ""
    for number, line in enumerate(lines):
        found = _FENCE_LINE.match(line)
        if found is None:
            continue
        run, rest = found.groups()
        if start < 0 and not (run[0] == "`" and "`" in rest):
            start, fence = number, run
        elif start >= 0 and run[0] == fence[0] and len(run) >= len(fence) and not rest.strip():
            closed.append(range(start, number + 1))
            start = -1
    return closed, fence if start >= 0 else None


def _close_fence(text: str) -> str:
    """`text` with a fenced code block it leaves open closed at its end."""
    left_open = _fences(text.split("\n"))[1]
    return text if left_open is None else f"{text}\n{left_open}"


def _repair(text: str) -> str:
    """What a cut leaves made safe again: the code block it opened closed, a code span it opened read as
    prose."""
    return neutralise(_close_fence(text))


def _prose(text: str) -> str:
    """Model text of several lines, safe to post."""
    return _repair(sanitize_model_text(text))


def _line(text: str) -> str:
    """Model text on one line (a title, a list entry), safe to post."""
    return neutralise(sanitize_model_text(text).replace("\r", " ").replace("\n", " "))


def code_span(text: str) -> str:
    """`text` as inline code that no backtick inside can end: fenced by a longer run of backticks."""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _path_span(path: str) -> str:
    """A path (the model's, or one the pull request's author chose) as one line of inline code."""
    return code_span(shown(path)[:MAX_PATH_SHOWN].replace("<!--", BROKEN_OPENER))


def _suggestion_block(code: str) -> str:
    text = strip_markers(code).rstrip("\n")
    fence = "`" * max(3, max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    return f"\n\n{fence}suggestion\n{text}\n{fence}"


def fingerprint(finding: Finding, index: DiffIndex) -> str:
    place = index.line(finding.path, finding.line)
    where = place.text.strip() if place else str(finding.line)
    key = f"{finding.path}\n{where}\n{finding.title.strip().lower()}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def known_fingerprints(bodies: list[str]) -> frozenset[str]:
    return frozenset(fp for body in bodies for fp in FINGERPRINT.findall(body))


def _fp_marker(fp: str) -> str:
    return f"<!-- reviewer:fp={fp} -->"


def _inline_body(finding: Finding, fp: str) -> str:
    text = f"**{finding.severity.capitalize()}: {_line(finding.title)}**\n\n{_prose(finding.body)}"
    text = shorten(text, COMMENT_LIMIT, SHORTENED_NOTE, _repair)
    if finding.suggestion is not None:
        block = _suggestion_block(finding.suggestion)
        text += block if len(text) + len(block) <= COMMENT_LIMIT else "\n\n*(suggestion left out: too long)*"
    return f"{text}\n{_fp_marker(fp)}"


def _summary_entry(finding: Finding, fp: str, why: str | None = None) -> str:
    where = f"line {finding.start_line}-{finding.line}" if finding.start_line else f"line {finding.line}"
    note = f" _({why})_" if why else ""
    return f"- {where} ({finding.severity}) **{_line(finding.title)}**: {_line(finding.body)}{note} {_fp_marker(fp)}"


def _grouped(entries: list[tuple[Finding, str]]) -> list[str]:
    lines: list[str] = []
    for path in dict.fromkeys(f.path for f, _ in entries):
        lines.append(f"\n**{_path_span(path)}**")
        lines += [entry for f, entry in entries if f.path == path]
    return lines


def compose_review(draft: ReviewDraft, index: DiffIndex, ctx: ReviewContext) -> ComposedReview:
    threshold = SEVERITIES.index(ctx.severity_threshold)
    kept = [f for f in draft.findings if f.rank <= threshold]
    inline: list[InlineComment] = []
    outside: list[tuple[Finding, str]] = []
    overflow: list[tuple[Finding, str]] = []
    repeated = 0
    for finding in kept:
        fp = fingerprint(finding, index)
        if fp in ctx.known_fingerprints:
            repeated += 1
            continue
        why = anchor_range(index, finding.path, finding.line, finding.start_line)
        single_line_fits = anchor_range(index, finding.path, finding.line, None) is None
        if why is not None and finding.start_line is not None and finding.suggestion is None and single_line_fits:
            finding, why = replace(finding, start_line=None), None  # keep it inline on its last line
        if why is not None:
            outside.append((finding, _summary_entry(finding, fp, why)))
        elif len(inline) < ctx.max_inline:
            inline.append(InlineComment(finding.path, finding.line, finding.start_line, _inline_body(finding, fp)))
        else:
            overflow.append((finding, _summary_entry(finding, fp)))
    body = _body(draft, ctx, len(inline), outside, overflow, repeated, len(draft.findings) - len(kept))
    return ComposedReview(body, tuple(inline), len(outside), repeated, len(draft.findings) - len(kept))


def _body(draft: ReviewDraft, ctx: ReviewContext, inline: int, outside: list[tuple[Finding, str]],
          overflow: list[tuple[Finding, str]], repeated: int, below: int) -> str:
    parts = [_prose(draft.summary) or "_The model wrote no summary._"]
    if ctx.since_sha:
        parts.append(f"_Re-review of the changes since {ctx.since_sha[:7]}._")
    counts = [f"{inline} inline"] if inline else []
    counts += [f"{len(outside)} outside the diff"] if outside else []
    counts += [f"{len(overflow)} more below"] if overflow else []
    counts += [f"{repeated} already reported and not repeated"] if repeated else []
    counts += [f"{below} below the {ctx.severity_threshold} threshold left out"] if below else []
    if counts:
        parts.append("Findings: " + ", ".join(counts) + ".")
    if draft.problem:
        parts.append(f"> **Note:** {draft.problem}; the review is posted as the model wrote it.")
    if outside:
        parts.append(f"### Outside the diff ({len(outside)})\n" + "\n".join(_grouped(outside)).lstrip())
    if overflow:
        parts.append(f"### More findings ({len(overflow)})\n" + "\n".join(_grouped(overflow)).lstrip())
    if draft.dropped:
        parts.append("### Findings that could not be placed\n"
                     + "\n".join(f"- {_line(d)}" for d in draft.dropped))
    if ctx.omitted or ctx.unlisted:
        parts.append(_not_reviewed(ctx))
    tail = f"\n\n---\n<sub>{ctx.config_line}</sub>\n{footer_line(ctx.footer)}\n{ctx.marker}"
    return fit_to_limit("\n\n".join(parts), tail, _repair)


def _not_reviewed(ctx: ReviewContext) -> str:
    """The files the model did not see; the ones GitHub did not list come first (a long list is cut)."""
    noun = "file" if ctx.unlisted == 1 else "files"
    lines = [f"- {ctx.unlisted:,} more {noun}: {UNLISTED_NOTE}"] if ctx.unlisted else []
    lines += [f"- {_path_span(path)}: {_line(reason)}" for path, reason in ctx.omitted]
    return f"### Not reviewed ({len(ctx.omitted) + ctx.unlisted:,} files)\n" + "\n".join(lines)


def demote_inline(draft: ReviewDraft, index: DiffIndex, ctx: ReviewContext, why: str) -> ComposedReview:
    """The same review with every finding in the body (after GitHub refused the inline comments)."""
    no_inline = replace(ctx, max_inline=0)
    composed = compose_review(draft, index, no_inline)
    note = f"> **Note:** GitHub refused the inline comments ({why}); they are listed here instead.\n\n"
    return replace(composed, body=note + composed.body, notes=(why,))

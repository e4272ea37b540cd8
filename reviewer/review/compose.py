"""Compose the review to post, pure: a parsed draft plus the diff's index become a review body and
inline comments that GitHub will accept.

- A finding becomes an inline comment only where GitHub takes one: a RIGHT-side line of a hunk, and a
  range within one hunk. Everything else goes into the body under "Outside the diff", under its file
  and line; nothing is dropped.
- At most `max_inline` inline comments; the rest go into the body, most severe first.
- Each finding carries a hidden fingerprint (file, the text of its line, its title); a finding whose
  fingerprint is already on the pull request is not repeated.
- Text from the model cannot ping people or link issues: `@name` and `#123` are neutralised outside
  code; suggestion blocks are left byte-exact.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

from reviewer.review.body import GITHUB_BODY_LIMIT, Footer, fit_to_limit, footer_line, sanitize_model_text
from reviewer.review.diffs import DiffIndex, anchor_range
from reviewer.review.parse import SEVERITIES, Finding, ReviewDraft

FINGERPRINT = re.compile(r"<!--\s*reviewer:fp=([0-9a-f]{8,64})\s*-->")
_MENTION = re.compile(r"(?<![\w`])([@#])(?=[A-Za-z0-9])")
_FENCE = re.compile(r"(```.*?(?:```|$)|`[^`\n]*`)", re.DOTALL)
ZERO_WIDTH = "\u200b"
COMMENT_LIMIT = GITHUB_BODY_LIMIT - 500


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
    """Break @mentions and #references in prose so a review cannot ping people or link issues."""
    parts = _FENCE.split(text)
    return "".join(part if i % 2 else _MENTION.sub(lambda m: m.group(1) + ZERO_WIDTH, part)
                   for i, part in enumerate(parts))


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
    text = f"**{finding.severity.capitalize()}: {neutralise(sanitize_model_text(finding.title))}**\n\n"
    text += neutralise(sanitize_model_text(finding.body))
    if finding.suggestion is not None:
        text += f"\n\n```suggestion\n{finding.suggestion.rstrip(chr(10))}\n```"
    if len(text) > COMMENT_LIMIT:
        text = text[:COMMENT_LIMIT] + "\n\n*(comment shortened)*"
    return f"{text}\n{_fp_marker(fp)}"


def _summary_entry(finding: Finding, fp: str, why: str | None = None) -> str:
    where = f"line {finding.start_line}-{finding.line}" if finding.start_line else f"line {finding.line}"
    note = f" _({why})_" if why else ""
    body = neutralise(sanitize_model_text(finding.body)).replace("\n", " ")
    return (f"- {where} ({finding.severity}) **{neutralise(sanitize_model_text(finding.title))}**: "
            f"{body}{note} {_fp_marker(fp)}")


def _grouped(entries: list[tuple[Finding, str]]) -> list[str]:
    lines: list[str] = []
    for path in dict.fromkeys(f.path for f, _ in entries):
        lines.append(f"\n**`{path}`**")
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
        if why is not None and finding.start_line is not None and finding.suggestion is None:
            if anchor_range(index, finding.path, finding.line, None) is None:  # keep it inline on its last line
                finding, why = replace(finding, start_line=None), None
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
    parts = [neutralise(sanitize_model_text(draft.summary)) or "_The model wrote no summary._"]
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
                     + "\n".join(f"- {neutralise(sanitize_model_text(d))}" for d in draft.dropped))
    if ctx.omitted:
        parts.append(f"### Not reviewed ({len(ctx.omitted)} files)\n"
                     + "\n".join(f"- `{path}`: {reason}" for path, reason in ctx.omitted))
    tail = f"\n\n---\n<sub>{ctx.config_line}</sub>\n{footer_line(ctx.footer)}\n{ctx.marker}"
    return fit_to_limit("\n\n".join(parts), tail)


def demote_inline(draft: ReviewDraft, index: DiffIndex, ctx: ReviewContext, why: str) -> ComposedReview:
    """The same review with every finding in the body (after GitHub refused the inline comments)."""
    no_inline = replace(ctx, max_inline=0)
    composed = compose_review(draft, index, no_inline)
    note = f"> **Note:** GitHub refused the inline comments ({why}); they are listed here instead.\n\n"
    return replace(composed, body=note + composed.body, notes=(why,))

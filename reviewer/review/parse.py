"""Model output, pure: the stored content of a succeeded result becomes a `ReviewDraft` (summary plus
validated findings). Parsing is strict, but a review is never lost to it: a malformed or truncated
answer still yields a summary-only draft with whatever text the model wrote, and says why.

The request forces the `report_review` tool (REVIEW_TOOL), whose input is the structured review.
Every string in a draft is the model's and untrusted: compose.py makes each one safe before it is posted.
A finding's path is normalised to a real path (`paths`): the prompt shows a name with a control character
in git's quoted form, and the model may copy that, or a `b/` prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reviewer.review.paths import unquote

SEVERITIES = ("critical", "high", "medium", "low")
TOOL_NAME = "report_review"

REVIEW_TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Report the code review: a short summary and the findings, most severe first.",
    "input_schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["summary", "findings"],
        "properties": {
            "summary": {"type": "string", "description": "Two or three sentences on the risk of this change."},
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["path", "line", "severity", "title", "body"],
                    "properties": {
                        "path": {"type": "string", "description": "File path as shown in the diff."},
                        "line": {"type": "integer", "description": "New-side line number (last line of a range)."},
                        "start_line": {"type": ["integer", "null"], "description": "First line of a range."},
                        "severity": {"type": "string", "enum": list(SEVERITIES)},
                        "title": {"type": "string", "description": "The defect in a few words."},
                        "body": {"type": "string", "description": "What goes wrong, when, and the fix."},
                        "suggestion": {"type": ["string", "null"],
                                       "description": "Replacement text for lines start_line..line, if simple."},
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    severity: str
    title: str
    body: str
    start_line: int | None = None
    suggestion: str | None = None

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


@dataclass(frozen=True)
class ReviewDraft:
    summary: str
    findings: tuple[Finding, ...]
    problem: str | None = None  # why the answer could not be fully parsed (posted as a note)
    dropped: tuple[str, ...] = ()  # findings that were not well-formed, as text, so nothing is lost


def _finding(raw: Any) -> Finding | str:
    if not isinstance(raw, dict):
        return f"not an object: {str(raw)[:200]}"
    path, line, severity = raw.get("path"), raw.get("line"), str(raw.get("severity", "")).lower()
    title, body = raw.get("title") or "", raw.get("body") or ""
    start, suggestion = raw.get("start_line"), raw.get("suggestion")
    if not isinstance(path, str) or not path.strip():
        return f"{title}: {body}".strip(": ") or "finding without a path"
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        return f"{path}: {title} {body}".strip()
    if isinstance(start, bool) or (start is not None and (not isinstance(start, int) or start < 1)):
        start = None
    if severity not in SEVERITIES:
        severity = "medium"
    return Finding(_real_path(path), line, severity, str(title).strip(),
                   str(body).strip(), start, suggestion if isinstance(suggestion, str) and suggestion else None)


def _real_path(raw: str) -> str:
    return unquote(raw.strip()).lstrip("/").removeprefix("b/")


def _from_input(data: Any, problem: str | None) -> ReviewDraft:
    if not isinstance(data, dict):
        return ReviewDraft(str(data), (), problem or "the structured answer is not an object")
    findings: list[Finding] = []
    dropped: list[str] = []
    raw_findings = data.get("findings")
    for raw in raw_findings if isinstance(raw_findings, list) else []:
        parsed = _finding(raw)
        (findings.append(parsed) if isinstance(parsed, Finding) else dropped.append(parsed))
    summary = data.get("summary")
    if not isinstance(summary, str):
        problem = problem or "the answer has no summary"
        summary = ""
    if not isinstance(raw_findings, list):
        problem = problem or "the answer has no list of findings"
    if dropped:
        problem = problem or f"{len(dropped)} finding(s) were not in the expected form (listed as text)"
    ordered = tuple(sorted(findings, key=lambda f: f.rank))
    return ReviewDraft(summary.strip(), ordered, problem, tuple(dropped))


def parse_review(content_json: str | None, stop_reason: str | None, text: str | None = None) -> ReviewDraft:
    """The stored message content of a succeeded result as a draft review."""
    truncated = "the answer was cut off at max_tokens" if stop_reason == "max_tokens" else None
    try:
        blocks = json.loads(content_json or "[]")
    except ValueError:
        blocks = []
    if not isinstance(blocks, list):
        blocks = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == TOOL_NAME:
            return _from_input(block.get("input"), truncated)
    texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    raw_text = "\n\n".join(t for t in texts if t) or (text or "")
    try:
        return _from_input(json.loads(raw_text), truncated)  # JSON output instead of a tool call
    except ValueError:
        pass
    problem = truncated or "the model answered in free text instead of the structured format"
    return ReviewDraft(raw_text.strip(), (), problem)

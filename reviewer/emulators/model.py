"""The fake model behind the Anthropic emulator: a deterministic reviewer of unified diffs.

`answer(params)` finds the unified diff in the user turns, runs a small rule set over the added lines and
answers in the shape the request asked for: a forced tool call (`tool_use`), a JSON text block
(`output_config.format` json_schema) or a markdown review. Invariants:

- Same params, same answer, byte for byte (ids are hashes of the diff), so demos and tests repeat.
- Line numbers are new-side numbers computed from the hunk headers. The prompt may number its lines too
  (`  42 + code`, `42: code`, removed lines with an empty column); that column is recognised and skipped,
  never trusted.
- About every third diff (by its hash) also gets one finding on a line outside every hunk, as real models
  sometimes do, so that the pipeline's anchoring of such findings is exercised.
- Output is about one token per 4 characters; an answer longer than `max_tokens` is cut and ends with
  stop_reason `max_tokens` (a cut tool call becomes a text block, which is what a consumer must reject).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
SEVERITIES = ("critical", "high", "medium", "low")
OFF_DIFF_EVERY = 3  # one diff in this many gets a finding outside every hunk
OFF_DIFF_DISTANCE = 40  # lines past the last hunk: surely not in the diff
CODE_SUFFIXES = (".py", ".js", ".jsx", ".ts", ".tsx", ".go", ".java", ".kt", ".rb", ".rs", ".c", ".cc", ".cpp", ".cs")
MAX_FINDINGS = 30
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

Block = dict[str, Any]


# diff parsing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "+", "-" or " "
    text: str
    new_line: int | None  # None for a removed line
    old_line: int | None  # None for an added line
    hunk: int  # lines of different hunks are not neighbours


@dataclass
class FileDiff:
    path: str
    lines: list[DiffLine]
    hunk_ranges: list[tuple[int, int]]  # new-side (first, last) of each hunk

    @property
    def added(self) -> list[DiffLine]:
        return [line for line in self.lines if line.kind == "+"]


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NUMBER_COLUMN = r"^[ \t]*(?:\d+[ \t]*[:|]?[ \t]*)?"
_GIT_HEADER = re.compile(_NUMBER_COLUMN + r"diff --git a/(\S+) b/(\S+)")
_NEW_PATH = re.compile(_NUMBER_COLUMN + r"\+\+\+ (?:b/)?([^\t]+?)\s*(?:\t.*)?$")
_OLD_PATH = re.compile(_NUMBER_COLUMN + r"--- (?:a/)?([^\t]+?)\s*(?:\t.*)?$")
# The prompt's own number column: one or two right-aligned numbers (new side, maybe old side first).
_NUMBER_PREFIX = re.compile(r"^[ \t]*\d+(?:[ \t]+\d+)?(?=[ \t:|]|$)")
_SEPARATOR = re.compile(r"[ \t]*[:|]?[ \t]*")
_BLANK_COLUMN_REMOVED = re.compile(r"^[ \t]*[:|]?[ \t]*-(.*)$")  # removed lines carry no new-side number


def parse_diff(text: str) -> list[FileDiff]:
    """Every file of every unified diff in `text`, in order of appearance (a path seen twice is merged)."""
    if "@@" not in text:
        return []  # no hunk header, no diff: the cheap answer for the 100,000-request benchmark
    lines = text.splitlines()
    files: dict[str, FileDiff] = {}
    current: str | None = None
    old_path: str | None = None
    hunk_id = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        hunk = _HUNK.search(line)
        if hunk is not None:
            path = current or old_path or "unknown"
            file = files.setdefault(path, FileDiff(path, [], []))
            hunk_id += 1
            i = _read_hunk(lines, i + 1, hunk, file, hunk_id)
            continue
        if (git := _GIT_HEADER.match(line)) is not None:
            current, old_path = git.group(2), git.group(1)
        elif (new := _NEW_PATH.match(line)) is not None:
            current = old_path if new.group(1) == "/dev/null" else new.group(1)
        elif (old := _OLD_PATH.match(line)) is not None and old.group(1) != "/dev/null":
            old_path = old.group(1)
        i += 1
    return list(files.values())


def _read_hunk(lines: list[str], start: int, header: re.Match[str], file: FileDiff, hunk_id: int) -> int:
    """Consumes the hunk's lines (counted from its header, so a `+++` inside it is code) and returns the
    index of the first line after it."""
    old_no, new_no = int(header.group(1)), int(header.group(3))
    old_left = int(header.group(2)) if header.group(2) is not None else 1
    new_left = int(header.group(4)) if header.group(4) is not None else 1
    window = lines[start : start + old_left + new_left + 2]
    separator = _separator(window) if _is_numbered(window, old_no, new_no) else None
    first_new = new_no
    i = start
    while (old_left > 0 or new_left > 0) and i < len(lines):
        decoded = _decode(lines[i]) if separator is None else _decode_numbered(lines[i], separator)
        if decoded is None:
            break  # the prompt cut the hunk short
        kind, content = decoded
        i += 1
        if kind == "\\":
            continue  # "\ No newline at end of file"
        if kind == "+":
            file.lines.append(DiffLine("+", content, new_no, None, hunk_id))
            new_no, new_left = new_no + 1, new_left - 1
        elif kind == "-":
            file.lines.append(DiffLine("-", content, None, old_no, hunk_id))
            old_no, old_left = old_no + 1, old_left - 1
        else:
            file.lines.append(DiffLine(" ", content, new_no, old_no, hunk_id))
            new_no, old_no, new_left, old_left = new_no + 1, old_no + 1, new_left - 1, old_left - 1
    if new_no > first_new:
        file.hunk_ranges.append((first_new, new_no - 1))
    return i


def _is_numbered(window: list[str], old_start: int, new_start: int) -> bool:
    """True when the hunk's lines carry a number column: the first number shown is where the hunk starts.
    Lines without a number (removed lines) are skipped while deciding."""
    for line in window:
        match = _NUMBER_PREFIX.match(line)
        if match is not None:
            numbers = {int(n) for n in match.group(0).split()}
            return old_start in numbers or new_start in numbers
    return False


def _separator(window: list[str]) -> str:
    """What stands between the number column and the diff marker (" ", "  ", " | ", ": ", "\\t"...): the
    shortest lead before a `+`/`-` marker, else the shortest lead of a context line minus its marker."""
    marked: list[str] = []
    context: list[str] = []
    for line in window:
        match = _NUMBER_PREFIX.match(line)
        if match is None:
            continue
        rest = line[match.end() :]
        lead = _SEPARATOR.match(rest)
        assert lead is not None  # the pattern matches the empty string
        after = rest[lead.end() : lead.end() + 1]
        if after in ("+", "-"):
            marked.append(lead.group(0))
        elif after:
            context.append(lead.group(0))
    if marked:
        return min(marked, key=len)
    return min(context, key=len)[:-1] if context else " "


def _decode_numbered(line: str, separator: str) -> tuple[str, str] | None:
    """(marker, code) of one line of a numbered hunk, or None if the line cannot belong to the hunk."""
    match = _NUMBER_PREFIX.match(line)
    if match is None:
        removed = _BLANK_COLUMN_REMOVED.match(line)
        if removed is not None:
            return "-", removed.group(1)
        if not line.strip():
            return " ", ""
        return ("\\", "") if line.lstrip().startswith("\\") else None
    rest = line[match.end() :]
    if rest.startswith(separator) and len(rest) > len(separator):
        marker = rest[len(separator)]
        if marker in " +-":
            return marker, rest[len(separator) + 1 :]
        return " ", rest[len(separator) :]
    return " ", rest.lstrip(" \t:|")  # a blank line whose trailing spaces were stripped


def _decode(line: str) -> tuple[str, str] | None:
    """(marker, code) of one line of a raw hunk, or None if the line cannot belong to the hunk."""
    if line[:1] in (" ", "+", "-", "\\"):
        return line[0], line[1:]
    if line == "":
        return " ", ""  # an editor stripped the context marker of an empty line
    return None


# findings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    severity: str
    title: str
    body: str
    suggestion: str | None = None
    start_line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "line": self.line}
        if self.start_line is not None:
            out["start_line"] = self.start_line
        out.update(severity=self.severity, title=self.title, body=self.body)
        if self.suggestion is not None:
            out["suggestion"] = self.suggestion
        return out


@dataclass(frozen=True)
class _Site:
    """An added line seen with its new-side neighbours in the same hunk."""

    file: FileDiff
    index: int
    placeholder: str  # SQL parameter style for suggestions: "?" (sqlite3) or "%s"

    @property
    def line(self) -> DiffLine:
        return self.file.lines[self.index]

    @property
    def code(self) -> str:
        return self.line.text

    @property
    def number(self) -> int:
        assert self.line.new_line is not None
        return self.line.new_line

    def neighbours(self, step: int, limit: int) -> list[DiffLine]:
        out: list[DiffLine] = []
        i = self.index + step
        while 0 <= i < len(self.file.lines) and len(out) < limit:
            line = self.file.lines[i]
            if line.hunk != self.line.hunk:
                break
            if line.kind != "-":
                out.append(line)
            i += step
        return out

    def finding(self, severity: str, title: str, body: str, suggestion: str | None = None) -> Finding:
        return Finding(self.file.path, self.number, severity, title, body, suggestion)


def _indent(code: str) -> str:
    return code[: len(code) - len(code.lstrip())]


def _snippet(code: str, limit: int = 70) -> str:
    code = code.strip()
    return code if len(code) <= limit else code[: limit - 1] + "…"


_SQL_TEXT = re.compile(
    r"""["'][^"']*\b(SELECT\s.+?\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WHERE\s+\w+\s*=)""",
    re.IGNORECASE,
)
_EXECUTE_FSTRING = re.compile(r"""^(?P<pre>.*?\.execute(?:many)?\()f(?P<q>["'])(?P<sql>.*?)(?P=q)\)(?P<post>.*)$""")
_CONCAT = re.compile(r"""["']\s*\+|\+\s*["']|["']\s*%\s*[\w(]|\.format\(""")


def _rule_sql(site: _Site) -> Finding | None:
    code = site.code
    fstring = re.search(r"""\bf["']""", code) is not None and "{" in code
    dynamic = fstring or _CONCAT.search(code) is not None
    sql = _SQL_TEXT.search(code) is not None or re.search(r"\.execute(many)?\(", code) is not None
    if not (dynamic and sql):
        return None
    names = sorted(set(re.findall(r"\{([A-Za-z_][\w.]*)", code))) if fstring else []
    what = f"interpolates {', '.join(f'`{n}`' for n in names)}" if names else "builds the SQL text from variables"
    body = (
        f"`{_snippet(code)}` {what} straight into the SQL string, so a value containing a quote can rewrite "
        "the query (SQL injection). Keep the SQL a constant and pass the values as bound parameters."
    )
    return site.finding("high", "SQL injection: query built from interpolated values", body, _bind_params(site))


def _bind_params(site: _Site) -> str | None:
    match = _EXECUTE_FSTRING.match(site.code)
    if match is None:
        return None
    params: list[str] = []

    def placeholder(field: re.Match[str]) -> str:
        params.append(re.split(r"[!:]", field.group(2))[0].strip())
        return site.placeholder

    sql = re.sub(r"""(['"]?)\{([^{}]+)\}\1""", placeholder, match.group("sql"))
    if not params:
        return None
    q = match.group("q")
    return f"{match.group('pre')}{q}{sql}{q}, ({', '.join(params)},)){match.group('post')}"


def _rule_eval(site: _Site) -> Finding | None:
    code = site.code
    if re.search(r"(?<![\w.])eval\(", code):
        body = (
            f"`{_snippet(code)}` evaluates a string as Python: anyone who controls that string runs code in this "
            "process. Parse the data instead: `ast.literal_eval` for Python literals or `json.loads` for JSON."
        )
        fixed = re.sub(r"(?<![\w.])eval\(", "ast.literal_eval(", code, count=1)
        return site.finding("high", "`eval()` runs arbitrary code", body, fixed)
    if re.search(r"(?<![\w.])exec\(", code):
        body = (
            f"`{_snippet(code)}` executes a string as Python code. If any part of it comes from input, this is "
            "remote code execution; replace it with an explicit dispatch (a dict of allowed functions)."
        )
        return site.finding("high", "`exec()` runs arbitrary code", body)
    if re.search(r"\b(c?pickle|dill)\.loads?\(", code):
        body = (
            f"`{_snippet(code)}` unpickles data; unpickling runs code chosen by whoever produced the bytes. "
            "Use a data-only format such as JSON for anything that crosses a trust boundary."
        )
        return site.finding("high", "Unsafe deserialisation with pickle", body)
    return _rule_yaml(site)


def _rule_yaml(site: _Site) -> Finding | None:
    code = site.code
    unsafe = re.search(r"\byaml\.unsafe_load\(", code) is not None
    plain = re.search(r"\byaml\.load\(", code) is not None and "SafeLoader" not in code
    if not (unsafe or plain):
        return None
    if "Loader=" in code:
        fixed = re.sub(r"Loader\s*=\s*[\w.]+", "Loader=yaml.SafeLoader", code)
    else:
        fixed = re.sub(r"\byaml\.(unsafe_)?load\(", "yaml.safe_load(", code)
    body = (
        f"`{_snippet(code)}` parses YAML with a loader that can construct arbitrary Python objects, so a "
        "crafted document runs code. Use `yaml.safe_load` (or `Loader=yaml.SafeLoader`)."
    )
    return site.finding("high", "Unsafe YAML load", body, fixed)


_SILENT = re.compile(r"^\s*(pass|\.\.\.|continue)\s*(#.*)?$")


def _rule_except(site: _Site) -> Finding | None:
    code = site.code
    bare = re.match(r"^\s*except\s*:\s*(?P<rest>.*)$", code)
    broad = re.match(r"^\s*except\s+\(?\s*(Base)?Exception\s*\)?(\s+as\s+\w+)?\s*:\s*(?P<rest>.*)$", code)
    match = bare or broad
    if match is None:
        return None
    indent = _indent(code)
    inline_silent = _SILENT.match(match.group("rest") or "") is not None
    after = site.neighbours(+1, 1)
    next_silent = (
        not match.group("rest") and bool(after) and after[0].kind == "+" and _SILENT.match(after[0].text) is not None
    )
    silent = inline_silent or next_silent
    handler = f"{indent}except Exception:\n{indent}    logger.exception(\"unexpected error\")"
    if bare is not None and not silent:
        body = (
            "A bare `except:` also catches `KeyboardInterrupt` and `SystemExit`, so Ctrl-C and shutdown are "
            "swallowed here. Catch the specific exceptions this block can raise, or at least `Exception`."
        )
        return site.finding("medium", "Bare `except:` catches everything", body, f"{indent}except Exception:")
    if not silent:
        return None
    body = (
        f"`{_snippet(code)}` followed by `pass` discards every error, including bugs, so failures here leave "
        "no trace and the caller continues with bad state. Catch the specific exception you expect, and log "
        "or re-raise anything else."
    )
    end = after[0].new_line if next_silent and after[0].new_line is not None else site.number
    title = "Bare `except:` silently swallows errors" if bare is not None else "Exception swallowed silently"
    return Finding(site.file.path, end, "medium", title, body, handler, site.number if end != site.number else None)


_LOOP = re.compile(r"^\s*(async\s+)?(while\b|for\b.+\bin\b)")


def _rule_sleep(site: _Site) -> Finding | None:
    match = re.search(r"\btime\.sleep\(\s*([^()]*)\)", site.code)
    if match is None or not re.fullmatch(r"[\d.]+|[A-Z_][A-Z0-9_]*", match.group(1).strip()):
        return None  # a computed delay may well be a backoff already
    indent = len(_indent(site.code))
    loop: DiffLine | None = None
    for line in site.neighbours(-1, 20):
        if line.text.strip() and len(_indent(line.text)) < indent:
            if _LOOP.match(line.text):
                loop = line
                break
            if re.match(r"^\s*(async\s+)?def\s", line.text):
                break
    if loop is None:
        return None
    retry = loop.text.lstrip().startswith("while") or re.search(r"range\(|retr|attempt", loop.text) is not None
    if not retry:
        return None
    body = (
        f"This loop retries with a fixed `time.sleep({match.group(1).strip()})`: when the remote side is "
        "overloaded every client hammers it at the same rate, and the loop never gives it room to recover. "
        "Back off exponentially with a cap and some jitter."
    )
    var = re.match(r"^\s*for\s+(\w+)\s+in\s+range\(", loop.text)
    fixed = None
    if var is not None:
        fixed = site.code[: match.start()] + f"time.sleep(min(2 ** {var.group(1)}, 30))" + site.code[match.end() :]
    return site.finding("medium", "Retry loop sleeps a fixed interval without backoff", body, fixed)


def _rule_timeout(site: _Site) -> Finding | None:
    match = re.search(r"\brequests\.(get|post|put|patch|delete|head|request)\(", site.code)
    if match is None:
        return None
    call = site.code[match.start() :]
    close = _closing_paren(call, len(match.group(0)) - 1)
    if close is None:
        call = "\n".join([call] + [line.text for line in site.neighbours(+1, 8)])
    if "timeout" in call:
        return None
    body = (
        f"`requests.{match.group(1)}()` has no `timeout=`, and requests waits forever by default: one "
        "unresponsive server hangs this worker indefinitely. Pass an explicit timeout."
    )
    fixed = None
    if close is not None:
        at = match.start() + close
        separator = "" if site.code[at - 1] == "(" else ", "
        fixed = site.code[:at] + separator + "timeout=10" + site.code[at:]
    return site.finding("medium", "HTTP request without a timeout", body, fixed)


def _closing_paren(text: str, open_index: int) -> int | None:
    """Index of the parenthesis closing the one at `open_index`, skipping quoted strings; None if not on this
    line."""
    depth, quote = 0, ""
    for i in range(open_index, len(text)):
        char = text[i]
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


_SECRET_ASSIGNMENT = re.compile(
    r"""(?i)(?:^|[\s,({.\[])"""
    r"""(?P<name>["']?\w*?(?:password|passwd|secret|api_?key|access_?key|auth_?token|private_?key)["']?)"""
    r"""\s*(?P<op>[:=])\s*(?P<q>["'])(?P<value>[^"'\s]{4,})(?P=q)"""
)
_SECRET_TOKEN = re.compile(
    r"\b(AKIA[0-9A-Z]{16}|sk-ant-[\w-]{10,}|ghp_[A-Za-z0-9]{20,})|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def _rule_secret(site: _Site) -> Finding | None:
    code = site.code
    assignment = _SECRET_ASSIGNMENT.search(code)
    token = _SECRET_TOKEN.search(code)
    if assignment is not None and not assignment.group("value").startswith(("<", "${", "{")):
        name = assignment.group("name").strip("\"'")
        fixed = None
        if assignment.group("op") == "=" and not assignment.group("name").startswith(("'", '"')):
            target = code.strip()[: code.strip().index(name) + len(name)]  # keeps a `self.` prefix
            fixed = f"{_indent(code)}{target} = os.environ[\"{name.upper()}\"]"
        body = (
            f"`{name}` is assigned a literal credential. Anything committed stays in the git history and in "
            "every clone, so treat this value as leaked: rotate it, and read it from the environment or a "
            "secret store instead."
        )
        return site.finding("critical", "Hard-coded secret", body, fixed)
    if token is not None:
        kind = "An AWS access key ID" if token.group(0).startswith("AKIA") else "A credential"
        body = (
            f"{kind} is committed in the source. It stays in the git history even if removed later: revoke "
            "and rotate it now, and load it from the environment or a secret store."
        )
        return site.finding("critical", "Credential committed to the repository", body)
    return None


def _rule_print(site: _Site) -> Finding | None:
    code = site.code
    if site.file.path.endswith(".py") and re.match(r"^\s*print\(", code):
        fixed = code.replace("print(", "logger.debug(", 1) if "," not in code else None
        body = (
            "A `print()` left from debugging writes to stdout in production, bypassing log levels and "
            "handlers. Remove it or use the module logger."
        )
        return site.finding("low", "Debug `print()` left in", body, fixed)
    if re.search(r"\.(js|jsx|ts|tsx)$", site.file.path) and re.search(r"\bconsole\.log\(", code):
        body = "A `console.log()` left from debugging ships to every user's console. Remove it before merging."
        return site.finding("low", "Debug `console.log()` left in", body)
    return None


def _rule_todo(site: _Site) -> Finding | None:
    match = re.search(r"\b(TODO|FIXME|XXX|HACK)\b[:\s]*(.*)", site.code)
    if match is None:
        return None
    note = match.group(2).strip().rstrip("*/#-").strip()
    about = f" (\"{_snippet(note, 60)}\")" if note else ""
    body = (
        f"The change adds a `{match.group(1)}`{about}. Unfinished work merged like this tends to stay; "
        "finish it in this pull request or track it in an issue and link it here."
    )
    return site.finding("low", f"Unresolved `{match.group(1)}` in new code", body)


def _rule_none_compare(site: _Site) -> Finding | None:
    code = site.code
    if not site.file.path.endswith(".py") or re.search(r"(==|!=)\s*None\b|\bNone\s*(==|!=)", code) is None:
        return None
    fixed = re.sub(r"\s*!=\s*None\b", " is not None", re.sub(r"\s*==\s*None\b", " is None", code))
    body = (
        "Comparing with `None` using `==`/`!=` calls the operand's `__eq__`, which can be overridden (NumPy "
        "arrays, ORM columns) and give surprising results. Use `is None` / `is not None`."
    )
    return site.finding("low", "Comparison to `None` with `==`", body, fixed if fixed != code else None)


_MUTABLE_DEFAULT = re.compile(r"(\w+)(\s*:\s*[^=,()]+?)?\s*=\s*(\[\]|\{\}|list\(\)|dict\(\)|set\(\))")


def _rule_mutable_default(site: _Site) -> Finding | None:
    code = site.code
    signature = re.match(r"^\s*(async\s+)?def\s+\w+\((.*)", code)
    if signature is None:
        return None
    default = _MUTABLE_DEFAULT.search(signature.group(2))
    if default is None:
        return None
    name, annotation = default.group(1), (default.group(2) or "").strip()
    replacement = f"{name}: {annotation.lstrip(':').strip()} | None = None" if annotation else f"{name}=None"
    fixed = code.replace(default.group(0), replacement, 1)
    body = (
        f"The default `{name}={default.group(3)}` is created once, when the function is defined, and shared "
        f"by every call, so values added in one call leak into the next. Default to `None` and create the "
        f"container inside: `if {name} is None: {name} = {default.group(3)}`."
    )
    return site.finding("medium", "Mutable default argument", body, fixed)


def _block_body(site: _Site, limit: int = 40) -> list[DiffLine]:
    """The new-side lines indented deeper than the site's line: the body of a loop or block it opens."""
    indent = len(_indent(site.code))
    body: list[DiffLine] = []
    for line in site.neighbours(+1, limit):
        if not line.text.strip():
            continue
        if len(_indent(line.text)) <= indent:
            break
        body.append(line)
    return body


_RETRY_LOOP = re.compile(r"^\s*(while\b.*\b(attempt|retr|tries)\w*|for\s+(attempt|retry|tries|_)\w*\s+in\s+range\()")
_NETWORK_CALL = re.compile(
    r"\b(requests|httpx|session|client|urlopen|socket)\b|\.(get|post|put|send|request|connect)\("
)


def _rule_retry_without_delay(site: _Site) -> Finding | None:
    if _RETRY_LOOP.match(site.code) is None:
        return None
    body = "\n".join(line.text for line in _block_body(site))
    if not body or re.search(r"sleep|backoff|wait|delay", body) or not _NETWORK_CALL.search(body):
        return None
    limit = re.search(r"<=?\s*([\w.]+)|range\(\s*([\w.]+)", site.code)
    bound = f" (`{limit.group(1) or limit.group(2)}`)" if limit else ""
    text = (
        f"The loop retries immediately after a failure: nothing waits between attempts, so all attempts{bound} "
        "hit an endpoint that is already failing within milliseconds, which amplifies an outage instead of "
        "riding it out. Sleep between attempts with exponential backoff and jitter, and honour `Retry-After`."
    )
    return site.finding("medium", "Retry loop without any delay between attempts", text)


_ITERATION = re.compile(
    r"^\s*(?:async\s+)?for\s+.+?\s+in\s+(?P<container>[\w.]+?)(?P<view>\.(?:items|keys|values)\(\))?\s*:\s*$"
)


def _rule_mutating_iteration(site: _Site) -> Finding | None:
    loop = _ITERATION.match(site.code)
    if loop is None:
        return None
    container = re.escape(loop.group("container"))
    mutation = re.compile(rf"\bdel\s+{container}\[|\b{container}\.(pop|popitem|clear|remove|discard|add)\(")
    culprit = next((line for line in _block_body(site) if mutation.search(line.text)), None)
    if culprit is None:
        return None
    iterable = loop.group("container") + (loop.group("view") or "")
    text = (
        f"Line {culprit.new_line} removes entries from `{loop.group('container')}` while this loop iterates over "
        f"it, which raises `RuntimeError: dictionary changed size during iteration` (or silently skips items "
        f"for a list) the first time it happens. Iterate over a snapshot: `list({iterable})`."
    )
    fixed = site.code.replace(f"in {iterable}", f"in list({iterable})", 1)
    return site.finding("high", "Container modified while iterating over it", text, fixed)


def _rule_raw_html(site: _Site) -> Finding | None:
    code = site.code
    raw = re.search(r"dangerouslySetInnerHTML=\{\{\s*__html:\s*([^}]+?)\s*\}\}", code)
    assigned = re.search(r"\.(innerHTML|outerHTML)\s*=\s*(.+?);?\s*$", code)
    if raw is None and assigned is None:
        return None
    value = raw.group(1) if raw is not None else assigned.group(2) if assigned is not None else ""
    text = (
        f"`{_snippet(value, 40)}` is inserted as raw HTML. If any part of it is user-supplied, a stored "
        "`<script>` or `onerror=` payload runs in the viewer's browser (XSS). Render it as text, or sanitise "
        "it (DOMPurify) before inserting."
    )
    fixed = None
    element = re.search(r"<(\w+)([^<>]*?)\s*dangerouslySetInnerHTML=\{\{\s*__html:\s*([^}]+?)\s*\}\}\s*/>", code)
    if element is not None:
        tag, attributes, expr = element.groups()
        fixed = code[: element.start()] + f"<{tag}{attributes}>{{{expr}}}</{tag}>" + code[element.end() :]
    return site.finding("high", "Cross-site scripting: unescaped HTML", text, fixed)


def _rule_effect_dependencies(site: _Site) -> Finding | None:
    if re.match(r"^\s*\}\s*,\s*\[\s*\]\s*\)", site.code) is None:
        return None
    before = site.neighbours(-1, 60)
    start = next((i for i, line in enumerate(before[:15]) if "useEffect(" in line.text), None)
    if start is None:
        return None
    body = "\n".join(line.text for line in before[:start])
    props: list[str] = []
    for line in before[start:]:
        signature = re.search(r"function\s+\w+\(\s*\{([^}]*)\}|\(\s*\{([^}]*)\}\s*(?::\s*\w+)?\s*\)\s*=>", line.text)
        if signature is not None:
            props = re.findall(r"\b([A-Za-z_]\w*)\b", signature.group(1) or signature.group(2) or "")
            break
    used = [name for name in props if re.search(rf"\b{name}\b", body)]
    if not used:
        return None
    names = ", ".join(f"`{n}`" for n in used)
    text = (
        f"The effect reads {names} but its dependency list is empty, so it runs once on mount and keeps "
        f"showing data for the first {names} after the prop changes. List the dependencies."
    )
    fixed = re.sub(r"\[\s*\]", f"[{', '.join(used)}]", site.code, count=1)
    return site.finding("medium", "Effect misses a dependency", text, fixed)


RULES = (
    _rule_secret,
    _rule_sql,
    _rule_eval,
    _rule_raw_html,
    _rule_mutating_iteration,
    _rule_except,
    _rule_retry_without_delay,
    _rule_sleep,
    _rule_timeout,
    _rule_effect_dependencies,
    _rule_mutable_default,
    _rule_print,
    _rule_todo,
    _rule_none_compare,
)


def review(files: list[FileDiff], seed: bytes) -> list[Finding]:
    """Findings for the added lines, most severe first; `seed` decides the out-of-diff extra finding."""
    placeholder = "?" if any("sqlite" in line.text for f in files for line in f.lines) else "%s"
    findings: list[Finding] = []
    for file in files:
        for index, line in enumerate(file.lines):
            if line.kind != "+":
                continue
            site = _Site(file, index, placeholder)
            findings.extend(f for rule in RULES if (f := rule(site)) is not None)
    extra = _off_diff_finding(files, seed)
    if extra is not None:
        findings.append(extra)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.path, f.line))
    return findings[:MAX_FINDINGS]


def _off_diff_finding(files: list[FileDiff], seed: bytes) -> Finding | None:
    # only files that existed before: a finding past the end of a new file would be plainly invented
    candidates = [
        f
        for f in files
        if f.path.endswith(CODE_SUFFIXES) and f.added and any(line.kind == " " for line in f.lines)
    ]
    if not candidates or seed[0] % OFF_DIFF_EVERY != 0:
        return None
    file = max(candidates, key=lambda f: len(f.added))
    line = max(last for _, last in file.hunk_ranges) + OFF_DIFF_DISTANCE
    body = (
        f"The behaviour changed in this diff is also relied on further down `{file.path}` (around line {line}, "
        "outside the changed hunks), which still assumes the old contract. Check that caller, or add a test "
        "that covers it."
    )
    return Finding(file.path, line, "low", "Unchanged caller may rely on the old behaviour", body)


# answering ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    kind: str  # "tool", "json" or "text"
    tool_name: str = ""
    schema: Any = None


def _shape(params: dict[str, Any]) -> _Shape:
    """Forced tool use wins, then a JSON output format, then a tool the model may choose, then prose."""
    tools = [t for t in params.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    choice = params.get("tool_choice") or {}
    choice_type = choice.get("type") if isinstance(choice, dict) else None
    output_format = (params.get("output_config") or {}).get("format") or {}
    if tools and choice_type in ("tool", "any"):
        name = choice.get("name") if choice_type == "tool" else tools[0]["name"]
        return _Shape("tool", str(name), _tool_schema(tools, str(name)))
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        return _Shape("json", schema=output_format.get("schema"))
    if tools and choice_type != "none":
        return _Shape("tool", str(tools[0]["name"]), tools[0].get("input_schema"))
    return _Shape("text")


def _tool_schema(tools: list[dict[str, Any]], name: str) -> Any:
    return next((t.get("input_schema") for t in tools if t.get("name") == name), None)


def user_text(params: dict[str, Any]) -> str:
    """The text of every user turn: where the prompt puts the diff."""
    parts: list[str] = []
    for message in params.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return "\n".join(parts)


@dataclass(frozen=True)
class _Review:
    files: list[FileDiff]
    findings: list[Finding]
    summary: str
    seed: bytes


def _review_of(params: dict[str, Any]) -> _Review:
    text = user_text(params)
    seed = hashlib.sha256(text.encode()).digest()
    files = parse_diff(text)
    findings = review(files, seed)
    return _Review(files, findings, _summary(files, findings), seed)


def _summary(files: list[FileDiff], findings: list[Finding]) -> str:
    if not files:
        return "No unified diff found in the request, so there is nothing to review."
    names = ", ".join(f"`{f.path}`" for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    plural = "s" if len(files) != 1 else ""
    if not findings:
        return f"Reviewed {len(files)} file{plural} ({names}): no defects found in the changed lines."
    counts = Counter(f.severity for f in findings)
    tally = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
    top = findings[0]
    blocking = top.severity in ("critical", "high")
    risk = "This should not be merged as is." if blocking else "Worth fixing before merging."
    return (
        f"Reviewed {len(files)} file{plural} ({names}) and found {len(findings)} issue"
        f"{'s' if len(findings) != 1 else ''} ({tally}). The most serious: {top.title.rstrip('.')} at "
        f"`{top.path}:{top.line}`. {risk}"
    )


def _structured(review_: _Review, schema: Any) -> dict[str, Any]:
    items_schema = _property(schema, "findings")
    items_schema = items_schema.get("items") if isinstance(items_schema, dict) else None
    findings = [_fit(f.as_dict(), items_schema) for f in review_.findings]
    return _fit({"summary": review_.summary, "findings": findings}, schema)


def _property(schema: Any, name: str) -> Any:
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props.get(name) if isinstance(props, dict) else None


def _fit(obj: dict[str, Any], schema: Any) -> dict[str, Any]:
    """Drops keys the schema does not declare and sets declared-required ones to null (strict schemas list
    optional fields as required-nullable). A schema naming none of our keys is ignored."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not (props.keys() & obj.keys()):
        return obj
    fitted = {k: v for k, v in obj.items() if k in props}
    for name in schema.get("required") or []:
        if name in props and name not in fitted:
            fitted[name] = None
    return fitted


def _markdown(review_: _Review) -> str:
    if not review_.findings:
        return review_.summary
    out = [review_.summary, "", "### Findings", ""]
    for n, f in enumerate(review_.findings, 1):
        where = f"{f.path}:{f.start_line}-{f.line}" if f.start_line else f"{f.path}:{f.line}"
        out.append(f"{n}. `{where}` ({f.severity}) **{f.title}**. {f.body}")
        if f.suggestion is not None:
            out.extend(["", "   ```suggestion", *(f"   {s}" for s in f.suggestion.splitlines()), "   ```"])
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def text_block(text: str) -> Block:
    return {"type": "text", "text": text, "citations": None}


def _tool_block(name: str, payload: dict[str, Any], seed: bytes) -> Block:
    return {"type": "tool_use", "id": "toolu_01" + base58(seed[1:], 22), "name": name, "input": payload}


_BASE58_TABLE = bytes(ord(BASE58[b % 58]) for b in range(256))
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def base58(data: bytes, length: int) -> str:
    """`length` base58 characters derived from `data` (a hash), for deterministic ids."""
    return data[:length].translate(_BASE58_TABLE).decode().ljust(length, "1")


def dumps(obj: Any) -> str:
    """Compact JSON, the form every size and token estimate is taken of."""
    return _ENCODER.encode(obj)


def output_tokens(blocks: list[Block]) -> int:
    """About one token per 4 characters of the text, or of the JSON input of a tool call."""
    chars = 0
    for block in blocks:
        if block.get("type") == "tool_use":
            chars += len(dumps(block.get("input")))
        else:
            chars += len(str(block.get("text") or ""))
    return math.ceil(chars / CHARS_PER_TOKEN) if blocks else 0


def answer(params: dict[str, Any]) -> tuple[list[Block], str]:
    """(content blocks, stop_reason) of the fake model for one Messages request."""
    review_ = _review_of(params)
    shape = _shape(params)
    max_tokens = int(params.get("max_tokens") or 0)
    if shape.kind == "tool":
        payload = _structured(review_, shape.schema)
        return _cut([_tool_block(shape.tool_name, payload, review_.seed)], dumps(payload), max_tokens, "tool_use")
    if shape.kind == "json":
        text = dumps(_structured(review_, shape.schema))
        return _cut([text_block(text)], text, max_tokens, "end_turn")
    text = _markdown(review_)
    return _cut([text_block(text)], text, max_tokens, "end_turn")


def _cut(blocks: list[Block], text: str, max_tokens: int, stop_reason: str) -> tuple[list[Block], str]:
    if math.ceil(len(text) / CHARS_PER_TOKEN) <= max_tokens:
        return blocks, stop_reason
    if max_tokens <= 0:
        return [], "max_tokens"
    return [text_block(text[: max_tokens * CHARS_PER_TOKEN])], "max_tokens"


def truncated_answer(params: dict[str, Any]) -> tuple[list[Block], str]:
    """The answer cut at about half its length, with stop_reason `max_tokens`."""
    blocks, _ = answer({**params, "max_tokens": 10**9})
    full = output_tokens(blocks)
    return answer({**params, "max_tokens": max(1, full // 2)})


def malformed_answer(params: dict[str, Any]) -> tuple[list[Block], str]:
    """A 'succeeded' answer that does not fit the requested structure: a tool call missing its required
    fields, or JSON text broken off before its end."""
    review_ = _review_of(params)
    shape = _shape(params)
    if shape.kind == "tool":
        payload: dict[str, Any] = (
            {"summary": review_.summary, "findings": [{"path": f.path, "comment": f.title} for f in review_.findings]}
            if review_.findings
            else {"comment": review_.summary}
        )
        return [_tool_block(shape.tool_name, payload, review_.seed)], "tool_use"
    if shape.kind == "json":
        text = dumps(_structured(review_, shape.schema))
        return [text_block("Here is the review:\n" + text[: max(1, len(text) // 2)])], "end_turn"
    return [text_block("I looked at the change but cannot give a structured review of it.")], "end_turn"

"""File paths as git writes them in a diff and as GitHub names them, pure.

git C-quotes a path in a diff header when it holds a byte it will not print as is (core.quotePath, on by
default): a control character, `"`, `\\`, DEL, or any byte of a non-ASCII character. `"a/caf\\303\\251.py"`
is `a/café.py`; a path with a space is not quoted, but its `---`/`+++` lines end with a tab. GitHub's
JSON (`filename`, a review comment's `path`) always carries the real path.

Invariants: `unquote(quote(p)) == p` for every path (text, so valid UTF-8); `unquote` leaves a name
that is not quoted (or not quoted the way git does) as it is; `shown` is the real path wherever that
prints on one line, git's quoted form otherwise, and `unquote` turns that back into the real path.
"""

from __future__ import annotations

import re

_ESCAPES = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 0x22: '"', 0x5C: "\\"}
_UNESCAPES = {letter: code for code, letter in _ESCAPES.items()}
_ESCAPE = re.compile(r'\\(?:([0-3][0-7]{2})|([abtnvfr"\\]))')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _must_quote(byte: int) -> bool:
    return byte < 0x20 or byte in (0x22, 0x5C) or byte >= 0x7F


def quote(path: str, prefix: str = "") -> str:
    """`prefix` + `path` as git prints it in a diff header (quoted only when it must be)."""
    data = (prefix + path).encode("utf-8", "surrogateescape")
    if not any(_must_quote(byte) for byte in data):
        return prefix + path
    return '"' + "".join(_escaped(byte) for byte in data) + '"'


def _escaped(byte: int) -> str:
    if not _must_quote(byte):
        return chr(byte)
    return "\\" + _ESCAPES[byte] if byte in _ESCAPES else f"\\{byte:03o}"


def header_name(path: str, prefix: str) -> str:
    """A path on a `---`/`+++` line: quoted as git does, and followed by a tab when it holds a space."""
    return quote(path, prefix) + ("\t" if " " in path else "")


def unquote(name: str) -> str:
    """The real path of a name as git prints it: C-quoted names decoded, anything else unchanged."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    body = name[1:-1]
    rest = _ESCAPE.sub("", body)
    if not body.isascii() or "\\" in rest or '"' in rest:
        return name  # git's quoting is ASCII, every backslash and quote escaped: this is not it
    return _ESCAPE.sub(_byte_text, body).encode("latin-1").decode("utf-8", "replace")


def _byte_text(match: re.Match[str]) -> str:
    octal, letter = match.groups()
    return chr(int(octal, 8) if octal else _UNESCAPES[letter])


def strip_side(name: str) -> str:
    """The path of a diff's `a/...` or `b/...` name (quoted or not); `/dev/null` stays as it is."""
    path = unquote(name)
    return path[2:] if path.startswith(("a/", "b/")) else path


def shown(path: str) -> str:
    """The path for text that is read line by line (a prompt, a review): itself, or git's quoted form
    when it holds a tab, a newline or another control character."""
    return quote(path) if _CONTROL.search(path) else path

"""The body of one batch create, `{"requests":[...]}`, written request by request to a temporary file
as the requests are claimed, and sent from there: a batch of 250 MB never sits in the heap, neither as
request dicts nor as one JSON string (the SDK would build both).

Invariants: `size` is the exact byte length the body will have once closed (its envelope included), so a
batch is cut before it would pass the API's limit; the file is in memory up to `IN_MEMORY_BYTES` and on
disk beyond, and is deleted when the spool is closed.
"""

from __future__ import annotations

import tempfile
from typing import IO

IN_MEMORY_BYTES = 8 * 1024 * 1024
_HEAD, _SEPARATOR, _TAIL = b'{"requests":[', b",", b"]}"


def body_size(count: int, entry_bytes: int) -> int:
    """The exact size of a body of `count` requests that take `entry_bytes` bytes in all."""
    return len(_HEAD) + entry_bytes + max(count - 1, 0) * len(_SEPARATOR) + len(_TAIL)


class RequestSpool:
    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)  # noqa: SIM115 (closed by close())
        self._file.write(_HEAD)
        self.count = 0
        self._entry_bytes = 0

    @property
    def size(self) -> int:
        """The body's size once finished."""
        return body_size(self.count, self._entry_bytes)

    def size_with(self, entries: int, entry_bytes: int) -> int:
        """The body's size once `entries` more requests of `entry_bytes` in all are added."""
        return body_size(self.count + entries, self._entry_bytes + entry_bytes)

    def add(self, entry: bytes) -> None:
        """Append one request, already JSON (`jobs.request_json`)."""
        if self.count:
            self._file.write(_SEPARATOR)
        self._file.write(entry)
        self._entry_bytes += len(entry)
        self.count += 1

    def body(self) -> IO[bytes]:
        """The finished body, positioned at its start, for the create; add nothing after this."""
        self._file.write(_TAIL)
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()

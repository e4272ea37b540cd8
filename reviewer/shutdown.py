"""Stopping on SIGTERM or SIGINT within Docker's grace period (10 s), even while a call hangs.

Inside `with Shutdown() as shutdown:` (main thread only), the first signal sets `shutdown.stop`: loops and
the scheduler stop between steps, nothing new starts. A watchdog thread then gives the running step
`GRACE_SECONDS` (5) to finish; a step still running then (a GitHub or Anthropic call that hangs, a database
that does not answer) is abandoned: one line is logged, the logs are flushed, and the process exits at once
with status 128 + the signal's number (`os._exit`: nothing waits on the hung call). A second signal exits
the same way at once.

Nothing is lost by that exit: every step is crash-safe (leases expire, the batch row is written before the
create and settled against the API's list, a post is looked up by its marker before it is sent again), so
the next run picks the interrupted step up exactly as after a kill -9 (tests/e2e/test_crashes.py).

The watchdog learns of the signal from `signal.set_wakeup_fd`, written by the interpreter's C-level
handler the moment the signal arrives, so it counts from the signal even when the main thread is stuck in C
code (a lock wait in SQLite) and cannot run the Python-level handler yet. Leaving the block (a clean stop
in time) ends the watchdog; it never exits a process that stopped by itself.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from contextlib import suppress
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("reviewer.shutdown")
GRACE_SECONDS = 5.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown:
    def __init__(self, stop: threading.Event | None = None, grace: float = GRACE_SECONDS) -> None:
        self.stop = stop or threading.Event()
        self.grace = grace
        self._done = threading.Event()
        self._handled = 0  # signals the Python-level handler has seen
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._reader, self._writer = socket.socketpair()

    def __enter__(self) -> Shutdown:
        self._writer.setblocking(False)  # set_wakeup_fd requires it
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        threading.Thread(target=self._watch, name="reviewer-shutdown", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._writer.close()  # the watchdog's read ends (it closes the other end)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """The Python-level handler (main thread, as soon as it can run): a second signal exits now."""
        self._handled += 1
        self.stop.set()
        if self._handled > 1:
            exit_now(signum, f"received {signal.Signals(signum).name} again; exiting now")

    def _watch(self) -> None:
        try:
            first = self._reader.recv(1)
        except OSError:
            first = b""
        self._reader.close()
        if not first:
            return  # the block ended without a signal
        self.stop.set()
        name = signal.Signals(first[0]).name
        log.info("received %s; stopping after the current step (at most %.0fs)", name, self.grace)
        if not self._done.wait(self.grace):
            exit_now(first[0], f"the running step did not finish within {self.grace:.0f}s of {name}; exiting "
                     "now (the next run picks it up)")


def exit_now(signum: int, message: str) -> None:
    """Log one line, flush the logs, and end the process at once with status 128 + `signum`."""
    log.warning("%s", message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            stream.flush()
    os._exit(128 + signum)

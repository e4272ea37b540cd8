"""One pass of everything, for `reviewer cycle` (cron or CI use) and the demo: collect, submit, wait
for the batches to end while polling, post. Also the `poll --wait` loop.

While waiting it prints one plain line per poll (elapsed time, batches ended and in flight), never a
spinner, so the output reads the same in a terminal and in a CI log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reviewer.collect import collect_pulls
from reviewer.express import review_express
from reviewer.poll import poll_batches, submitted_batches
from reviewer.post import post_answered
from reviewer.report import StageReport
from reviewer.runtime import Runtime
from reviewer.submit import submit_queued

Progress = Callable[[str], None]
Clock = Callable[[], float]


def _quiet(_line: str) -> None:
    pass


def format_duration(seconds: float) -> str:
    """12s, 4m05s, 3h02m: short, fixed-order, and sortable by eye in a log."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_line(polls: int, elapsed: float, ended: int, total: int, in_flight_requests: int,
                  next_poll: float | None) -> str:
    """One poll of the wait, e.g. `poll 3, 4m05s elapsed: 1 of 3 batches ended, 2 in flight (40
    requests); next poll in 2m00s`."""
    head = f"poll {polls}, {format_duration(elapsed)} elapsed: "
    in_flight = total - ended
    if in_flight == 0:
        return head + f"all {total} batch{'es' if total != 1 else ''} ended"
    line = head + f"{ended} of {total} batch{'es' if total != 1 else ''} ended, {in_flight} in flight " \
                  f"({in_flight_requests} request{'s' if in_flight_requests != 1 else ''})"
    return line + (f"; next poll in {format_duration(next_poll)}" if next_poll is not None else "")


def wait_for_batches(rt: Runtime, progress: Progress = _quiet, stop: threading.Event | None = None,
                     max_polls: int | None = None, clock: Clock = time.monotonic,
                     started: float | None = None) -> list[StageReport]:
    """Poll until no submitted batch is left (or `stop` is set); returns the poll reports. Each poll
    prints one progress line, counted from `started` (a `clock()` reading; default: now)."""
    stop = stop or threading.Event()
    started = clock() if started is None else started
    seen = {b.id for b in submitted_batches(rt)}  # every batch open at some point of the wait
    reports: list[StageReport] = []
    while not stop.is_set():
        reports.append(poll_batches(rt))
        left = submitted_batches(rt)
        seen |= {b.id for b in left}
        last = not left or (max_polls is not None and len(reports) >= max_polls)
        if seen:
            progress(progress_line(len(reports), clock() - started, len(seen) - len(left), len(seen),
                                   sum(b.request_count for b in left),
                                   None if last else rt.settings.intervals.poll_seconds))
        if last:
            break
        stop.wait(rt.settings.intervals.poll_seconds)
    return reports


def collect_and_expedite(rt: Runtime) -> tuple[StageReport, StageReport]:
    """Collection, then the express lane for what it found labelled for an immediate review."""
    return collect_pulls(rt), review_express(rt)


def run_cycle(rt: Runtime, progress: Progress = _quiet, stop: threading.Event | None = None,
              clock: Clock = time.monotonic) -> list[StageReport]:
    stop = stop or threading.Event()
    started = clock()
    collected, express = collect_and_expedite(rt)
    reports = [collected, express]
    progress(collected.lines())
    if express.counts or express.errors:
        progress(express.lines())
    reports.append(submit_queued(rt))
    progress(reports[-1].lines())
    reports += wait_for_batches(rt, progress, stop, clock=clock, started=started)
    progress(reports[-1].lines())
    if not stop.is_set():
        reports.append(post_answered(rt))
        progress(reports[-1].lines())
    return reports

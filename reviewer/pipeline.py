"""One pass of everything, for `reviewer cycle` (cron or CI use) and the demo: collect, submit, wait
for the batches to end while polling, post. Also the `poll --wait` loop.
"""

from __future__ import annotations

import threading
from typing import Callable

from reviewer.collect import collect_pulls
from reviewer.poll import open_batches, poll_batches
from reviewer.post import post_answered
from reviewer.runtime import Runtime, StageReport
from reviewer.submit import submit_queued

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def wait_for_batches(rt: Runtime, progress: Progress = _quiet, stop: threading.Event | None = None,
                     max_polls: int | None = None) -> list[StageReport]:
    """Poll until no submitted batch is left (or `stop` is set); returns the poll reports."""
    stop = stop or threading.Event()
    reports: list[StageReport] = []
    polls = 0
    while not stop.is_set():
        report = poll_batches(rt)
        reports.append(report)
        polls += 1
        left = open_batches(rt)
        if not left or (max_polls is not None and polls >= max_polls):
            break
        progress(f"waiting for {len(left)} batch(es) ({sum(b.request_count for b in left)} requests); "
                 f"next poll in {rt.settings.intervals.poll_seconds:g}s")
        stop.wait(rt.settings.intervals.poll_seconds)
    return reports


def run_cycle(rt: Runtime, progress: Progress = _quiet, stop: threading.Event | None = None) -> list[StageReport]:
    stop = stop or threading.Event()
    reports = [collect_pulls(rt)]
    progress(reports[-1].lines())
    reports.append(submit_queued(rt))
    progress(reports[-1].lines())
    reports += wait_for_batches(rt, progress, stop)
    progress(reports[-1].lines())
    if not stop.is_set():
        reports.append(post_answered(rt))
        progress(reports[-1].lines())
    return reports

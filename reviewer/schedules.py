"""When each repository's next submission is due, from its cron schedule in the configured time zone
(`reviewer status`). Apart from the scheduler (scheduler.py), so that reading it loads only
APScheduler's cron trigger, not the scheduler, the stages and the SDKs behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from reviewer.runtime import Runtime


def next_submissions(rt: Runtime) -> dict[str, str]:
    tz = ZoneInfo(rt.settings.timezone)
    now = rt.clock()
    result = {}
    for repo in rt.settings.repositories:
        fire = CronTrigger.from_crontab(repo.schedule, timezone=tz).get_next_fire_time(None, now)
        if fire is not None:
            result[repo.name] = fire.strftime("%Y-%m-%d %H:%M %Z")
    return result

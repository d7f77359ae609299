"""Scheduled jobs (APScheduler 3): DAY expiry at the configured session end, GTD expiry as it falls due,
the renewal of GT orders done for the day at the session start, the end-of-day report, and the daily
log rotation (fixoms.logrotate).

Jobs only submit commands to the engine queue; the engine thread does the work. The cron jobs (session
end, end-of-day report, log rotation) live in an SQLAlchemyJobStore on the journal's database, so a run
missed while the engine was down still happens on the next start (within `misfire_grace_time`): a start
keeps the stored job, with its next run time, unless its schedule changed in the configuration; the
one-second GTD poll is in memory (persisting its next run time every second would only load the journal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from oms import commands as c

log = logging.getLogger(__name__)

# Job functions must be importable by reference (the SQL job store stores "module:function"), so they
# find the running engine here, by instance id.
_SUBMIT: dict[str, Callable[[c.Command], None]] = {}
_EOD: dict[str, Callable[[], None]] = {}
_ROTATE: dict[str, Callable[[], dict[str, int]]] = {}


def run_job(instance: str, name: str) -> Any:
    """Run one job; returns what it reports (rotate_logs: file counts), else None."""
    submit = _SUBMIT.get(instance)
    if submit is None:
        log.warning("job %s: engine %s not running", name, instance)
        return None
    now = datetime.now(UTC)
    if name == "expire_day":
        submit(c.ExpireOrders("day", now))
    elif name == "renew_gt":
        submit(c.RenewOrders(now))
    elif name == "expire_gtd":
        submit(c.ExpireOrders("gtd", now))
    elif name == "eod_report" and instance in _EOD:
        _EOD[instance]()
    elif name == "rotate_logs" and instance in _ROTATE:
        result = _ROTATE[instance]()
        log.info("logs rotated", extra=result)
        return result
    else:
        log.error("unknown job %s", name)
    return None


JOB_NAMES = ("expire_day", "renew_gt", "expire_gtd", "eod_report", "rotate_logs")


class Jobs:
    def __init__(self, instance: str, submit: Callable[[c.Command], None], db_engine: Any, timezone: str,
                 session_end: str, gtd_poll_seconds: float = 1.0, eod: Callable[[], None] | None = None,
                 rotate: Callable[[], dict[str, int]] | None = None, rotate_at: str = "00:05",
                 session_start: str = "09:30") -> None:
        self.instance = instance
        self.submit = submit
        self.eod = eod
        self.rotate = rotate
        hour, minute = (int(x) for x in session_end.split(":"))
        self.scheduler = BackgroundScheduler(
            timezone=timezone,
            jobstores={
                "default": SQLAlchemyJobStore(engine=db_engine, tablename=f"scheduled_jobs_{instance.lower()}"),
                "memory": MemoryJobStore(),
            },
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        # The cron jobs go to the SQL store at start() (see _store_jobs), where the last run left them.
        self._stored: list[tuple[str, str, CronTrigger]] = [
            ("expire_day", "DAY order expiry",
             CronTrigger(day_of_week="mon-fri", hour=hour, minute=minute, timezone=timezone)),
        ]
        # GT orders their venue was done with for the day are worked again at the next session start; a
        # start missed while the engine was down renews them when it starts again (the SQL store).
        start_hour, start_minute = (int(x) for x in session_start.split(":"))
        self._stored.append(("renew_gt", "GT order renewal",
                             CronTrigger(day_of_week="mon-fri", hour=start_hour, minute=start_minute,
                                         timezone=timezone)))
        # The end-of-day report runs after DAY expiry has settled (15 minutes after session end).
        eod_minute = (hour * 60 + minute + 15) % (24 * 60)
        self._stored.append(("eod_report", "end-of-day report",
                             CronTrigger(day_of_week="mon-fri", hour=eod_minute // 60, minute=eod_minute % 60,
                                         timezone=timezone)))
        # Daily, every day (FIX sessions log on weekends too); in the SQL store, so a rotation missed
        # while the engine was down happens at the next start.
        rot_hour, rot_minute = (int(x) for x in rotate_at.split(":"))
        self._stored.append(("rotate_logs", "log rotation",
                             CronTrigger(hour=rot_hour, minute=rot_minute, timezone=timezone)))
        self.scheduler.add_job(run_job, IntervalTrigger(seconds=gtd_poll_seconds), args=[instance, "expire_gtd"],
                               id="expire_gtd", name="GTD order expiry", jobstore="memory", replace_existing=True)

    def start(self) -> None:
        _SUBMIT[self.instance] = self.submit
        if self.eod is not None:
            _EOD[self.instance] = self.eod
        if self.rotate is not None:
            _ROTATE[self.instance] = self.rotate
        # Paused until the stored jobs are in place: a run missed while the engine was down is due now.
        self.scheduler.start(paused=True)
        self._store_jobs()
        self.scheduler.resume()

    def _store_jobs(self) -> None:
        """Keep each cron job the store already holds, with its next run time: adding it again (as
        `replace_existing` does) would compute that from now and silently drop a run that fell due while
        the engine was down. Only a job that is new, or whose schedule changed, is (re)placed."""
        for job_id, name, trigger in self._stored:
            kept = self.scheduler.get_job(job_id, jobstore="default")
            args = [self.instance, job_id]
            if kept is not None and repr(kept.trigger) == repr(trigger) and list(kept.args) == args:
                if kept.next_run_time is not None and kept.next_run_time <= datetime.now(UTC):
                    log.warning("job %s fell due at %s while the engine was down: it runs now", job_id,
                                kept.next_run_time.isoformat())
                continue
            self.scheduler.add_job(run_job, trigger, args=args, id=job_id, name=name, jobstore="default",
                                   replace_existing=True)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        _SUBMIT.pop(self.instance, None)
        _EOD.pop(self.instance, None)
        _ROTATE.pop(self.instance, None)

    def run_now(self, name: str) -> Any:
        if name not in JOB_NAMES:
            raise ValueError(f"unknown job {name!r} (known: {', '.join(JOB_NAMES)})")
        return run_job(self.instance, name)

    def list(self) -> list[dict[str, str]]:
        return [
            {"id": j.id, "name": j.name, "next_run": j.next_run_time.isoformat() if j.next_run_time else "paused",
             "trigger": str(j.trigger)}
            for j in self.scheduler.get_jobs()
        ]

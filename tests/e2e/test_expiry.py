"""DAY and GTD expiry by the real scheduler (fixoms.jobs, APScheduler) of a real engine, over real
sessions, on both databases: nothing here submits ExpireOrders itself.

- the one-second GTD poll expires a GTD order once its ExpireTime has passed;
- a GTD order whose ExpireTime passed while the engine was stopped is expired after the restart;
- the session-end job (DAY expiry), stored in the journal's database, that fell due while the engine
  was stopped runs at the next start (docs/operations.md, "Scheduled jobs").
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

import native
from fix_engine import codec
from fix_engine.client import FixClient
from oms.schema import make_engine
from tests.conftest import Stack
from tests.e2e.scenario import (
    EXPIRED,
    NEW,
    STATUS,
    rest_ibm,
    seq,
    wait_at_venue,
)


def expire_in(seconds: float) -> tuple[datetime, str]:
    """An ExpireTime `seconds` from now, and its UTCTimestamp (milliseconds)."""
    at = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    at += timedelta(seconds=1)  # whole seconds, never less than `seconds` ahead
    return at, at.strftime("%Y%m%d-%H:%M:%S.000")


def new_gtd(client: FixClient, stack: Stack, seconds: float, price: str = "148.00") -> tuple[str, datetime]:
    at, wire = expire_in(seconds)
    cl = client.new_order("IBM", "1", 100, price=price, tif="6", extra=[(codec.EXPIRE_TIME, wire)])
    ack = client.wait_report(cl, status=NEW)
    wait_at_venue(stack, ack[codec.ORDER_ID])  # working at VENUE-B before anything expires it
    return cl, at


def wait_until(at: datetime, timeout: float = 30.0) -> None:
    """Until the wall clock has passed `at` (a poll with a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while datetime.now(UTC) <= at:
        assert time.monotonic() < deadline, f"{at} never came"
        time.sleep(0.02)


def bids_at_venue(stack: Stack) -> list[tuple[int, int, int]]:
    venue = stack.venue("VENUE-B")
    with venue.paused():
        return list(venue.books["IBM"].depth(native.BUY, 20))


def status(client: FixClient, cl_ord_id: str) -> str:
    client.status(cl_ord_id, "IBM", "1")
    return client.wait_report(cl_ord_id, exec_type=STATUS)[codec.ORD_STATUS]


def test_gtd_order_expires_by_itself_at_its_expire_time(stack: Stack) -> None:
    c1 = stack.client()
    day = rest_ibm(c1, 100, "149.00", stack=stack)
    later, _ = new_gtd(c1, stack, 3600, "147.00")
    gtd, at = new_gtd(c1, stack, 2)
    expired = c1.wait_report(gtd, status=EXPIRED, timeout=20)  # the scheduler's GTD poll, nobody else
    assert codec.parse_utc(expired[codec.TRANSACT_TIME]) >= at  # not before its ExpireTime
    assert expired[codec.TEXT].startswith("GTD order expired at")
    assert seq(c1, gtd) == [(NEW, NEW, "100", "0", "100", "0"), (EXPIRED, EXPIRED, "100", "0", "0", "0")]
    assert (14800, 100, 1) not in bids_at_venue(stack)  # its child was canceled at the venue
    # Nothing else expired: the DAY order waits for session end, the other GTD order for its own time.
    assert (status(c1, day), status(c1, later)) == (NEW, NEW)


def test_gtd_order_that_expired_while_the_engine_was_down_expires_after_restart(stack: Stack) -> None:
    c1 = stack.client()
    gtd, at = new_gtd(c1, stack, 3)
    stack.stop_engine()
    assert seq(c1, gtd, settle=0)[-1][1] == NEW, "expired before the engine stopped: nothing left to test"
    wait_until(at)  # its ExpireTime passes while nothing runs
    stack.start_engine()
    c1.wait_report(gtd, status=EXPIRED, timeout=30)
    rows = seq(c1, gtd)
    assert rows[-1] == (EXPIRED, EXPIRED, "100", "0", "0", "0")
    assert [r[0] for r in rows].count(EXPIRED) == 1
    assert (14800, 100, 1) not in bids_at_venue(stack)


def make_stored_job_due(db_url: str, job_id: str, table: str = "scheduled_jobs_oms1") -> datetime:
    """While the engine is stopped, move the stored job's next run to a minute ago: as if its time (the
    weekday session end, hours away in a test) had come while the engine was down. Done through
    APScheduler's own job store on the journal's database, which the engine's scheduler reads at start.
    No scheduler runs here: a running one (even paused) may process the due job while it shuts down."""
    store = SQLAlchemyJobStore(engine=make_engine(db_url), tablename=table)
    store.start(BackgroundScheduler(timezone="UTC"), "default")  # never started: only reconstitutes jobs
    try:
        job = store.lookup_job(job_id)
        assert job is not None and job.next_run_time > datetime.now(UTC), "the job was not stored for later"
        due = datetime.now(UTC) - timedelta(minutes=1)
        job._modify(next_run_time=due)
        store.update_job(job)
        assert store.lookup_job(job_id).next_run_time == due
        return due
    finally:
        store.shutdown()  # disposes of its engine


def test_session_end_missed_while_the_engine_was_down_runs_at_the_next_start(stack: Stack) -> None:
    c1 = stack.client()
    day = rest_ibm(c1, 100, "149.00", stack=stack)
    gtc = c1.new_order("IBM", "1", 100, price="148.50", tif="1")
    c1.wait_report(gtc, status=NEW)
    stack.stop_engine()
    make_stored_job_due(stack.db_url, "expire_day")
    stack.start_engine()
    done = c1.wait_report(day, status=EXPIRED, timeout=30)
    assert done[codec.TEXT] == "DAY order expired at session end"
    assert seq(c1, day)[-1] == (EXPIRED, EXPIRED, "100", "0", "0", "0")
    assert status(c1, gtc) == NEW  # a GTC order outlives the session end
    # and the job is scheduled again for the next session end
    (job,) = [j for j in stack.app.jobs.list() if j["id"] == "expire_day"]  # type: ignore[attr-defined]
    assert datetime.fromisoformat(job["next_run"]) > datetime.now(UTC)

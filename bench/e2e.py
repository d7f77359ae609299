"""End to end under load: N real FIX client sessions -> the engine (`fixoms run`) -> two simulated venues
(`fixoms venue-sim`) -> answers back; the journal on SQLite and on PostgreSQL. In the same run, the same
load against bench/echo_acceptor.py (a bare QuickFIX SocketAcceptor whose Python Application builds each
reply: New for every order, and a fill for an IOC): the baseline. One table per database, engine next to
echo, with the ratios.

Two flows (--flow, default both):

  filling   marketable IOC limits (buy 1% over / sell 1% under the reference, sizes 1..89, four symbols
            over both venues): each order is acknowledged, filled (or its remainder canceled) and ends
  resting   DAY limits 5% away from the reference (buy under, sell over): they rest at the venue, so
            only an ack comes back; the engine's are canceled (OrderMassCancelRequest) after the run

Runs per target:

  closed loop  filling flow, every session keeps --window orders outstanding and sends one more when one
               ends (or is rejected); orders acked/s, ended/s and filled/s (ended with at least one fill)
               over --seconds. A Rejected order is counted as rejected, never as ended.
  open loop    each flow at each --rate (orders/s over all sessions, round robin), for --seconds. Order i
               is due at t0 + i/rate and its latency is measured from that intended time, not from when
               the load generator got round to sending it (coordinated omission): if the generator or
               the target falls behind, the queue shows in the figures. ack = due -> first
               ExecutionReport that is not a reject; fill = due -> first fill (an IOC that ended without
               any fill is counted as such, not timed). The figures include the load generator's own
               wake-up and send (~0.1 ms here; each run also prints the ack latency from the actual send,
               for comparison only). The CPU of the target's processes (engine, VENUE-A, VENUE-B or the
               echo; each with its child processes: the engine's journal projector is counted as engine)
               and of the load generator, as % of one core, from /proc/<pid>/stat utime+stime over
               the run (its start to its last answer), and per order; and what the rest of the machine used
               meanwhile (/proc/stat: PostgreSQL's server processes, anyone else's work on a shared
               machine), so that a starved run shows as one.

Every order sent is in the figures. An order with no answer (filling: not ended; resting: not acked) by
the end of its run plus --grace seconds is unanswered: it counts as +inf in the percentiles and fails
the run; a rejected order counts as +inf too (it was never acknowledged) and also fails the run. Failed
runs are listed at the end and the script exits with status 1.

--preload N_FINISHED,N_RESTING fills the engine's journal before it starts with N_FINISHED filled
orders written through the journal's own write path (bench/restart_bench.py's populate: the real rows),
and, once it runs, places N_RESTING resting orders through FIX on four extra symbols (PRE1..PRE4, so
they do not stand in front of the filling flow's liquidity); they stay working during every run. (Open
orders written into the journal would not do: on start the engine asks the venues for their children,
the simulators do not know them and the engine cancels them back.)

The load generator is a QuickFIX SocketInitiator in this process (it shares the 2 cores with the target);
the echo's closed loop is usually bounded by it, so its figure is a floor of the echo's ceiling.

--profile samples the engine with py-spy (pip install py-spy into .venv) during its closed loop run
(--profile open: during its first open loop run instead; --profile-all: every thread, not only the one
holding the GIL, with native frames, so QuickFIX's C++ threads and the time in C show too).
--pin-ab runs each engine a second time with `[engine] cpus` = the last CPU and the venue simulators and the
load generator moved to the other CPUs (the echo is not pinned): the engine thread on a core of its own.
--nagle runs the engine a second time with SocketNodelay=N in its sessions.cfg [DEFAULT]. --outbox-ab runs
it first with FIXOMS_FIX_OUTBOX=off: the engine thread sends each message itself (sendToTarget), as before
the sessions' outboxes (fix_engine/outbox.py), so both are measured in the same run. --pure-ab runs it
first with FIXOMS_PURE_PYTHON=1: the modules mypyc compiles (setup.py) run from their sources, as before
they were compiled (the venue simulators run as they are in both).

Run: .venv/bin/python bench/e2e.py [--db sqlite,postgresql] [--rate 500,1000] [--flow both|filling|resting]
                                    [--seconds 10] [--sessions 4] [--window 50] [--grace 5]
                                    [--preload 100000,10000] [--quick] [--no-echo] [--profile] [--json OUT]
Everything runs on 127.0.0.1 in a temporary folder (removed afterwards, --keep keeps it); PostgreSQL gets
a database of its own (fixoms_bench_<pid>), dropped afterwards. The code measured is the code next to
this script: its subprocesses run with PYTHONPATH set to this script's repository.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fix_engine.quickfix_import import fix  # noqa: E402
from fixoms.netutil import free_port  # noqa: E402

SOH = "\x01"
SYMBOLS = {"AAPL": Decimal("190.00"), "MSFT": Decimal("410.00"), "IBM": Decimal("150.00"), "TSLA": Decimal("250.00")}
# --preload's resting orders: symbols of their own (config [symbols] gets them), so they never stand in
# front of the filling flow's liquidity (the simulator only re-seeds a side of its book once it is empty).
PRELOAD_SYMBOLS = {"PRE1": ("VENUE-A", Decimal("100.00")), "PRE2": ("VENUE-B", Decimal("100.00")),
                   "PRE3": ("VENUE-A", Decimal("200.00")), "PRE4": ("VENUE-B", Decimal("200.00"))}
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
ENDED = frozenset("234C")  # OrdStatus Filled, Canceled, Expired, DoneForDay (Rejected is not "ended")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# `fixoms ...` as a subprocess: imported as fixoms.cli (not run as __main__), like the console script.
CLI = [sys.executable, "-c", "import sys; from fixoms.cli import main; sys.argv[0] = 'fixoms'; main()"]
INF = math.inf
FLOWS = ("filling", "resting")


def _field(raw: str, tag: str) -> str:
    """The value of `tag` (given as "\\x01NN=") in a message string; "" when absent."""
    i = raw.find(tag)
    if i < 0:
        return ""
    i += len(tag)
    return raw[i : raw.find(SOH, i)]


# --- the load generator: a QuickFIX initiator with N sessions ------------------------------------------
class Rec:
    """One order: perf_counter_ns() when it was due, sent, first acknowledged, first filled, ended,
    rejected (0: not yet); `owner` is the session whose window slot it holds (closed loop)."""

    __slots__ = ("due", "sent", "ack", "fill", "end", "rej", "owner", "want_end")

    def __init__(self, due: int, want_end: bool, owner: str | None) -> None:
        self.due, self.want_end, self.owner = due, want_end, owner
        self.sent = self.ack = self.fill = self.end = self.rej = 0

    def answered(self) -> int:
        """When the order got its final answer for its flow (ended, or acked for a resting order, or
        rejected); 0: not yet."""
        return self.rej or (self.end if self.want_end else self.ack)


class Load(fix.Application):  # type: ignore[misc]
    """Records, per ClOrdID, when its first ack / first fill / end / reject came back."""

    def __init__(self, passwords: dict[str, str]) -> None:
        super().__init__()
        self.passwords = passwords
        self.logged_on: set[str] = set()
        self.sids: dict[str, Any] = {}
        self.orders: dict[str, Rec] = {}
        self.windows: dict[str, threading.Semaphore] = {}
        self.errors = 0  # exceptions in our callbacks
        self.unknown = 0  # ExecutionReports for ClOrdIDs we did not send
        self.other: collections.Counter[str] = collections.Counter()  # other application messages by MsgType
        self.logouts = 0
        self.texts: collections.Counter[str] = collections.Counter()  # Text(58) of rejects / unfilled ends

    def onCreate(self, sid: Any) -> None:
        comp = sid.getSenderCompID().getValue()
        self.sids[comp] = fix.SessionID(sid.getBeginString().getValue(), comp, sid.getTargetCompID().getValue())

    def onLogon(self, sid: Any) -> None:
        self.logged_on.add(sid.getSenderCompID().getValue())

    def onLogout(self, sid: Any) -> None:
        self.logged_on.discard(sid.getSenderCompID().getValue())
        self.logouts += 1

    def toAdmin(self, message: Any, sid: Any) -> None:
        try:
            if message.getHeader().getField(35) == "A":
                comp = sid.getSenderCompID().getValue()
                if comp in self.passwords:
                    message.setField(553, comp)
                    message.setField(554, self.passwords[comp])
        except Exception:
            self.errors += 1

    def fromAdmin(self, message: Any, sid: Any) -> None:
        try:
            if message.getHeader().getField(35) == "3":
                self.other["3"] += 1  # session-level Reject
        except Exception:
            self.errors += 1

    def toApp(self, message: Any, sid: Any) -> None:
        pass

    def fromApp(self, message: Any, sid: Any) -> None:
        now = time.perf_counter_ns()
        try:
            raw = message.toString()
            msg_type = _field(raw, f"{SOH}35=")
            if msg_type != "8":
                self.other[msg_type] += 1  # OrderCancelReject, BusinessMessageReject, OrderMassCancelReport
                return
            rec = self.orders.get(_field(raw, f"{SOH}11="))
            if rec is None:
                orig = _field(raw, f"{SOH}41=")
                rec = self.orders.get(orig) if orig else None
                if rec is None:
                    self.unknown += 1
                    return
            exec_type = _field(raw, f"{SOH}150=")
            status = _field(raw, f"{SOH}39=")
            if status == "8" or exec_type == "8":
                if not rec.rej:
                    rec.rej = now
                    self.texts["rejected: " + _field(raw, f"{SOH}58=")] += 1
            else:
                if not rec.ack:
                    rec.ack = now
                if not rec.fill and exec_type in ("1", "2", "F"):
                    rec.fill = now
                if not rec.end and status in ENDED:
                    rec.end = now
                    if not rec.fill and rec.want_end:
                        self.texts[f"ended (39={status}) without a fill: " + _field(raw, f"{SOH}58=")] += 1
            owner = rec.owner
            if owner is not None and rec.answered():
                rec.owner = None
                self.windows[owner].release()
        except Exception:
            self.errors += 1


def order_message(cl: str, k: int, ts: str, flow: str, preload: bool = False) -> str:
    if preload:
        symbol = list(PRELOAD_SYMBOLS)[k % 4]
        ref = PRELOAD_SYMBOLS[symbol][1]
    else:
        symbol = list(SYMBOLS)[k % 4]
        ref = SYMBOLS[symbol]
    buy = (k // 4) % 2 == 0
    wiggle = Decimal(k % 7) / 100  # no two orders alike within a second (the risk's duplicate check)
    if flow == "filling":  # marketable IOC: crosses the venue's house levels (a few cents around ref)
        px = ref * Decimal("1.01") - wiggle if buy else ref * Decimal("0.99") + wiggle
        tif = "3"
    else:  # resting DAY limit, 5% away: inside the risk's 10% collar, far from the venue's levels
        px = ref * Decimal("0.95") - wiggle if buy else ref * Decimal("1.05") + wiggle
        tif = "0"
    return (f"8=FIX.4.4{SOH}9=0{SOH}35=D{SOH}11={cl}{SOH}21=1{SOH}55={symbol}{SOH}54={'1' if buy else '2'}{SOH}"
            f"60={ts}{SOH}38={1 + k % 89}{SOH}40=2{SOH}44={px:.2f}{SOH}59={tif}{SOH}10=000{SOH}")


def utc_now() -> str:
    t = datetime.now(UTC)
    return t.strftime("%Y%m%d-%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def percentiles(xs: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles over every order; +inf (unanswered, rejected) sorts last and shows."""
    if not xs:
        return {}
    xs = sorted(xs)
    n = len(xs)
    pick = lambda q: xs[max(0, math.ceil(q * n) - 1)]  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "p99.9": pick(0.999), "max": xs[-1], "n": n}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat; nan when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_children(pid: int) -> float:
    """cpu_seconds of a process's live children (the engine's projector process)."""
    try:
        kids = [int(k) for t in Path(f"/proc/{pid}/task").iterdir()
                for k in (t / "children").read_text().split()]
    except OSError:
        kids = []
    return sum(c for c in map(cpu_seconds, kids) if c == c)


def cpu_seconds_tree(pid: int) -> float:
    """cpu_seconds of a process plus its live children's (the engine's projector process is its work too)."""
    return cpu_seconds(pid) + cpu_seconds_children(pid)


MACHINE = "machine"
PROJECTOR = "engine's projector"
OTHERS = "rest of the machine"


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or iowait) since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # user..steal minus idle, iowait


def cpu_shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """% of one core each process used over `seconds`, and what the rest of the machine used meanwhile
    (PostgreSQL's server processes, other people's work on a shared machine)."""
    out = {k: 100 * (after[k] - before[k]) / seconds for k in before if k != MACHINE}
    # "engine's projector" is part of "engine": not counted twice
    out[OTHERS] = (100 * (after[MACHINE] - before[MACHINE]) / seconds
                   - sum(v for k, v in out.items() if v == v and k != PROJECTOR))
    return out


@dataclass
class Run:
    """One closed or open loop run against one target."""

    kind: str  # closed | open
    flow: str
    rate: float  # open loop: orders/s asked for
    seconds: float
    sent: int = 0
    acked: int = 0  # closed loop: acks inside the window; open loop: acked by the deadline
    ended: int = 0  # ended (filled or canceled), not rejected; same windows
    filled: int = 0  # got at least one fill
    no_fill: int = 0  # filling flow: ended (IOC canceled) without any fill
    rejected: int = 0
    unanswered: int = 0  # no final answer (filling: ended; resting: acked) by the deadline
    answered_late: int = 0  # of those, answered while we drained afterwards
    acks_per_s: float = 0.0
    ended_per_s: float = 0.0
    achieved: float = 0.0  # open loop: orders/s actually sent
    late_sends: int = 0  # open loop: sent more than 1 ms after they were due
    max_send_lag_ms: float = 0.0
    stalls: int = 0  # closed loop: a session waited 1 s for a window slot
    ack: dict[str, float] = field(default_factory=dict)  # microseconds from due
    fill: dict[str, float] = field(default_factory=dict)
    ack_from_send: dict[str, float] = field(default_factory=dict)  # the old way, for comparison only
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core over the run
    cpu_us_per_order: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.unanswered > 0 or self.rejected > 0

    def label(self) -> str:
        return f"closed loop {self.flow}" if self.kind == "closed" else f"open {self.rate:.0f}/s {self.flow}"


class Generator:
    def __init__(self, port: int, sessions: int, var: Path, passwords: dict[str, str], grace: float,
                 drain: float, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        self.comps = [f"CLIENT{i}" for i in range(1, sessions + 1)]
        var.mkdir(parents=True, exist_ok=True)
        lines = ["[DEFAULT]", "ConnectionType=initiator", "SocketConnectHost=127.0.0.1", f"SocketConnectPort={port}",
                 f"FileStorePath={var / 'store'}", "StartTime=00:00:00", "EndTime=00:00:00", "HeartBtInt=30",
                 "ReconnectInterval=1", "UseDataDictionary=N", "ResetOnLogon=Y", "SocketNodelay=Y",
                 "BeginString=FIX.4.4", "TargetCompID=FIXOMS", ""]
        for comp in self.comps:
            lines += ["[SESSION]", f"SenderCompID={comp}", ""]
        (var / "load.cfg").write_text("\n".join(lines))
        self.settings = fix.SessionSettings(str(var / "load.cfg"))
        self.app = Load(passwords)
        self.store = fix.FileStoreFactory(self.settings)
        self.initiator: Any = fix.SocketInitiator(self.app, self.store, self.settings)
        self.run_id = f"{int(time.time()) % 100000:05d}"
        self.counter = 0
        self.lock = threading.Lock()
        self.grace, self.drain = grace, drain
        self.procs = procs
        self.last_recs: list[Rec] = []  # the last closed loop's orders

    def start(self, timeout: float = 30) -> None:
        self.initiator.start()
        deadline = time.monotonic() + timeout
        while len(self.app.logged_on) < len(self.comps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {sorted(self.app.logged_on)} logged on")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.initiator is not None:
            self.initiator.stop(True)
            self.initiator = None

    def send(self, comp: str, flow: str, due: int = 0, owner: str | None = None, preload: bool = False) -> Rec:
        with self.lock:
            self.counter += 1
            k = self.counter
        cl = f"{self.run_id}-{k}"
        raw = order_message(cl, k, utc_now(), flow, preload)
        rec = Rec(due, flow == "filling", owner)
        self.app.orders[cl] = rec
        rec.sent = time.perf_counter_ns()
        if not due:
            rec.due = rec.sent
        fix.Session.sendToTarget(fix.Message(raw, False), self.app.sids[comp])
        return rec

    def cpu(self) -> dict[str, float]:
        out = {name: cpu_seconds_tree(p.pid) for name, p in self.procs.items()}
        if "engine" in self.procs:
            out[PROJECTOR] = cpu_seconds_children(self.procs["engine"].pid)
        out["load generator"] = cpu_seconds(os.getpid())
        out[MACHINE] = machine_busy_seconds()
        return out

    def _wait(self, recs: list[Rec], until_ns: int) -> int:
        """Wait until every order of `recs` has its final answer or until `until_ns`; returns when."""
        pending = [r for r in recs if not r.answered()]
        while pending and time.perf_counter_ns() < until_ns:
            time.sleep(0.01)
            pending = [r for r in pending if not r.answered()]
        return time.perf_counter_ns()

    def _close(self, run: Run, recs: list[Rec], deadline: int) -> None:
        """Count rejects and unanswered orders (answered after `deadline` counts as unanswered), then
        wait up to --drain seconds more for stragglers so that runs do not overlap."""
        run.sent = len(recs)
        run.rejected = sum(1 for r in recs if r.rej and r.rej <= deadline)
        late = [r for r in recs if not r.answered() or r.answered() > deadline]
        run.unanswered = len(late)
        if late:
            self._wait(late, time.perf_counter_ns() + int(self.drain * 1e9))
            run.answered_late = sum(1 for r in late if r.answered())
        for r in recs:  # an answer still to come must not free a slot of the next run's windows
            r.owner = None

    # --- closed loop ----------------------------------------------------------------------------------
    def closed_loop(self, seconds: float, window: int, flow: str = "filling", count: int = 0,
                    preload: bool = False) -> Run:
        """Every session keeps `window` orders outstanding (an order holds its slot until it ends, or
        is acked for a resting order, or is rejected) for `seconds` (or until `count` orders are sent)."""
        run = Run("closed", flow, 0.0, seconds)
        self.app.windows = {c: threading.Semaphore(window) for c in self.comps}
        stop = threading.Event()
        stalls = collections.Counter[str]()
        recs: list[Rec] = []
        budget = [count]

        def loop(comp: str) -> None:
            sem = self.app.windows[comp]
            while not stop.is_set():
                if not sem.acquire(timeout=1):
                    stalls[comp] += 1
                    continue
                if count:
                    with self.lock:
                        if budget[0] <= 0:
                            stop.set()
                            sem.release()
                            return
                        budget[0] -= 1
                recs.append(self.send(comp, flow, owner=comp, preload=preload))

        threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in self.comps]
        cpu0 = self.cpu()
        t0 = time.perf_counter_ns()
        for t in threads:
            t.start()
        if count:
            while not stop.wait(0.05):
                pass
        else:
            stop.wait(seconds)
        t1 = time.perf_counter_ns()
        cpu1 = self.cpu()
        stop.set()
        for t in threads:
            t.join(5)
        deadline = t1 + int(self.grace * 1e9)
        self._wait(recs, deadline)
        elapsed = (t1 - t0) / 1e9
        run.seconds = elapsed
        run.acked = sum(1 for r in recs if r.ack and t0 <= r.ack <= t1)
        run.ended = sum(1 for r in recs if r.end and not r.rej and t0 <= r.end <= t1)
        run.filled = sum(1 for r in recs if r.fill and t0 <= r.fill <= t1)
        run.acks_per_s, run.ended_per_s = run.acked / elapsed, run.ended / elapsed
        run.cpu_us_per_order = {k: 1e6 * (cpu1[k] - cpu0[k]) / max(1, run.ended) for k in cpu0 if k != MACHINE}
        run.stalls = sum(stalls.values())
        run.cpu = cpu_shares(cpu0, cpu1, elapsed)
        self._close(run, recs, deadline)
        self.last_recs = recs
        return run

    # --- open loop ------------------------------------------------------------------------------------
    def open_loop(self, rate: float, seconds: float, flow: str) -> tuple[Run, list[Rec]]:
        """Order i is due at t0 + i/rate (round robin over the sessions) and sent as soon as it is due
        (at once, if the generator is behind); latency is measured from when it was due."""
        run = Run("open", flow, rate, seconds)
        n = max(1, int(rate * seconds))
        step = 1e9 / rate
        recs: list[Rec] = []
        lag_max = 0
        late = 0
        _LIBC.prctl(29, 1000)  # PR_SET_TIMERSLACK 1 us (default 50 us): this thread wakes closer to `due`
        cpu0 = self.cpu()
        t0 = time.perf_counter_ns() + 2_000_000
        for i in range(n):
            due = t0 + int(i * step)
            delay = due - time.perf_counter_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            else:
                lag_max = max(lag_max, -delay)
                if -delay > 1_000_000:
                    late += 1
            recs.append(self.send(self.comps[i % len(self.comps)], flow, due))
        t_sent = time.perf_counter_ns()
        deadline = max(t_sent, t0 + int(n * step)) + int(self.grace * 1e9)
        t_done = self._wait(recs, deadline)
        cpu1 = self.cpu()
        busy = (t_done - t0) / 1e9
        run.achieved = n / ((t_sent - t0) / 1e9) if t_sent > t0 else 0.0
        run.late_sends, run.max_send_lag_ms = late, lag_max / 1e6
        run.cpu = cpu_shares(cpu0, cpu1, busy)
        run.cpu_us_per_order = {k: 1e6 * (cpu1[k] - cpu0[k]) / n for k in cpu0 if k != MACHINE}
        ok = lambda t: t and t <= deadline  # noqa: E731
        run.acked = sum(1 for r in recs if ok(r.ack))
        run.ended = sum(1 for r in recs if ok(r.end) and not r.rej)
        run.filled = sum(1 for r in recs if ok(r.fill))
        run.no_fill = sum(1 for r in recs if ok(r.end) and not r.rej and not r.fill) if flow == "filling" else 0
        run.ack = percentiles([(r.ack - r.due) / 1000 if ok(r.ack) else INF for r in recs])
        run.ack_from_send = percentiles([(r.ack - r.sent) / 1000 if ok(r.ack) else INF for r in recs])
        if flow == "filling":  # over the orders that filled, and the unanswered and rejected ones (+inf);
            # an IOC that ended without a fill is counted (no_fill), not timed
            run.fill = percentiles([(r.fill - r.due) / 1000 if ok(r.fill) else INF for r in recs
                                    if ok(r.fill) or not (ok(r.end) and not r.rej)])
        self._close(run, recs, deadline)
        return run, recs

    def mass_cancel(self, recs: list[Rec], timeout: float = 60) -> tuple[int, int]:
        """OrderMassCancelRequest for each of the flows' symbols (MassCancelRequestType 1: --preload's
        resting orders on their own symbols stay) on every session; waits until `recs` have ended.
        Returns (canceled, still working)."""
        working = [r for r in recs if r.ack and not r.end and not r.rej]
        for comp in self.comps:
            for symbol in SYMBOLS:
                with self.lock:
                    self.counter += 1
                    k = self.counter
                raw = (f"8=FIX.4.4{SOH}9=0{SOH}35=q{SOH}11={self.run_id}-MC{k}{SOH}530=1{SOH}55={symbol}{SOH}"
                       f"60={utc_now()}{SOH}10=000{SOH}")
                fix.Session.sendToTarget(fix.Message(raw, False), self.app.sids[comp])
        deadline = time.monotonic() + timeout
        left = working
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [r for r in left if not r.end and not r.rej]
        return len(working) - len(left), len(left)


# --- processes ----------------------------------------------------------------------------------------
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the bench process dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    _LIBC.prctl(1, signal.SIGTERM)


def spawn(cmd: list[str], log: Path, cwd: Path | None = None, stdout_to_log: bool = True,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out if stdout_to_log else subprocess.DEVNULL, stderr=out,
                                env={**ENV, **(env or {})}, preexec_fn=_die_with_parent)


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def engine_config(tmp: Path, port: int, venue_ports: dict[str, int], url: str, sessions: int,
                  nagle: bool = False, extra_symbols: dict[str, tuple[str, Decimal]] | None = None,
                  cpus: tuple[int, ...] = ()) -> Path:
    """sessions.cfg: the repository's [DEFAULT] and non-client sessions, our CLIENT1..n (FIX 4.4);
    fixoms.toml: the repository's with our database, accounts, no per-session rate limit, no open-order
    count limit, still venues, metrics on a free port, and `extra_symbols` (name: (venue, reference))."""
    blocks = re.split(r"(?m)^\[SESSION\]", (ROOT / "sessions.cfg").read_text())  # not the comments' mentions
    kept = [b for b in blocks[1:] if not re.search(r"(?m)^TargetCompID=CLIENT\d+\s*$", b)]
    cfg = blocks[0] + "".join(f"[SESSION]\nConnectionType=acceptor\nBeginString=FIX.4.4\nTargetCompID=CLIENT{i}\n"
                              f"SocketAcceptPort={port}\nDataDictionary=FIX44.xml\n\n" for i in range(1, sessions + 1))
    cfg += "".join("[SESSION]" + b for b in kept)
    cfg = re.sub(r"(?m)^SocketAcceptPort=\d+", f"SocketAcceptPort={port}", cfg)
    cfg = re.sub(r"(?m)^SocketNodelay=.*\n", "", cfg)  # ours, whatever the repository's says
    # QuickFIX 1.16 leaves Nagle on unless told: back-to-back messages then wait for a delayed ACK
    cfg = cfg.replace("[DEFAULT]\n", f"[DEFAULT]\nSocketNodelay={'N' if nagle else 'Y'}\n", 1)
    for name, p in venue_ports.items():
        cfg = re.sub(rf"(TargetCompID={re.escape(name)}\n(?:.*\n)*?SocketConnectPort=)\d+", rf"\g<1>{p}", cfg)
    (tmp / "sessions.cfg").write_text(cfg)
    toml = (ROOT / "fixoms.toml").read_text()
    if cpus:
        toml = toml.replace("[engine]\n", f"[engine]\ncpus = {list(cpus)}\n", 1)
    toml = re.sub(r'(?m)^url = "sqlite:///var/fixoms.db"', f'url = "{url}"', toml)
    toml = re.sub(r"(?m)^session_submit_rate\s*=.*$", 'session_submit_rate = "none"', toml)
    toml = re.sub(r"(?m)^session_modify_rate\s*=.*$", 'session_modify_rate = "none"', toml)
    # the check still runs; resting runs and --preload keep more than 1,000 orders per account and symbol
    toml = re.sub(r"(?m)^max_open_orders\s*=\s*\d+", "max_open_orders = 1000000", toml)
    toml = re.sub(r"(?m)^activity_ms\s*=.*$", "activity_ms = 0", toml)
    if os.environ.get("FIXOMS_BENCH_PROJECTOR"):  # compare the journal's projector modes
        toml = re.sub(r'(?m)^projector = "\w+"', f'projector = "{os.environ["FIXOMS_BENCH_PROJECTOR"]}"', toml)
    toml = re.sub(r"(?m)^latency_ms\s*=.*$", "latency_ms = 0", toml)
    toml = re.sub(r"(?ms)^(\[metrics\]\nport = )\d+", rf"\g<1>{free_port()}", toml)
    accounts = "".join(f'CLIENT{i} = "ACC-B{i}"\n' for i in range(1, sessions + 1))
    toml = re.sub(r"(?ms)^\[accounts\]\n.*?(?=^\[)", f"[accounts]\n{accounts}\n", toml)
    if extra_symbols:
        lines = "".join(f'{s} = {{ venue = "{v}", reference = "{ref}" }}\n' for s, (v, ref) in extra_symbols.items())
        toml = re.sub(r"(?m)^\[symbols\]\n", lambda m: m.group(0) + lines, toml, count=1)
    for name, p in venue_ports.items():
        toml = re.sub(rf"(?ms)(^\[sim_venues\.{re.escape(name)}\]\nport = )\d+", rf"\g<1>{p}", toml)
    (tmp / "fixoms.toml").write_text(toml)
    return tmp / "fixoms.toml"


@dataclass
class Target:
    name: str
    kind: str  # echo | engine
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0
    passwords: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def echo_target(tmp: Path, sessions: int) -> Iterator[Target]:
    port = free_port()
    var = tmp / "echo"
    var.mkdir(parents=True, exist_ok=True)
    log = var / "echo.log"
    cmd = [sys.executable, str(ROOT / "bench" / "echo_acceptor.py"), "--port", str(port), "--sessions", str(sessions),
           "--var-dir", str(var), "--fill-ioc"]
    proc = spawn(cmd, log)
    try:
        wait_listening(port, proc, log)
        yield Target("echo", "echo", {"echo": proc}, port, log=log)
    finally:
        stop_process(proc)


def _journal_api() -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """(make_engine, create_schema, set_credential): oms.schema/oms.queries, or oms.journal before them."""
    try:
        from oms.queries import set_credential
        from oms.schema import create_schema, make_engine
    except ImportError:
        from oms.journal import create_schema, make_engine, set_credential  # type: ignore[attr-defined,no-redef]
    return make_engine, create_schema, set_credential


@contextmanager
def engine_target(tmp: Path, sessions: int, db: str, nagle: bool = False, switch_interval: float | None = None,
                  preload_finished: int = 0, preload_resting: bool = False, outbox: bool = True,
                  pure: bool = False, pin: bool = False) -> Iterator[Target]:
    make_engine, create_schema, set_credential = _journal_api()
    var = tmp / (f"engine-{db}{'-nagle' if nagle else ''}{'' if outbox else '-no-outbox'}{'-pure' if pure else ''}"
                 f"{'-pinned' if pin else ''}")
    usable = sorted(os.sched_getaffinity(0))
    engine_cpus, others = (usable[-1:], set(usable[:-1])) if pin else ([], set())
    var.mkdir(parents=True, exist_ok=True)
    pg_db = f"fixoms_bench_{os.getpid()}"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    notes: list[str] = []
    try:
        if db == "postgresql":
            pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
            pg_admin(f"CREATE DATABASE {pg_db}")
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_db}"
        else:
            url = f"sqlite:///{var / 'journal.db'}"
        if preload_finished:
            sys.path.insert(0, str(ROOT / "bench"))
            from restart_bench import populate

            took = populate(url, preload_finished, 0)
            notes.append(f"journal preloaded with {preload_finished:,} filled orders in {took:.1f}s (Journal.commit)")
            print(f"  {notes[-1]}", flush=True)
        port = free_port()
        venue_ports = {"VENUE-A": free_port(), "VENUE-B": free_port()}
        config = engine_config(var, port, venue_ports, url, sessions, nagle,
                               PRELOAD_SYMBOLS if preload_resting else None, tuple(engine_cpus))
        passwords = {f"CLIENT{i}": f"bench-{i}" for i in range(1, sessions + 1)}
        sa = make_engine(url)
        create_schema(sa)
        for comp, pw in passwords.items():
            set_credential(sa, comp, comp, pw, frozenset(), "bench")
        sa.dispose()
        for name, vport in venue_ports.items():
            procs[name] = spawn([*CLI, "--config", str(config), "venue-sim", "--name", name, "--port", str(vport),
                                 "--var-dir", str(var / "venues" / name)], var / f"{name}.log", cwd=var)
            wait_listening(vport, procs[name], var / f"{name}.log")
        # --switch-interval: the same `fixoms run`, with the GIL handed over more often than every 5 ms
        launch = ([sys.executable, "-c", f"import sys; sys.setswitchinterval({switch_interval / 1000}); "
                   "from fixoms.cli import main; sys.argv[0] = 'fixoms'; main()"]
                  if switch_interval else CLI)
        log = var / "engine.log"
        procs["engine"] = spawn([*launch, "--config", str(config), "--log-level", "WARNING", "run"], log, cwd=var,
                                stdout_to_log=False,
                                env={**({} if outbox else {"FIXOMS_FIX_OUTBOX": "off"}),
                                     **({"FIXOMS_PURE_PYTHON": "1"} if pure else {})})
        wait_listening(port, procs["engine"], log, timeout=120)
        time.sleep(1.0)  # the venues log on and send their books
        if pin:  # the engine thread's CPU to itself: the venues and the load generator on the others
            for name in ("VENUE-A", "VENUE-B"):
                pin_threads(procs[name].pid, others)
            pin_threads(os.getpid(), others)
        extra = ((", SocketNodelay=N" if nagle else "") + (f", switch {switch_interval} ms" if switch_interval else "")
                 + ("" if outbox else ", no outbox") + (", pure Python" if pure else "")
                 + (f", engine thread on CPU {engine_cpus[0]}" if pin else ""))
        yield Target(f"engine ({db}{extra})", "engine", procs, port, passwords, log, notes)
    finally:
        if pin:
            pin_threads(os.getpid(), set(usable))
        for name in ("engine", "VENUE-A", "VENUE-B"):
            if name in procs:
                stop_process(procs[name])
        if db == "postgresql":
            with suppress(Exception):
                pg_admin(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` onto `cpus` (threads it starts later inherit their creator's)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with suppress(OSError):  # ended meanwhile
            os.sched_setaffinity(int(task), cpus)


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@contextmanager
def scratch_pg(name: str) -> Iterator[str]:
    """A PostgreSQL database of a benchmark's own on 127.0.0.1 (the shared `test` one is the tests'): made
    afresh, its URL yielded, dropped afterwards."""
    pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with suppress(Exception):
            pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_reachable() -> str | None:
    try:
        pg_admin("SELECT 1")
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


def log_problems(log: Path | None, tail: int = 15) -> list[str]:
    """ERROR / CRITICAL / Traceback lines of a target's log (the last `tail`), with their count."""
    if log is None or not log.exists():
        return []
    bad = [line for line in log.read_text(errors="replace").splitlines()
           if re.search(r"\b(ERROR|CRITICAL)\b|Traceback", line)]
    return ([f"{len(bad)} ERROR/Traceback lines in {log.name}, the last {min(tail, len(bad))}:"] + bad[-tail:]) \
        if bad else []


# --- profiling -------------------------------------------------------------------------------------------
class Profiler:
    """py-spy record on a pid for the duration of a `with` block; the top functions afterwards."""

    def __init__(self, pid: int, out: Path, seconds: float, every_thread: bool = False) -> None:
        self.pid, self.out, self.seconds, self.every_thread = pid, out, seconds, every_thread
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if exe is None:
            print("  (py-spy not found: pip install py-spy into .venv for --profile)")
            return self
        # --gil: only the thread holding the GIL is sampled, i.e. where the engine's Python time goes;
        # every_thread: all threads that are not idle, with their C/C++ frames
        mode = ["--native"] if self.every_thread else ["--gil"]
        self.proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--duration", str(int(self.seconds)),
                                      "--rate", "200", "--format", "raw", "--threads", *mode, "--output",
                                      str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(10)

    def report(self, top: int = 15) -> None:
        if not self.out.exists():
            print("  (no profile written)")
            return
        by_thread: collections.Counter[str] = collections.Counter()
        own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            thread = re.sub(r"thread \(0x[0-9a-fA-F]+\)|\(\d+\)|thread", "", frames[0]).strip(" :") or "?"
            frames = [shorten(f) for f in frames[1:]]
            total += n
            by_thread[thread] += n
            for scope in (thread, "*"):
                if frames:
                    own[scope][frames[-1]] += n
                    for f in set(frames):
                        inclusive[scope][f] += n
        if not total:
            print("  (no samples)")
            return
        print(f"  py-spy --gil: {total} samples at 200/s of the thread holding the GIL - share by thread:")
        for name, n in by_thread.most_common(6):
            print(f"    {100 * n / total:5.1f}%  {name}")
        engine = by_thread.get("oms-engine", 0)
        if engine:
            print(f"  oms-engine thread, functions including callees (% of that thread's {engine} samples):")
            skip = ("Thread.", "_bootstrap", "Engine._run ")
            for name, n in [x for x in inclusive["oms-engine"].most_common(top + 10) if not x[0].startswith(skip)][:top]:
                print(f"    {100 * n / engine:5.1f}%  {name}")
            print("  oms-engine thread, own time:")
            for name, n in own["oms-engine"].most_common(top):
                print(f"    {100 * n / engine:5.1f}%  {name}")
        print("  whole process, own time (% of all samples):")
        for name, n in own["*"].most_common(top):
            print(f"    {100 * n / total:5.1f}%  {name}")


def shorten(frame: str) -> str:
    """'process (oms/engine.py:201)' with the path cut to the package."""
    m = re.match(r"(.*) \((.*):(\d+)\)$", frame)
    if not m:
        return frame
    name, path, _line = m.groups()
    for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# --- the runs --------------------------------------------------------------------------------------------
@dataclass
class Result:
    target: Target
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: int = 0  # load generator callback errors
    profiler: Profiler | None = None

    def run(self, kind: str, flow: str, rate: float = 0.0) -> Run | None:
        return next((r for r in self.runs if r.kind == kind and r.flow == flow and r.rate == rate), None)


def ms(x: float) -> str:
    """Microseconds as milliseconds, three significant digits or so; +inf as "inf"."""
    if x == INF:
        return "inf"
    x /= 1000
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def run_line(r: Run) -> str:
    head = f"  {r.label():<22}" + ("FAILED: " if r.failed else "")
    if r.kind == "closed":
        body = (f"{r.acks_per_s:7.0f} acked/s {r.ended_per_s:7.0f} ended/s ({r.filled / r.seconds:.0f}/s with a fill), "
                f"{r.sent} sent, {r.rejected} rejected, "
                f"{r.unanswered} unanswered" + (f", {r.stalls} window stalls" if r.stalls else ""))
    else:
        ack = r.ack
        body = (f"ack p50 {ms(ack['p50'])} p99 {ms(ack['p99'])} p99.9 {ms(ack['p99.9'])} max {ms(ack['max'])} ms"
                + (f"; fill p50 {ms(r.fill['p50'])} p99 {ms(r.fill['p99'])} ms" if r.fill else "")
                + f"; {r.sent} sent at {r.achieved:.0f}/s, {r.rejected} rejected, {r.unanswered} unanswered"
                + (f", {r.no_fill} ended without a fill" if r.no_fill else "")
                + (f" ({r.answered_late} answered later)" if r.unanswered else "")
                + (f", {r.late_sends} sent >1 ms late (max {r.max_send_lag_ms:.1f} ms)" if r.late_sends else "")
                + f"\n{' ' * 24}(ack from the actual send, for comparison: p50 {ms(r.ack_from_send['p50'])} "
                  f"p99 {ms(r.ack_from_send['p99'])} ms)")
    cpu = ", ".join(f"{k} {v:.0f}%" for k, v in r.cpu.items() if v == v)
    return f"{head}{body}\n{' ' * 24}cpu (% of a core): {cpu}" + \
        (f"\n{' ' * 24}{r.note}" if r.note else "")


def measure(target: Target, args: argparse.Namespace, tmp: Path, preload_resting: int = 0,
            profile: Callable[[], Profiler | None] | None = None) -> Result:
    res = Result(target, notes=list(target.notes))
    gen = Generator(target.port, args.sessions, tmp / f"load-{re.sub(r'[^A-Za-z0-9]+', '_', target.name)}",
                    target.passwords, args.grace, args.drain, target.procs)
    print(f"\n== {target.name}", flush=True)
    gen.start()
    try:
        warm, _ = gen.open_loop(200, args.warmup, "filling")  # imports, caches, the venues' books
        if warm.failed:
            res.notes.append(f"warm-up: {warm.rejected} rejected, {warm.unanswered} unanswered of {warm.sent}")
            print(f"  {res.notes[-1]}")
        preloaded: list[Rec] = []
        if preload_resting and target.kind == "engine":
            t = time.perf_counter()
            pre = gen.closed_loop(0, args.window, "resting", count=preload_resting, preload=True)
            res.notes.append(f"{pre.sent:,} resting orders placed through FIX on {', '.join(PRELOAD_SYMBOLS)} in "
                             f"{time.perf_counter() - t:.1f}s ({pre.rejected} rejected, {pre.unanswered} unanswered);"
                             " they stay working during the runs")
            print(f"  {res.notes[-1]}", flush=True)
            if pre.failed:
                pre.note = "placing the preloaded resting orders"
                res.runs.append(pre)
            preloaded = gen.last_recs
        profiler = profile() if profile and args.profile == "closed" else None
        if profiler is not None:
            with profiler:
                closed = gen.closed_loop(args.seconds, args.window)
        else:
            closed = gen.closed_loop(args.seconds, args.window)
        res.profiler = profiler
        res.runs.append(closed)
        print(run_line(closed), flush=True)
        for flow in args.flows:
            for rate in args.rates:
                time.sleep(0.5)
                profiler = profile() if profile and args.profile == "open" and res.profiler is None else None
                if profiler is not None:
                    res.profiler = profiler
                    with profiler:
                        run, recs = gen.open_loop(rate, args.seconds, flow)
                else:
                    run, recs = gen.open_loop(rate, args.seconds, flow)
                if flow == "resting" and target.kind == "engine":
                    canceled, left = gen.mass_cancel(recs)
                    run.note = f"afterwards, OrderMassCancelRequest: {canceled} canceled" + \
                        (f", {left} still working after 60 s" if left else "")
                res.runs.append(run)
                print(run_line(run), flush=True)
        res.errors = gen.app.errors
        if preload_resting and target.kind == "engine":
            gone = sum(1 for r in preloaded if r.end or r.rej)
            res.notes.append(f"of the {len(preloaded):,} preloaded resting orders, {gone} ended during the runs")
            print(f"  {res.notes[-1]}")
        for text, n in gen.app.texts.most_common(5):
            res.notes.append(f"{n} x {text}")
            print(f"  {res.notes[-1]}")
        other = {k: v for k, v in gen.app.other.items() if k != "r"}  # OrderMassCancelReports: expected
        if gen.app.errors or gen.app.unknown or other or gen.app.logouts:
            res.notes.append(f"load generator: {gen.app.errors} callback errors, {gen.app.unknown} reports for "
                             f"unknown ClOrdIDs, other messages by MsgType {other}, {gen.app.logouts} logouts")
            print(f"  {res.notes[-1]}")
    finally:
        gen.stop()
    return res


# --- the table -------------------------------------------------------------------------------------------
def table(engine: Result, echo: Result | None, args: argparse.Namespace) -> list[str]:
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, e: Any, b: Any, ratio: str = "") -> None:
        rows.append((label, e, b, ratio))

    def pct(e: float, b: float) -> str:
        return f"{100 * e / b:.0f}%" if b else "-"

    def times(e: float, b: float) -> str:
        if e == INF or b == INF:
            return "-"
        return (f"{e / b:.1f}x" if e / b < 10 else f"{e / b:,.0f}x") if b else "-"

    def num(x: float) -> str:
        return f"{x:,.0f}"

    ec = engine.run("closed", "filling")
    bc = echo.run("closed", "filling") if echo else None
    if ec:
        head = f"closed loop, window {args.window}/session"
        add(f"{head}: acked/s", num(ec.acks_per_s), num(bc.acks_per_s) if bc else "-",
            pct(ec.acks_per_s, bc.acks_per_s) if bc else "")
        add("  ended/s (filled or IOC rest canceled)", num(ec.ended_per_s), num(bc.ended_per_s) if bc else "-",
            pct(ec.ended_per_s, bc.ended_per_s) if bc else "")
        add("  filled/s (at least one fill)", num(ec.filled / ec.seconds),
            num(bc.filled / bc.seconds) if bc else "-", pct(ec.filled / ec.seconds, bc.filled / bc.seconds) if bc else "")
        add("  rejected / unanswered", f"{ec.rejected} / {ec.unanswered}",
            f"{bc.rejected} / {bc.unanswered}" if bc else "-")
        add("  cpu % of a core: engine | echo", f"{ec.cpu.get('engine', 0):.0f}",
            f"{bc.cpu.get('echo', 0):.0f}" if bc else "-")
        add("    of it, the projector process", f"{ec.cpu.get(PROJECTOR, 0):.0f}", "")
        add("  cpu % of a core: VENUE-A, VENUE-B", f"{ec.cpu.get('VENUE-A', 0):.0f}, {ec.cpu.get('VENUE-B', 0):.0f}", "")
        add("  cpu % of a core: load generator", f"{ec.cpu.get('load generator', 0):.0f}",
            f"{bc.cpu.get('load generator', 0):.0f}" if bc else "-")
        add(f"  cpu % of a core: {OTHERS}", f"{ec.cpu.get(OTHERS, 0):.0f}", f"{bc.cpu.get(OTHERS, 0):.0f}" if bc else "-")
        add("  cpu us per order ended: engine | echo", f"{ec.cpu_us_per_order.get('engine', 0):,.0f}",
            f"{bc.cpu_us_per_order.get('echo', 0):,.0f}" if bc else "-",
            times(ec.cpu_us_per_order.get('engine', 0), bc.cpu_us_per_order.get('echo', 0)) if bc else "")
    for flow in args.flows:
        for rate in args.rates:
            e = engine.run("open", flow, rate)
            b = echo.run("open", flow, rate) if echo else None
            if e is None:
                continue
            head = f"open loop {rate:,.0f}/s, {flow}"
            keys = [("ack", "p50"), ("ack", "p99"), ("ack", "p99.9")] + \
                ([("fill", "p50"), ("fill", "p99")] if flow == "filling" else [])
            for i, (what, q) in enumerate(keys):
                ev_, bv = getattr(e, what).get(q, INF), getattr(b, what).get(q, INF) if b else INF
                add(f"{head if i == 0 else ' ' * 2}{': ' if i == 0 else ''}{what} {q} (ms)", ms(ev_),
                    ms(bv) if b else "-", times(ev_, bv) if b else "")
            add("  sent / rejected / unanswered", f"{e.sent} / {e.rejected} / {e.unanswered}",
                f"{b.sent} / {b.rejected} / {b.unanswered}" if b else "-")
            if flow == "filling":
                add("  ended / of them filled", f"{e.ended} / {e.filled}", f"{b.ended} / {b.filled}" if b else "-")
            add("  cpu % of a core: engine | echo", f"{e.cpu.get('engine', 0):.0f}",
                f"{b.cpu.get('echo', 0):.0f}" if b else "-",
                times(e.cpu.get('engine', 0), b.cpu.get('echo', 0)) if b else "")
            add("    of it, the projector process", f"{e.cpu.get(PROJECTOR, 0):.0f}", "", "")
            add("  cpu % of a core: VENUE-A, VENUE-B",
                f"{e.cpu.get('VENUE-A', 0):.0f}, {e.cpu.get('VENUE-B', 0):.0f}", "", "")
            add("  cpu % of a core: load generator", f"{e.cpu.get('load generator', 0):.0f}",
                f"{b.cpu.get('load generator', 0):.0f}" if b else "-")
            add(f"  cpu % of a core: {OTHERS}", f"{e.cpu.get(OTHERS, 0):.0f}", f"{b.cpu.get(OTHERS, 0):.0f}" if b else "-")
            add("  cpu us per order: engine | echo", f"{e.cpu_us_per_order.get('engine', 0):,.0f}",
                f"{b.cpu_us_per_order.get('echo', 0):,.0f}" if b else "-",
                times(e.cpu_us_per_order.get('engine', 0), b.cpu_us_per_order.get('echo', 0)) if b else "")
    w0 = max(len(r[0]) for r in rows)
    w = [max(len(r[i]) for r in rows + [("", "engine", "echo", "engine/echo")]) for i in range(4)]
    lines = [f"{'':<{w0}}  {'engine':>{w[1]}}  {'echo':>{w[2]}}  {'engine/echo':>{w[3]}}"]
    lines += [f"{a:<{w0}}  {e:>{w[1]}}  {b:>{w[2]}}  {r:>{w[3]}}" for a, e, b, r in rows]
    return lines


def summary(results: list[Result], echo: Result | None, args: argparse.Namespace) -> bool:
    """Prints one table per engine target and the failures; True when every run passed."""
    ok = True
    for res in results:
        if res.target.kind != "engine":
            continue
        print(f"\n== {res.target.name} against the echo, same run: {args.sessions} sessions, "
              f"{args.seconds:g} s runs, grace {args.grace:g} s; latency from the intended send time, "
              "unanswered and rejected orders as +inf")
        for note in res.notes:
            print(f"   {note}")
        for line in table(res, echo, args):
            print("   " + line)
    failed = [(res.target.name, r) for res in ([echo] if echo else []) + results for r in res.runs if r.failed]
    if failed:
        ok = False
        print("\n== FAILED runs (unanswered or rejected orders)")
        for name, r in failed:
            print(f"  {name}: {r.label()}: {r.sent} sent, {r.rejected} rejected, {r.unanswered} unanswered "
                  f"after the run + {args.grace:g} s ({r.answered_late} answered later){' - ' + r.note if r.note else ''}")
    targets_met(results, echo)
    return ok


def targets_met(results: list[Result], echo: Result | None) -> None:
    """Issue 14's targets, as ratios to the echo of the same run: closed loop >= 35% of the echo's ended/s
    on SQLite, >= 30% on PostgreSQL; open loop at 500/s (each flow) engine CPU <= 35% of a core, ack p50
    <= the echo's + 0.5 ms (SQLite) / + 1.5 ms (PostgreSQL), ack p99 <= 5 ms; at 1,000/s ack p99 <= 10 ms."""
    lines = []
    bc = echo.run("closed", "filling") if echo else None

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for res in results:
        if res.target.kind != "engine":
            continue
        pg = "postgresql" in res.target.name
        share, slack_us = (0.30, 1500.0) if pg else (0.35, 500.0)
        name = res.target.name
        ec = res.run("closed", "filling")
        if ec and bc and bc.ended_per_s:
            ratio = ec.ended_per_s / bc.ended_per_s
            lines.append(f"  {name}: closed loop {ec.ended_per_s:,.0f} ended/s = {100 * ratio:.0f}% of the echo's "
                         f"{bc.ended_per_s:,.0f} (>= {100 * share:.0f}%): {verdict(ratio >= share)}")
        for flow in FLOWS:
            o = res.run("open", flow, 500.0)
            b = echo.run("open", flow, 500.0) if echo else None
            if o and o.ack and b and b.ack:
                cpu = o.cpu.get("engine", 0.0)
                ok = (cpu <= 35 and o.ack["p50"] <= b.ack["p50"] + slack_us and o.ack["p99"] <= 5000
                      and not o.failed)
                lines.append(f"  {name}: 500/s {flow}: cpu {cpu:.0f}% (<= 35), ack p50 {ms(o.ack['p50'])} ms "
                             f"(<= echo {ms(b.ack['p50'])} + {slack_us / 1000:g}), p99 {ms(o.ack['p99'])} ms (<= 5): "
                             f"{verdict(ok)}")
            o = res.run("open", flow, 1000.0)
            if o and o.ack:
                lines.append(f"  {name}: 1,000/s {flow}: ack p99 {ms(o.ack['p99'])} ms (<= 10): "
                             f"{verdict(o.ack['p99'] <= 10_000 and not o.failed)}")
    if lines:
        print("\n== against issue 14's targets")
        print("\n".join(lines))


def dump(path: Path, results: list[Result], echo: Result | None, args: argparse.Namespace) -> None:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and x == INF:
            return "inf"
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return x

    out = {"args": {k: v for k, v in vars(args).items() if isinstance(v, int | float | str | list | bool)},
           "targets": [{"name": r.target.name, "notes": r.notes,
                        "runs": [clean({**r2.__dict__, "failed": r2.failed}) for r2 in r.runs]}
                       for r in ([echo] if echo else []) + results]}
    path.write_text(json.dumps(out, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rate", default="500,1000", help="orders/s of the open loop runs, all sessions: 500,1000")
    parser.add_argument("--flow", choices=("both", *FLOWS), default="both", help="open loop flow(s)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each run")
    parser.add_argument("--window", type=int, default=50, help="outstanding orders per session (closed loop)")
    parser.add_argument("--grace", type=float, default=5, help="seconds after a run before an order is unanswered")
    parser.add_argument("--drain", type=float, default=30,
                        help="after a run with unanswered orders, wait up to this long for them (not counted)")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--preload", default="", metavar="N_FINISHED,N_RESTING",
                        help="journal the engine starts with (filled orders) and resting orders placed before the runs")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2.5 s runs, 3 s grace")
    parser.add_argument("--profile", nargs="?", const="closed", choices=("closed", "open"), default=None,
                        help="py-spy the engine during its closed loop run (open: its first open loop run)")
    parser.add_argument("--profile-all", action="store_true",
                        help="with --profile: every busy thread with native frames, not only the GIL's holder")
    parser.add_argument("--no-echo", action="store_true")
    parser.add_argument("--switch-interval", type=float, default=None, metavar="MS",
                        help="run the engine with sys.setswitchinterval(MS/1000) (default 5 ms) - an experiment")
    parser.add_argument("--pure-ab", action="store_true",
                        help="run each engine first with FIXOMS_PURE_PYTHON=1 (the compiled modules' sources)")
    parser.add_argument("--outbox-ab", action="store_true",
                        help="run each engine first with FIXOMS_FIX_OUTBOX=off (its thread sends each message itself)")
    parser.add_argument("--pin-ab", action="store_true",
                        help="run each engine a second time with [engine] cpus = [the last CPU] and the venues and "
                             "the load generator on the other CPUs: the engine thread on a core of its own")
    parser.add_argument("--nagle", action="store_true",
                        help="also run the engine with SocketNodelay=N (Nagle on) in its sessions.cfg [DEFAULT]")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rate.split(",") if r.strip()]
    args.flows = list(FLOWS) if args.flow == "both" else [args.flow]
    if args.quick:
        args.seconds, args.grace, args.drain = min(args.seconds, 2.5), min(args.grace, 3), min(args.drain, 10)
    args.warmup = 0.5 if args.quick else 1.0
    try:
        finished, resting = (int(x) for x in (args.preload or "0,0").split(","))
    except ValueError:
        parser.error("--preload N_FINISHED,N_RESTING, e.g. 100000,10000")
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the subprocesses and drop the database
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="fixoms-e2e-"))
    print(f"e2e: {ROOT}, {args.sessions} sessions, window {args.window}, {args.seconds:g} s runs, open loop at "
          f"{args.rate}/s ({', '.join(args.flows)}), grace {args.grace:g} s, {os.cpu_count()} cores"
          + (f", preload {finished:,} filled + {resting:,} resting" if finished or resting else "")
          + f"; load average {os.getloadavg()[0]:.1f}; folder {tmp}", flush=True)
    results: list[Result] = []
    echo: Result | None = None
    try:
        if not args.no_echo:
            with echo_target(tmp, args.sessions) as t:
                echo = measure(t, args, tmp)
                echo.notes += log_problems(t.log)
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            if db == "postgresql" and (why := pg_reachable()):
                print(f"\n== engine (postgresql): skipped, {why}")
                continue
            variants = [(False, True, False, False)] + ([(True, True, False, False)] if args.nagle else [])
            if args.outbox_ab:  # the engine thread sending each message itself first, as before the outbox
                variants.insert(0, (False, False, False, False))
            if args.pure_ab:  # the compiled modules' sources first, as before they were compiled
                variants.insert(0, (False, True, True, False))
            if args.pin_ab:  # then the engine thread on a core of its own
                variants.append((False, True, False, True))
            for nagle, outbox, pure, pin in variants:
                with engine_target(tmp, args.sessions, db, nagle, args.switch_interval, finished, bool(resting),
                                   outbox, pure, pin) as t:
                    pid = t.procs["engine"].pid
                    prof = (lambda pid=pid, db=db: Profiler(pid, tmp / f"profile-{db}.txt", args.seconds,
                                                               args.profile_all)) \
                        if args.profile and not nagle and outbox and not pure and not pin else None
                    r = measure(t, args, tmp, resting, prof)
                    results.append(r)
                    if r.profiler is not None:
                        r.profiler.report()
                    for name, p in t.procs.items():
                        if p.poll() is not None:
                            r.notes.append(f"{name} exited during the runs (status {p.returncode})")
                if t.log is not None:
                    r.notes += log_problems(t.log)
                    for name in ("VENUE-A", "VENUE-B"):
                        r.notes += log_problems(t.log.parent / f"{name}.log", 5)
        ok = summary(results, echo, args)
        if args.json:
            dump(args.json, results, echo, args)
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

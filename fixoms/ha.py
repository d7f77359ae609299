"""High availability: a primary/standby pair of `fixoms run` on one PostgreSQL journal.

Every HA engine starts as a candidate (`fixoms run --standby`, or [ha] enabled): it takes the instance's
lease if nobody holds it (oms.lease), else it stands by, following the journal's log (its lag is
reported in `ha_members` and on the metrics port) until the lease lapses or is released, and then takes
over: the normal start of an engine (fixoms.app.EngineApp) with its journal fenced by the lease and its
FIX sessions on QuickFIX's PostgreSQLStore in the same database, so each session continues its sequence
numbers and answers resend requests with what the old primary sent. The restart path does the rest:
replay of the log's tail, status requests to the venues for open children, PossResend of the last
batch's client messages.

An engine that loses the lease (a renewal finds another holder, an append is fenced, or the database
stayed out of reach for a whole lease) does not try to tear itself down: it logs one line and replaces
itself (execv, same pid and arguments plus --standby) with a fresh standby. Its sockets close with the
old image, so its clients and venues see a disconnect and go to the new primary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fixoms.admin_errors import AdminError
from fixoms.config import Config, ConfigError
from fixoms.held_ports import HeldPorts
from oms.journal import Journal, read_log
from oms.lease import (
    HAUnsupported,
    Lease,
    LeaseLost,
    LeaseRow,
    forget_member,
    lease_engine,
    log_head,
    members,
    new_holder_id,
    report_member,
    require_postgresql,
)
from oms.warm import WarmState

if TYPE_CHECKING:
    from fixoms.app import EngineApp

log = logging.getLogger(__name__)

# How many log records the standby reads at a time.
FOLLOW_BATCH = 500
# A standby counts as following if it reported within this many of its polls (plus a second).
STANDBY_FRESH_POLLS = 10
# A standby that could not read or keep its order state (oms.warm) reads it again after this.
WARM_RETRY_S = 30.0
# A standby's look (lease, log, report) that lasts this many leases (at least STUCK_MIN_S) is logged as
# stuck, with every thread's stack: a standby that silently never takes over is the worst HA fault.
STUCK_LEASES = 5
STUCK_MIN_S = 5.0


def check_supported(config: Config) -> None:
    """Refuse HA where it cannot work: a journal other than PostgreSQL, a QuickFIX without its
    PostgreSQL store. Raises ConfigError with the one line to show."""
    if not config.database_url.startswith("postgresql"):
        raise ConfigError("high availability (--standby, [ha] enabled) needs the journal on PostgreSQL: "
                          f"{config.database_url.split(':', 1)[0]} has no second engine to fail over to")
    from fix_engine.settings import quickfix_pg_store

    if not quickfix_pg_store():
        raise ConfigError("high availability needs QuickFIX built with its PostgreSQL store (libpq headers, "
                          "then `make install`): this build has none")


class StepDownRefused(AdminError):
    """A step-down that would leave nobody to take over (or asked of an engine that is not the primary)."""


class HAMetrics(Collector):
    """Lease state and standby lag, in the engine's registry once it runs (and on its own before)."""

    def __init__(self, node: HANode) -> None:
        self.node = node

    def collect(self) -> Iterator[GaugeMetricFamily]:
        n = self.node
        yield GaugeMetricFamily("fixoms_ha_primary", "1 while this engine holds the primary lease",
                                value=1.0 if n.role == "primary" else 0.0)
        yield GaugeMetricFamily("fixoms_ha_epoch", "lease epoch this engine holds (0: none)", value=n.lease.epoch)
        yield GaugeMetricFamily("fixoms_ha_lease_renewed_age_seconds",
                                "seconds since this primary last renewed its lease",
                                value=time.monotonic() - n.renewed_at if n.role == "primary" else 0.0)
        yield GaugeMetricFamily("fixoms_ha_standby_lag_batches", "journal batches the standby found unread at its "
                                "last look", value=n.lag_batches)
        yield GaugeMetricFamily("fixoms_ha_standby_lag_events", "events in those it read", value=n.lag_events)
        yield GaugeMetricFamily("fixoms_ha_standby_lag_seconds", "age of the oldest of them at that look",
                                value=n.lag_s)
        warm = n.warm
        yield GaugeMetricFamily("fixoms_ha_standby_state_warm", "1 while this standby keeps the order state from the "
                                "log (oms.warm): its takeover then reads no table", value=1.0 if warm is not None else 0.0)
        yield GaugeMetricFamily("fixoms_ha_standby_warm_orders", "working orders in that state",
                                value=len(warm.orders) if warm is not None else 0)
        held = n.held
        yield GaugeMetricFamily("fixoms_ha_standby_ports_held", "1 while this standby leaves client connections "
                                "waiting for its takeover (the primary's lease is late or free)",
                                value=1.0 if held is not None and held.holding else 0.0)
        yield GaugeMetricFamily("fixoms_ha_standby_connections_refused", "client connections this standby reset "
                                "while the primary renewed on time", value=held.refused if held is not None else 0)


@dataclass
class HAContext:
    """What EngineApp needs of HA: the lease that fences its journal and the settings of its FIX store."""

    lease: Lease
    on_fenced: Callable[[LeaseLost], None]
    node: HANode
    warm: WarmState | None = None  # the standby's order state: the engine's recovery starts from it


class HANode:
    """One HA engine process: stands by, takes over, holds the lease, steps down."""

    def __init__(self, config: Config, holder: str | None = None) -> None:
        check_supported(config)
        self.config = config
        self.holder = holder or new_holder_id()
        # QuickFIX's store connections (libpq) carry it as application_name: the store's fence (migration
        # 0005) lets only the lease holder's connections write.
        os.environ["PGAPPNAME"] = self.holder
        self.db = lease_engine(config.database_url, config.ha_lease_s)
        try:
            require_postgresql(self.db)
        except HAUnsupported as exc:
            raise ConfigError(str(exc)) from None
        self.lease = Lease(self.db, config.instance, self.holder, config.ha_lease_s)
        self.role = "standby"
        self.app: EngineApp | None = None
        # The client ports, listened on while standing by (fixoms.held_ports), handed to the acceptor at
        # the takeover.
        self.held: HeldPorts | None = None
        self.metrics = HAMetrics(self)
        self._server: Any = None
        self.seen_batch = 0
        # The order state, kept from the log while standing by (oms.warm); the takeover starts from it.
        self.warm: WarmState | None = None
        self._warm_retry_at = 0.0  # after a failure to read or keep it: when to read it again
        self.lag_batches = self.lag_events = 0
        self.lag_s = 0.0
        self.renewed_at = time.monotonic()
        self._leaving = threading.Lock()
        self.stop_event = threading.Event()
        self.step_down_requested = threading.Event()
        self._hold_done = threading.Event()
        self._look_started: float | None = None  # monotonic start of the standby's look under way

    # --- standby -----------------------------------------------------------------------------------
    def follow(self) -> int:
        """One look at the journal's log: read the records past what this standby has seen (at most
        FOLLOW_BATCH), apply them to its warm state (oms.warm), and report the lag it found (batches and
        their events behind, and the age of the oldest of them). Returns the batches still unread after
        the look."""
        warm = self._warm_up()
        with self.db.connect() as conn:
            head = log_head(conn, self.config.instance)
            if warm is None and head - self.seen_batch > FOLLOW_BATCH * 4:
                # Far behind with nothing to keep up to date: skip, do not read, the gap.
                self.seen_batch = head - FOLLOW_BATCH
            records = read_log(conn, self.config.instance, self.seen_batch, FOLLOW_BATCH)
        behind = head - self.seen_batch
        events = 0
        oldest: float | None = None
        for batch, record in records:
            if oldest is None:
                oldest = record.ts.timestamp()
            events += len(record.events)
            if warm is not None:
                warm = self._keep_warm(warm, batch, record)
            self.seen_batch = batch
        self.lag_batches = behind
        self.lag_events = events
        self.lag_s = 0.0 if oldest is None else max(0.0, time.time() - oldest)
        report_member(self.db, self.config.instance, self.holder, "standby", self.seen_batch, self.lag_batches,
                      self.lag_events, self.lag_s, forget_after_s=10 * self.lease.lease_s)
        return max(0, head - self.seen_batch)

    def _warm_up(self) -> WarmState | None:
        """The warm state, read from the tables the first time (and after it was dropped). Without one (the
        database away, or a record it could not apply) a takeover reads the tables, as a restart does."""
        if self.warm is None and time.monotonic() >= self._warm_retry_at:
            started = time.monotonic()
            try:
                self.warm = WarmState.load(Journal(self.db, self.config.instance, projector="off"))
            except Exception:
                self._warm_retry_at = time.monotonic() + WARM_RETRY_S
                log.exception("HA standby: order state not read (again in %gs)", WARM_RETRY_S)
                return None
            self.seen_batch = self.warm.seen
            log.warning("HA standby: order state read at batch %d in %.2fs (%s)", self.warm.seen,
                        time.monotonic() - started, ", ".join(f"{k} {v}" for k, v in self.warm.counts().items()))
        return self.warm

    def _keep_warm(self, warm: WarmState, batch: int, record: Any) -> WarmState | None:
        if batch != warm.seen + 1:
            # The primary trims its log behind its projection: this standby fell that far behind.
            log.warning("HA standby: log batches %d..%d gone before they were read: order state read again",
                        warm.seen + 1, batch - 1)
            self.warm = None
            return None
        try:
            warm.apply(batch, record)
        except Exception:
            self.warm, self._warm_retry_at = None, time.monotonic() + WARM_RETRY_S
            log.exception("HA standby: batch %d not applied to the order state (read again from the tables in "
                          "%gs; a takeover meanwhile reads the tables)", batch, WARM_RETRY_S)
            return None
        return warm

    def stand_by(self) -> bool:
        """Follow the log until the lease is ours (True) or we are stopped (False)."""
        if self.config.metrics_port is not None:
            registry = CollectorRegistry()
            registry.register(self.metrics)
            try:
                self._server, _ = start_http_server(self.config.metrics_port, addr="127.0.0.1", registry=registry)
            except OSError as exc:
                log.error("standby metrics on 127.0.0.1:%s not started: %s", self.config.metrics_port, exc)
        self._hold_ports()
        threading.Thread(target=self._watch_looks, name="ha-standby-watch", daemon=True).start()
        try:
            return self._stand_by()
        finally:
            self._look_started = None

    def _stand_by(self) -> bool:
        announced = False
        while not self.stop_event.is_set():
            try:
                acquiring = self._look_started = time.monotonic()
                if self.lease.try_acquire():
                    self.renewed_at = acquiring
                    log.warning("HA: %s took the lease of %s, epoch %d: taking over", self.holder,
                                self.config.instance, self.lease.epoch)
                    return True
                # who holds it: said once, and looked at every poll only to know whether to hold the ports
                row = self.lease.read() if not announced or self.held is not None else None
                if not announced:
                    log.warning("HA: standing by for %s (primary %s, epoch %d)", self.config.instance,
                                row.holder if row else "?", row.epoch if row else 0)
                    announced = True
                if self.held is not None:
                    self.held.hold(not self._primary_on_time(row))
                if self.follow():
                    continue  # still behind: look again at once
            except Exception as exc:  # the database away: keep trying, a standby has nothing to lose
                log.error("HA standby: %s", exc)
            self._look_started = None
            self.stop_event.wait(self.config.ha_poll_s)
        return False

    def _watch_looks(self) -> None:
        """Log a look that does not end (a query waiting for a lock, a connection that hangs), once per
        look, with the stacks of every thread: what a standby waits for is then in its log."""
        limit = max(STUCK_MIN_S, STUCK_LEASES * self.lease.lease_s)
        told: float | None = None
        while not self.stop_event.wait(min(1.0, limit / 5)) and self.role == "standby":
            started = self._look_started
            if started is None or started == told or time.monotonic() - started < limit:
                continue
            told = started
            frames = sys._current_frames()
            stacks = "".join(f"\n--- thread {t.name}\n" + "".join(traceback.format_stack(frames[t.ident]))
                             for t in threading.enumerate() if t.ident in frames)
            log.error("HA standby: one look at the lease and the journal has lasted %.0fs (a query waiting for "
                      "the database?); the threads' stacks:%s", time.monotonic() - started, stacks)

    def _hold_ports(self) -> None:
        """Listen on the client ports now, if this QuickFIX can take the sockets over (fixoms.held_ports)."""
        from fix_engine import settings as fix_settings

        if self.held is not None or not fix_settings.quickfix_accept_fd():
            return
        try:
            ports = fix_settings.acceptor_ports(self.config.sessions_file)
        except Exception as exc:  # the takeover reads sessions.cfg again and says what is wrong with it
            log.error("HA standby: client ports not bound ahead of a takeover: %s", exc)
            return
        self.held = HeldPorts(ports, grace_s=self.lease.lease_s)

    def _primary_on_time(self, row: LeaseRow | None) -> bool:
        """The lease is held by another engine that renewed it on time: at most one renewal missed."""
        return (row is not None and row.live and row.holder != self.holder
                and row.remaining_s > self.lease.lease_s - 2 * self.config.ha_renew_s)

    # --- primary -----------------------------------------------------------------------------------
    def take_over(self) -> EngineApp:
        server, self._server = self._server, None
        if server is not None:  # the engine serves the same port, with these metrics in its registry
            _stop_server(server)
        self.role = "primary"
        from fix_engine.settings import SessionOverrides
        from fixoms.app import EngineApp

        held, self.held = self.held, None
        overrides = SessionOverrides(accept_fds=held.hand_over()) if held is not None else None
        warm, self.warm = self.warm, None
        if warm is not None:
            log.warning("HA: taking over with the order state kept while standing by (batch %d, %d working orders)",
                        warm.seen, len(warm.orders))
        app = EngineApp(self.config, overrides, ha=HAContext(self.lease, self.fenced, self, warm))
        self.app = app
        app.start()
        app.metrics.registry.register(self.metrics)
        report_member(self.db, self.config.instance, self.holder, "primary", 0, 0, 0, 0.0)
        log.warning("HA: %s is the primary of %s (epoch %d), sessions open", self.holder, self.config.instance,
                    self.lease.epoch)
        return app

    def hold(self) -> str:
        """Renew the lease until `leave` ("released") or until it is lost ("lost": the process has been
        replaced by then). It keeps renewing through a step-down's drain and a stop, so that no standby
        takes over while this engine still decides and sends."""
        watchdog = threading.Thread(target=self._watch, name="ha-watchdog", daemon=True)
        watchdog.start()
        interval = self.config.ha_renew_s
        while not self._hold_done.wait(interval):
            started = time.monotonic()
            try:
                if self.lease.renew():
                    gap = started - self.renewed_at
                    if gap > self.lease.lease_s / 2:  # half the margin gone: what a false failover starts as
                        log.warning("HA: lease renewed %.2fs after the previous renewal (lease %gs, renewed every %gs)",
                                    gap, self.lease.lease_s, interval)
                    self.renewed_at = started
                    self._report_primary()
                    continue
                self.lost("a renewal found the lease held by another engine")
                return "lost"
            except Exception as exc:  # the watchdog gives up once a whole lease went by without one
                log.error("HA: lease renewal failed (retrying): %s", exc)
        return "released"

    def _watch(self) -> None:
        """A renewal that hangs (the database cut off, packets dropped) must not keep this engine primary
        past its lease: its sessions must close so that clients find the standby."""
        while not self._hold_done.wait(self.config.ha_renew_s / 2):
            if time.monotonic() - self.renewed_at > self.lease.lease_s:
                self.lost(f"no renewal for {self.lease.lease_s:g}s (this process was paused, or the database is out "
                          "of reach)", reachable=False)
                return

    def _report_primary(self) -> None:
        app = self.app
        head = app.journal._batch if app is not None else 0
        with contextlib.suppress(Exception):  # a report is for operators: never a reason to stop
            report_member(self.db, self.config.instance, self.holder, "primary", head, 0, 0, 0.0,
                          forget_after_s=10 * self.lease.lease_s)

    def fenced(self, exc: LeaseLost) -> None:
        """The journal refused an append: another engine is the primary now."""
        self.lost(str(exc))

    def lost(self, why: str, reachable: bool = True) -> None:
        """This engine is no longer the primary: become a standby at once, without sending anything more.
        `reachable`: the database answers (else nothing is asked of it: it could hang)."""
        with self._leaving:
            row = None
            if reachable:
                with contextlib.suppress(Exception):
                    row = self.lease.read()
                with contextlib.suppress(Exception):
                    forget_member(self.db, self.config.instance, self.holder)
            log.critical("HA: lost the lease of %s (%s; now held by %s, epoch %s): restarting as a standby",
                         self.config.instance, why, row.holder if row else "?", row.epoch if row else "?")
            rejoin_as_standby()

    def step_down(self, force: bool = False) -> dict[str, Any]:
        """A planned switch-over: stop taking messages, let the engine finish what it has, release the
        lease so a standby takes over at its next look, and become a standby ourselves. Returns at once:
        the work runs on the thread that holds the lease (`run`)."""
        if self.role != "primary":
            raise StepDownRefused("this engine is not the primary")
        if not force:
            fresh = STANDBY_FRESH_POLLS * self.config.ha_poll_s + 1
            with self.db.connect() as conn:
                following = [m for m in members(conn, self.config.instance) if m.role == "standby"
                             and (m.reported_age_s is None or m.reported_age_s < fresh)]
            if not following:
                raise StepDownRefused("no standby is following this primary (fixoms ha status): stepping down would "
                                      "only restart this engine; --force to do it anyway")
        self.step_down_requested.set()
        self.stop_event.set()
        return {"holder": self.holder, "epoch": self.lease.epoch}

    def leave(self, renewer: threading.Thread) -> None:
        """Stop being the primary, in order: the sessions stop (clients get a Logout; what they sent before
        it is decided and answered; what we send after it waits in the FIX store for their resend request
        at the new primary), the engine thread drains its queue and marks the journal sent; only then
        are renewals stopped and the lease released, so a standby takes over at its next look."""
        app, self.app = self.app, None
        if app is not None:
            try:
                app.stop()
            except Exception:
                log.exception("HA: stopping the engine")
        self._hold_done.set()
        renewer.join()
        released = self.lease.release()
        self.role = "standby"
        log.warning("HA: %s left the primary role of %s (lease %s)", self.holder, self.config.instance,
                    "released" if released else "was no longer ours")

    def close(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.close()
        server, self._server = self._server, None
        if server is not None:
            _stop_server(server)
        with contextlib.suppress(Exception):
            forget_member(self.db, self.config.instance, self.holder)
        self.db.dispose()


def _stop_server(server: Any) -> None:
    """Stop the standby's metrics endpoint now. Its serve_forever looks for a shutdown only between
    requests or every half second, and a takeover waited for it: 0.4 s between the lease taken and the
    engine's start in tests/fault/test_failover.py. A connection of our own wakes it at once."""
    stopping = threading.Thread(target=server.shutdown, name="ha-metrics-stop")
    stopping.start()
    with contextlib.suppress(OSError):
        socket.create_connection(server.server_address[:2], timeout=0.5).close()
    stopping.join()
    server.server_close()


def run_node(config: Config, on_started: Callable[[EngineApp], None] | None = None,
             stop_event: threading.Event | None = None) -> int:
    """`fixoms run` in HA mode, until SIGINT/SIGTERM (`stop_event`). Returns the exit code."""
    import fixoms.app  # noqa: F401  (the takeover's imports, done while standing by)

    node = HANode(config)
    if stop_event is not None:
        node.stop_event = stop_event
    try:
        if not node.stand_by():
            return 0
        # Renewals start with the lease, not after the start: replaying the log and opening the sessions may
        # take longer than the lease.
        renewer = threading.Thread(target=node.hold, name="ha-lease", daemon=True)
        renewer.start()
        app = node.take_over()
        if on_started is not None:
            on_started(app)
        # SIGINT/SIGTERM or `ha step-down` set stop_event; a lost lease replaces the process (renewer).
        while not node.stop_event.wait(0.5):
            pass
        node.leave(renewer)
        if node.step_down_requested.is_set():
            node.close()
            rejoin_as_standby()
        return 0
    finally:
        node.close()


def rejoin_as_standby() -> None:
    """Replace this process with `fixoms ... run --standby` (same pid, arguments, environment)."""
    args = list(sys.argv[1:])
    if "run" in args and "--standby" not in args:
        args.insert(args.index("run") + 1, "--standby")
    argv = [sys.executable, "-m", "fixoms.cli", *args]
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    # Every descriptor but stdin/stdout/stderr: the FIX sockets (QuickFIX's are inheritable) must close
    # with this image, or the listening port would stay bound in the standby.
    os.closerange(3, 65536)
    try:
        os.execv(sys.executable, argv)
    finally:
        os._exit(3)  # exec failed: a supervisor restarts us (as a standby: [ha] enabled)


def ha_config(config: Config, standby: bool) -> Config:
    return replace(config, ha_enabled=config.ha_enabled or standby)

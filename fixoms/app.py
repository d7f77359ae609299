"""Wiring: journal + engine + client acceptor + venue initiator, started and stopped in order."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from fix_engine import settings as fix_settings
from fix_engine.application import destroy
from fix_engine.client_gateway import ClientGateway
from fix_engine.inbox import Inbox
from fix_engine.logs import SessionLogFactory
from fix_engine.outbox import Outbox
from fix_engine.quickfix_import import fix
from fixoms import collector
from fixoms.admin import AdminError, AdminServer, socket_path
from fixoms.config import Config, ConfigError
from fixoms.jobs import Jobs
from fixoms.metrics import Metrics
from oms.access import Authenticator
from oms.engine import Engine, EngineConfig
from oms.journal import Journal
from oms.lease import Lease, LeaseLost
from oms.ports import VenueConnector
from oms.queries import load_credentials, make_engine
from oms.risk import RiskEngine
from oms.risk_gate import RiskGateAdapter
from oms.warm import WarmState
from sor.router import SmartRouter
from sor.tca import order_tca
from venues.fix_venue import VenueApplication
from venues.internal import InternalVenue

log = logging.getLogger(__name__)


# QuickFIX objects of engines whose construction failed halfway: QuickFIX leaves the sessions it had
# created registered, pointing at these Python objects (application, factories), which must then never be
# freed.
_STRANDED: list[Any] = []


class HAHooks(Protocol):
    """What an engine in HA mode is given (fixoms.ha.HAContext, which builds EngineApps: a protocol here so
    that this module does not import it back): the lease that fences its journal, what to do once it is
    fenced, and the node the admin socket's step-down acts on."""

    @property
    def lease(self) -> Lease: ...

    @property
    def on_fenced(self) -> Callable[[LeaseLost], None]: ...

    @property
    def node(self) -> Any: ...

    @property
    def warm(self) -> WarmState | None: ...


class EngineApp:
    """One engine: start() once, stop() at the end (any number of times, also after a failed start).

    QuickFIX's sessions are registered process-wide by SessionID (fix_settings.registered): this engine's
    acceptor and initiator are destroyed by stop() itself, and by a failed start(), so a next engine with
    the same sessions can be created at once; and an engine is refused while another with its sessions is
    alive in the process."""

    def __init__(self, config: Config, overrides: fix_settings.SessionOverrides | None = None,
                 ha: HAHooks | None = None) -> None:
        self.config = config
        # HA (fixoms.ha): the journal fenced by the lease, the FIX sessions' store in the journal's database.
        self.ha = ha
        overrides = overrides or fix_settings.SessionOverrides()
        if overrides.var_dir is None:
            overrides.var_dir = config.var_dir
        Path(overrides.var_dir).mkdir(parents=True, exist_ok=True)
        if ha is not None:
            overrides = fix_settings.pg_store_overrides(overrides, config.database_url)
        self._started = False
        self._stopped = False
        self._metrics_server: Any = None
        self.admin: AdminServer | None = None
        self.acceptor: Any = None
        self.initiator: Any = None
        self._factories: list[Any] = []
        self._inboxes: list[Inbox] = []
        self._outboxes: dict[str, Outbox] = {}
        self.settings = fix_settings.load(config.sessions_file, overrides)
        taken = fix_settings.registered(self.settings)
        if taken:
            raise RuntimeError(f"QuickFIX sessions {', '.join(taken)} already exist in this process: an engine "
                               "with them is still alive (stop() it first)")
        self.journal = Journal(make_engine(config.database_url), config.instance, projector=config.projector)
        if ha is not None:
            self.journal.lease = ha.lease
            self.journal.on_fenced = ha.on_fenced
            self.journal.warm = ha.warm
        try:
            self._build(config, overrides)
        except BaseException:
            self._release_quickfix()
            self.journal.engine.dispose()
            raise

    def _build(self, config: Config, overrides: fix_settings.SessionOverrides) -> None:
        self.journal.create_schema()
        # The FIX edge's hot path stays in C++ where the build allows (guard.patch): QuickFIX's threads
        # queue messages for the engine thread, which reads them itself (fix_engine.inbox), and log them
        # natively; without it they call into Python at each message, as a plain QuickFIX must.
        native = fix_settings.quickfix_native_edge()
        acceptor_overrides = initiator_overrides = overrides
        if native:
            self._inboxes = [Inbox(), Inbox()]
            acceptor_overrides = fix_settings.inbox_overrides(overrides, self._inboxes[0].writer_fd)
            initiator_overrides = fix_settings.inbox_overrides(overrides, self._inboxes[1].writer_fd)
            if fix_settings.quickfix_outbox():
                # and the engine thread's sends on a thread of each session's (fix_engine.outbox)
                self._outboxes = {s.key: Outbox(s.key) for s in fix_settings.sessions(self.settings)}
                fds = {key: box.quickfix_fd for key, box in self._outboxes.items()}
                acceptor_overrides = replace(acceptor_overrides, outbox_fds=fds)
                initiator_overrides = replace(initiator_overrides, outbox_fds=fds)
        self.acceptor_settings = fix_settings.load(config.sessions_file, acceptor_overrides, "acceptor")
        self.initiator_settings = fix_settings.load(config.sessions_file, initiator_overrides, "initiator")
        infos = fix_settings.sessions(self.settings)
        venue_names = [s.key for s in infos if s.connection_type == "initiator"]
        authenticator = Authenticator(load_credentials(self.journal.engine), config.require_auth)
        self.gateway = ClientGateway(submit=lambda cmd: None, authenticator=authenticator,
                                     drop_copy=dict(config.drop_copy))
        self.venue_app = VenueApplication(submit=lambda cmd: None, symbols=sorted(config.symbols))
        if self.ha is not None:  # the sessions' store is in the database: it learns what the journal keeps
            self.gateway.durable_marks = self.venue_app.durable_marks = True
        try:
            self.router = SmartRouter.from_config(dict(config.symbols), config.sor, config.venue_profiles)
        except ValueError as exc:
            raise ConfigError(f"[sor]/[venue_profiles]: {exc}") from None
        venues: dict[str, VenueConnector] = {name: self.venue_app.connector(name) for name in venue_names}
        self.internal: InternalVenue | None = None
        if self.router.internal_venue:
            self.internal = InternalVenue(lambda cmd: None, reference=self.router.reference_prices,
                                          on_book=self.router.on_internal_book, name=self.router.internal_venue)
            venues[self.router.internal_venue] = self.internal
        self.engine = Engine(
            self.journal,
            self.router,
            self.gateway,
            venues,
            EngineConfig(
                instance=config.instance,
                symbols=frozenset(config.symbols),
                default_accounts=dict(config.accounts),
                cancel_on_disconnect=frozenset(config.cancel_on_disconnect),
                venue_down_grace_s=config.venue_down_grace_s,
                venue_ack_timeout_s=config.venue_ack_timeout_s,
                venues_keep_orders=frozenset(v for v in venue_names
                                             if not self.router.profile(v).cancel_on_disconnect),
            ),
        )
        self.risk = RiskEngine(config.risk)
        engine = self.engine
        self.engine.risk = RiskGateAdapter(
            self.risk, lambda symbol: engine.reference_price(symbol) or config.reference_prices.get(symbol)
        )
        profiles = {v: self.router.profile(v) for v in venues}
        self.engine.tca = lambda order: order_tca(order, order.arrival_mid, profiles,
                                                  completed_at=order.updated_at).as_dict()
        self.gateway.submit = self.engine.submit
        if self.internal is not None:
            self.internal.submit = self.engine.submit
        self.venue_app.submit = self.engine.submit
        self.metrics = Metrics(lambda: (len(self.gateway.logged_on), len(self.venue_app.logged_on)))
        self.engine.observer = self.metrics.observe
        self.engine.housekeeping = collector.housekeeping
        self.gateway.on_ack_latency = self.metrics.ack.observe
        self.jobs = Jobs(config.instance, self.engine.submit, self.journal.engine, config.timezone, config.session_end,
                         eod=self._eod_report, rotate=self._rotate_logs, rotate_at=config.rotate_logs_at,
                         session_start=config.session_start)
        if native:
            self.gateway.fix_inbox, self.venue_app.fix_inbox = self._inboxes
            kind = {s.key: s.connection_type for s in infos}
            self.gateway.outboxes = {k: box for k, box in self._outboxes.items() if kind[k] == "acceptor"}
            self.venue_app.outboxes = {k: box for k, box in self._outboxes.items() if kind[k] == "initiator"}
            self.engine.edges = [self.gateway, self.venue_app]
        a, i = self.acceptor_settings, self.initiator_settings
        # Our LogFactory on both sides: the events QuickFIX tells before a logon (fix_engine.logs), and a
        # backup the rotation job can trigger safely.
        self.client_logs = SessionLogFactory(a, self.gateway, native=native)
        self.venue_logs = SessionLogFactory(i, native=native)
        store = fix.FileStoreFactory if self.ha is None else fix.PostgreSQLStoreFactory
        self._factories = [store(a), self.client_logs, store(i), self.venue_logs]
        # ThreadedSocketAcceptor, not the SocketAcceptor the design prefers: 1.16's SocketAcceptor.stop()
        # races its own thread (SocketServer closed on the caller's thread while the acceptor thread
        # deletes it) and segfaulted at shutdown in our tests. Our callbacks only decode and enqueue,
        # so a thread per session changes nothing for order state (still one engine thread).
        self.acceptor = fix.ThreadedSocketAcceptor(self.gateway, self._factories[0], a, self._factories[1])
        if venue_names:
            self.initiator = fix.SocketInitiator(self.venue_app, self._factories[2], i, self._factories[3])

    def _release_quickfix(self) -> bool:
        """Destroy the acceptor and initiator now (they must be stopped), factories after them: the C++
        objects use the factories until they are gone. True if none of our sessions is left registered.

        QuickFIX sessions are created by the acceptor/initiator constructors and removed from the registry
        by their destructors only; a constructor that failed halfway (a ConfigError in its second session)
        leaves the first ones registered for good, with pointers into our application and factories."""
        for name in ("acceptor", "initiator"):
            obj = getattr(self, name)
            setattr(self, name, None)
            if obj is not None:
                destroy(obj)
        left = fix_settings.registered(self.settings)
        if left:
            log.error("QuickFIX sessions %s are still registered after their engine was released: no engine with "
                      "them can run in this process any more", ", ".join(left))
            # and their inboxes: the sessions' pumps still write to those descriptors
            _STRANDED.append((getattr(self, "gateway", None), getattr(self, "venue_app", None), list(self._factories),
                              list(self._inboxes), dict(self._outboxes)))
        else:
            for inbox in self._inboxes:
                inbox.close()
            for outbox in self._outboxes.values():
                outbox.close()
        self._inboxes.clear()
        self._outboxes = {}
        self._factories.clear()
        return not left

    def start(self) -> None:
        """Start everything, or, if any part fails, stop what was started, destroy the QuickFIX objects and
        re-raise: a failed start leaves no session registered and no thread running."""
        if self._started or self._stopped:
            raise RuntimeError("an EngineApp starts once: make a new one to start again")
        self._started = True
        try:
            self._start()
        except BaseException:
            log.error("engine start failed: stopping what was started")
            # stop() logs its own failures; the start's failure is the one to raise
            with contextlib.suppress(Exception):
                self.stop()
            raise

    def _start(self) -> None:
        if not fix_settings.quickfix_guarded():
            log.warning("quickfix %s is not the guarded build (native/quickfix, `make install`): a hostile peer's "
                        "framing is not bounded", fix_settings.quickfix_version())
        # Sessions log on while the engine thread recovers: what they deliver waits in the engine's queue
        # until recovery is done (Engine.start), so a restart accepts logons after the imports and
        # wiring, not after reading the journal. Jobs and operators start once it is done. If recovery
        # fails, nothing was answered yet: start() stops the sessions that logged on meanwhile.
        cpus = frozenset(self.config.engine_cpus)
        others = frozenset(os.sched_getaffinity(0)) - cpus if cpus else frozenset()
        if cpus:
            self.engine.cpus = cpus
            self.journal.child_cpus = others
        self.engine.start(wait=False)
        if self.internal is not None:
            self.internal.start()
        if self.initiator is not None:
            self.initiator.start()
        self.acceptor.start()
        self.engine.wait_recovered()
        self.jobs.start()
        if self.config.metrics_port is not None:
            try:
                self._metrics_server = self.metrics.serve(self.config.metrics_port)
            except OSError as exc:  # metrics must never stop trading
                log.error("metrics endpoint on 127.0.0.1:%s not started: %s", self.config.metrics_port, exc)
        # Operators last: everything they can act on is running.
        self.admin = AdminServer(self, socket_path(self.config))
        try:
            self.admin.start()
        except (AdminError, OSError) as exc:
            log.error("admin socket not started, operators cannot reach this engine: %s", exc)
            self.admin = None
        if cpus and others:
            self._keep_off(others)
        elif cpus:
            log.warning("[engine] cpus %s are all the CPUs this process has: its other threads share them",
                        sorted(cpus))

    def _keep_off(self, others: frozenset[int]) -> None:
        """Every thread of the process but the engine's onto `others`, so that the engine thread's CPUs run
        it alone; threads started later inherit their creator's CPUs (QuickFIX's connection threads, the
        acceptor's: `others`)."""
        engine_thread = self.engine.native_id
        for task in os.listdir("/proc/self/task"):
            if int(task) != engine_thread:
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    os.sched_setaffinity(int(task), others)
        log.info("engine thread on CPUs %s; the process's other threads and its projector on %s",
                 sorted(self.engine.cpus), sorted(others))

    def _eod_report(self) -> None:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from fixoms.eod import write_eod

        tz = ZoneInfo(self.config.timezone)
        summary = write_eod(self.journal.engine, datetime.now(tz).date(), self.config.var_dir / "reports", tz)
        log.warning("end-of-day report %s: %s", summary["date"], summary["accounts"])

    def _rotate_logs(self) -> dict[str, int]:
        from fixoms.logrotate import rotate_logs

        return rotate_logs([self.client_logs, self.venue_logs], self.config.log_file,
                           self.config.log_retention_days)

    def wait_venues(self, timeout: float = 10.0) -> bool:
        want = set(self.engine.venues)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if want <= self.engine.venues_up:
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop and release everything, in order: operators, jobs, sessions, engine thread, QuickFIX objects,
        database. Safe after a failed or partial start, and more than once (only the first call acts). Every
        step runs even if an earlier one fails; the first failure is raised at the end."""
        if self._stopped:
            return
        self._stopped = True
        failures: list[BaseException] = []

        def step(what: str, fn: Any) -> None:
            try:
                fn()
            except Exception as exc:  # the other steps must still run
                log.exception("engine stop: %s failed", what)
                failures.append(exc)

        server, self._metrics_server = self._metrics_server, None
        if server is not None:
            step("metrics endpoint", lambda: (server.shutdown(), server.server_close()))
        admin, self.admin = self.admin, None
        if admin is not None:
            step("admin socket", admin.stop)
        step("jobs", self.jobs.stop)
        self.gateway.stopping = True
        # stop() of a QuickFIX acceptor/initiator that never started returns at once
        if self.acceptor is not None:
            step("client sessions", self.acceptor.stop)
        if self.initiator is not None:
            step("venue sessions", self.initiator.stop)
        step("engine thread", self.engine.stop)
        # The engine thread may have outlived its stop (a journal write hanging): no send of its may reach
        # a session being deleted.
        closed = [self.gateway.close(), self.venue_app.close()]
        if all(closed):
            step("QuickFIX objects", self._release_quickfix)
        else:
            log.error("engine stop: a send is still in progress after 10 s: QuickFIX objects kept (their sessions "
                      "stay registered in this process)")
        step("journal", self.journal.engine.dispose)
        if failures:
            raise failures[0]

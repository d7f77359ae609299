"""Wiring: journal + engine + client acceptor + venue initiator, started and stopped in order."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fix_engine import settings as fix_settings
from fix_engine.client_gateway import ClientGateway
from fix_engine.logs import SessionLogFactory
from fix_engine.quickfix_import import fix
from fixoms.admin import AdminError, AdminServer, socket_path
from fixoms.config import Config, ConfigError
from fixoms.jobs import Jobs
from fixoms.metrics import Metrics
from oms.access import Authenticator
from oms.engine import Engine, EngineConfig
from oms.journal import Journal
from oms.ports import VenueConnector
from oms.queries import load_credentials
from oms.risk import RiskEngine
from oms.risk_gate import RiskGateAdapter
from sor.router import SmartRouter
from sor.tca import order_tca
from venues.fix_venue import VenueApplication
from venues.internal import InternalVenue

log = logging.getLogger(__name__)


class EngineApp:
    def __init__(self, config: Config, overrides: fix_settings.SessionOverrides | None = None) -> None:
        self.config = config
        overrides = overrides or fix_settings.SessionOverrides()
        if overrides.var_dir is None:
            overrides.var_dir = config.var_dir
        Path(overrides.var_dir).mkdir(parents=True, exist_ok=True)
        self.journal = Journal.open(config.database_url, config.instance)
        self.journal.create_schema()
        self.settings = fix_settings.load(config.sessions_file, overrides)
        self.acceptor_settings = fix_settings.load(config.sessions_file, overrides, "acceptor")
        self.initiator_settings = fix_settings.load(config.sessions_file, overrides, "initiator")
        infos = fix_settings.sessions(self.settings)
        venue_names = [s.key for s in infos if s.connection_type == "initiator"]
        authenticator = Authenticator(load_credentials(self.journal.engine), config.require_auth)
        self.gateway = ClientGateway(submit=lambda cmd: None, authenticator=authenticator,
                                     drop_copy=dict(config.drop_copy))
        self.venue_app = VenueApplication(submit=lambda cmd: None, symbols=sorted(config.symbols))
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
        self.gateway.on_ack_latency = self.metrics.ack.observe
        self._metrics_server: Any = None
        self.jobs = Jobs(config.instance, self.engine.submit, self.journal.engine, config.timezone, config.session_end,
                         eod=self._eod_report, rotate=self._rotate_logs, rotate_at=config.rotate_logs_at)
        a, i = self.acceptor_settings, self.initiator_settings
        # Our LogFactory on both sides: FileLog as before, plus each session's last messages for the
        # operator and a backup the rotation job can trigger safely.
        self.client_logs = SessionLogFactory(a, self.gateway)
        self.venue_logs = SessionLogFactory(i)
        self._factories = [fix.FileStoreFactory(a), self.client_logs, fix.FileStoreFactory(i), self.venue_logs]
        # ThreadedSocketAcceptor, not the SocketAcceptor the design prefers: 1.16's SocketAcceptor.stop()
        # races its own thread (SocketServer closed on the caller's thread while the acceptor thread
        # deletes it) and segfaulted at shutdown in our tests. Our callbacks only decode and enqueue,
        # so a thread per session changes nothing for order state (still one engine thread).
        self.acceptor = fix.ThreadedSocketAcceptor(self.gateway, self._factories[0], a, self._factories[1])
        self.initiator = (
            fix.SocketInitiator(self.venue_app, self._factories[2], i, self._factories[3]) if venue_names else None
        )

    def start(self) -> None:
        if not fix_settings.quickfix_guarded():
            log.warning("quickfix %s is not the guarded build (native/quickfix, `make install`): a hostile peer's "
                        "framing is not bounded", fix_settings.quickfix_version())
        # Sessions log on while the engine thread recovers: what they deliver waits in the engine's queue
        # until recovery is done (Engine.start), so a restart accepts logons after the imports and
        # wiring, not after reading the journal. Jobs and operators start once it is done.
        self.engine.start(wait=False)
        if self.internal is not None:
            self.internal.start()
        if self.initiator is not None:
            self.initiator.start()
        self.acceptor.start()
        try:
            self.engine.wait_recovered()
        except Exception:
            # Nothing was answered yet: close the sessions that logged on meanwhile and fail the start.
            self.gateway.stopping = True
            self.acceptor.stop()
            if self.initiator is not None:
                self.initiator.stop()
            raise
        self.jobs.start()
        if self.config.metrics_port is not None:
            try:
                self._metrics_server = self.metrics.serve(self.config.metrics_port)
            except OSError as exc:  # metrics must never stop trading
                log.error("metrics endpoint on 127.0.0.1:%s not started: %s", self.config.metrics_port, exc)
        # Operators last: everything they can act on is running.
        self.admin: AdminServer | None = AdminServer(self, socket_path(self.config))
        try:
            self.admin.start()
        except (AdminError, OSError) as exc:
            log.error("admin socket not started, operators cannot reach this engine: %s", exc)
            self.admin = None

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
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None
        if getattr(self, "admin", None) is not None:
            self.admin.stop()  # type: ignore[union-attr]
            self.admin = None
        self.jobs.stop()
        self.gateway.stopping = True
        self.acceptor.stop()
        if self.initiator is not None:
            self.initiator.stop()
        self.engine.stop()
        self.journal.engine.dispose()
        # The C++ acceptor/initiator use the factories until they are destroyed: destroy them first.
        self.acceptor = None  # type: ignore[assignment]
        self.initiator = None
        self._factories.clear()

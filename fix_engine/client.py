"""A scripted FIX client (a real QuickFIX initiator) for the demo, the tests and load generation.

Every message it receives is parsed into a `{tag: value}` dict and queued, so callers can wait for
the report they expect.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from fix_engine import codec, settings
from fix_engine.application import GuardedApplication, destroy
from fix_engine.quickfix_import import fix

Msg = dict[int, str]


class _ClientApp(GuardedApplication):
    def __init__(self) -> None:
        super().__init__()
        self.inbox: queue.Queue[Msg] = queue.Queue()
        self.admin: queue.Queue[Msg] = queue.Queue()
        self.logon_event = threading.Event()
        self.logout_event = threading.Event()
        self.logon_fields: list[tuple[int, str]] = []

    def on_logon(self, key: str) -> None:
        self.logout_event.clear()
        self.logon_event.set()

    def on_logout(self, key: str) -> None:
        self.logon_event.clear()
        self.logout_event.set()

    def on_to_admin(self, message: Any, sid: Any) -> None:
        if message.getHeader().getField(35) == codec.LOGON:
            for tag, value in self.logon_fields:
                message.setField(tag, value)

    def on_from_admin(self, message: Any, sid: Any) -> None:
        self.admin.put(codec.parse(message.toString()))

    def on_from_app(self, raw: str, sid: Any) -> None:
        self.inbox.put(codec.parse(raw))


class FixClient:
    def __init__(
        self,
        comp_id: str,
        port: int,
        var_dir: Path,
        begin_string: str = codec.FIX44,
        target: str = "FIXOMS",
        host: str = "127.0.0.1",
        logon_fields: list[tuple[int, str]] | None = None,
        reset_on_logon: bool = False,
        failover: list[tuple[str, int]] | None = None,
        heart_bt_int: int = 30,
    ) -> None:
        self.comp_id = comp_id
        self.begin_string = begin_string
        self.target = target
        self.app = _ClientApp()
        self.app.logon_fields = list(logon_fields or [])
        var_dir = Path(var_dir) / f"client-{comp_id}"
        var_dir.mkdir(parents=True, exist_ok=True)
        dictionary = "FIX44.xml" if begin_string == codec.FIX44 else "FIX42.xml"
        cfg = var_dir / "client.cfg"
        cfg.write_text(
            "\n".join(
                [
                    "[DEFAULT]",
                    "ConnectionType=initiator",
                    f"SocketConnectHost={host}",
                    f"SocketConnectPort={port}",
                    # QuickFIX's own failover list: each reconnect tries the next address, then the first again
                    *[line for i, (alt_host, alt_port) in enumerate(failover or [], start=1)
                      for line in (f"SocketConnectHost{i}={alt_host}", f"SocketConnectPort{i}={alt_port}")],
                    f"FileStorePath={var_dir / 'store'}",
                    f"FileLogPath={var_dir / 'log'}",
                    "StartTime=00:00:00",
                    "EndTime=00:00:00",
                    f"HeartBtInt={heart_bt_int}",
                    "ReconnectInterval=1",
                    "UseDataDictionary=Y",
                    f"DataDictionary={settings.resolve_dictionary(dictionary)}",
                    "SocketNodelay=Y",
                    f"ResetOnLogon={'Y' if reset_on_logon else 'N'}",
                    "[SESSION]",
                    f"BeginString={begin_string}",
                    f"SenderCompID={comp_id}",
                    f"TargetCompID={target}",
                    "",
                ]
            )
        )
        self.settings = fix.SessionSettings(str(cfg))
        # The C++ initiator keeps raw pointers to the factories: they must live as long as it does.
        self.store_factory = fix.FileStoreFactory(self.settings)
        self.log_factory = fix.FileLogFactory(self.settings)
        self.initiator = fix.SocketInitiator(self.app, self.store_factory, self.settings, self.log_factory)
        self.sid = fix.SessionID(begin_string, comp_id, target)
        self._seq = 0
        self._stopped = False
        self.received: list[Msg] = []

    # --- session -----------------------------------------------------------------------------
    def start(self, wait: float | None = 10.0) -> FixClient:
        if self._stopped:
            raise RuntimeError("a stopped FixClient cannot start again: make a new one")
        try:
            self.initiator.start()
            if wait and not self.app.logon_event.wait(wait):
                raise TimeoutError(f"{self.comp_id}: no logon within {wait}s")
        except BaseException:
            # The caller gets no client to stop: a running initiator left for the garbage collector would
            # keep its session registered and be destroyed while its thread runs.
            self.stop(force=True)
            raise
        return self

    def stop(self, force: bool = False) -> None:
        """Log out and stop; `force` skips waiting for the counterparty's Logout (tests' teardown)."""
        # Stopping a QuickFIX initiator twice crashes: make it idempotent. Then destroy it at once:
        # QuickFIX keeps one global registry of sessions by SessionID, and a stale initiator destroyed
        # later by the garbage collector would unregister a newer session with the same id.
        if not self._stopped:
            self._stopped = True
            self.initiator.stop(force)
            initiator, self.initiator = self.initiator, None
            destroy(initiator)
            self.store_factory = self.log_factory = None

    @property
    def logged_on(self) -> bool:
        return self.app.logon_event.is_set()

    def next_id(self, prefix: str = "C") -> str:
        self._seq += 1
        return f"{prefix}{int(time.time() * 1000) % 10_000_000}-{self._seq}"

    # --- sending -----------------------------------------------------------------------------
    def send(self, msg_type: str, fields: list[tuple[int, str]]) -> None:
        raw = codec._message(self.begin_string, msg_type, fields)
        if not fix.Session.sendToTarget(fix.Message(raw, False), self.sid):
            raise RuntimeError(f"{self.comp_id}: not logged on, message stored")

    def new_order(
        self,
        symbol: str,
        side: str,
        qty: Decimal | int | str,
        ord_type: str = "2",
        price: Decimal | str | None = None,
        tif: str = "0",
        cl_ord_id: str | None = None,
        account: str | None = None,
        extra: list[tuple[int, str]] | None = None,
    ) -> str:
        cl_ord_id = cl_ord_id or self.next_id()
        fields = [
            (codec.CL_ORD_ID, cl_ord_id),
            (codec.HANDL_INST, "1"),
            (codec.SYMBOL, symbol),
            (codec.SIDE, side),
            (codec.ORDER_QTY, str(qty)),
            (codec.ORD_TYPE, ord_type),
            (codec.TIF, tif),
            (codec.TRANSACT_TIME, codec.utc_timestamp()),
        ]
        if price is not None:
            fields.append((codec.PRICE, str(price)))
        if account:
            fields.append((codec.ACCOUNT, account))
        fields.extend(extra or [])
        self.send(codec.NEW_ORDER_SINGLE, fields)
        return cl_ord_id

    def cancel(self, orig_cl_ord_id: str, symbol: str, side: str, qty: Decimal | int | str = 0,
               cl_ord_id: str | None = None) -> str:
        cl_ord_id = cl_ord_id or self.next_id("X")
        fields = [
            (codec.ORIG_CL_ORD_ID, orig_cl_ord_id),
            (codec.CL_ORD_ID, cl_ord_id),
            (codec.SYMBOL, symbol),
            (codec.SIDE, side),
            (codec.TRANSACT_TIME, codec.utc_timestamp()),
        ]
        if self.begin_string == codec.FIX42 or qty:
            fields.append((codec.ORDER_QTY, str(qty or 1)))
        self.send(codec.CANCEL_REQUEST, fields)
        return cl_ord_id

    def replace(self, orig_cl_ord_id: str, symbol: str, side: str, qty: Decimal | int | str,
                price: Decimal | str | None = None, ord_type: str = "2", cl_ord_id: str | None = None) -> str:
        cl_ord_id = cl_ord_id or self.next_id("R")
        fields = [
            (codec.ORIG_CL_ORD_ID, orig_cl_ord_id),
            (codec.CL_ORD_ID, cl_ord_id),
            (codec.HANDL_INST, "1"),
            (codec.SYMBOL, symbol),
            (codec.SIDE, side),
            (codec.ORDER_QTY, str(qty)),
            (codec.ORD_TYPE, ord_type),
            (codec.TRANSACT_TIME, codec.utc_timestamp()),
        ]
        if price is not None:
            fields.append((codec.PRICE, str(price)))
        self.send(codec.REPLACE_REQUEST, fields)
        return cl_ord_id

    def mass_cancel(self, request_type: str = "7", symbol: str = "", cl_ord_id: str | None = None) -> str:
        cl_ord_id = cl_ord_id or self.next_id("M")
        fields = [(codec.CL_ORD_ID, cl_ord_id), (codec.MASS_CANCEL_REQUEST_TYPE, request_type),
                  (codec.TRANSACT_TIME, codec.utc_timestamp())]
        if symbol:
            fields.append((codec.SYMBOL, symbol))
        self.send(codec.MASS_CANCEL_REQUEST, fields)
        return cl_ord_id

    def mass_status(self, request_type: str = "7", symbol: str = "", req_id: str | None = None) -> str:
        req_id = req_id or self.next_id("S")
        fields = [(codec.MASS_STATUS_REQ_ID, req_id), (codec.MASS_STATUS_REQ_TYPE, request_type)]
        if symbol:
            fields.append((codec.SYMBOL, symbol))
        self.send(codec.MASS_STATUS_REQUEST, fields)
        return req_id

    def status(self, cl_ord_id: str, symbol: str, side: str) -> None:
        self.send(codec.STATUS_REQUEST, [(codec.CL_ORD_ID, cl_ord_id), (codec.SYMBOL, symbol), (codec.SIDE, side)])

    # --- receiving ---------------------------------------------------------------------------
    def wait_for(self, match: Callable[[Msg], bool], timeout: float = 10.0) -> Msg:
        """The first message (received before or now) that matches; skipped ones stay in `received`."""
        for msg in self.received:
            if match(msg) and not msg.get(-1):
                msg[-1] = "seen"
                return msg
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.comp_id}: no matching message within {timeout}s")
            try:
                msg = self.app.inbox.get(timeout=left)
            except queue.Empty:
                continue
            self.received.append(msg)
            if match(msg):
                msg[-1] = "seen"
                return msg

    def reports_for(self, cl_ord_id: str) -> list[Msg]:
        self.drain()
        return [m for m in self.received if m.get(codec.CL_ORD_ID) == cl_ord_id
                or m.get(codec.ORIG_CL_ORD_ID) == cl_ord_id]

    def drain(self, settle: float = 0.0) -> None:
        if settle:
            time.sleep(settle)
        while True:
            try:
                self.received.append(self.app.inbox.get_nowait())
            except queue.Empty:
                return

    def wait_report(self, cl_ord_id: str, status: str | None = None, exec_type: str | None = None,
                    timeout: float = 10.0) -> Msg:
        def match(m: Msg) -> bool:
            return (
                m.get(codec.MSG_TYPE) == codec.EXECUTION_REPORT
                and m.get(codec.CL_ORD_ID) == cl_ord_id
                and (status is None or m.get(codec.ORD_STATUS) == status)
                and (exec_type is None or m.get(codec.EXEC_TYPE) == exec_type)
            )

        return self.wait_for(match, timeout)

"""The client acceptor: decodes client requests onto the engine queue and sends the engine's reports.

Implements the `oms.ports.ClientGateway` port. Callbacks only decode and enqueue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fix_engine import codec
from fix_engine.application import GuardedApplication, session_key
from fix_engine.quickfix_import import fix
from oms import commands as c
from oms.access import Authenticator
from oms.reports import CancelReject, ExecutionReport, MassCancelReport

log = logging.getLogger(__name__)

_MAX_PENDING_ACKS = 100_000


class ClientGateway(GuardedApplication):
    """Client sessions, and drop-copy sessions: those get a copy (CopyMsgIndicator 797=Y) of every
    ExecutionReport for the accounts they are entitled to, and may send no orders."""

    def __init__(self, submit: Callable[[c.Command], None], authenticator: Authenticator | None = None,
                 drop_copy: dict[str, frozenset[str]] | None = None) -> None:
        super().__init__()
        self.submit = submit
        self.authenticator = authenticator
        self.drop_copy = dict(drop_copy or {})
        self.remote: dict[str, str] = {}
        self.stopping = False
        self._seqnums: dict[str, tuple[int, int]] = {}
        # Ack latency (NewOrderSingle received -> its first ExecutionReport handed to QuickFIX), for the
        # metrics: set by the app. Written on QuickFIX's threads, popped on the engine thread (dict
        # operations are atomic under the GIL).
        self.on_ack_latency: Callable[[float], None] | None = None
        self._received: dict[tuple[str, str], float] = {}

    # --- logon: authenticate before anything else can happen ---------------------------------
    def on_remote_address(self, sid: Any, address: str) -> None:
        self.remote[session_key(sid)] = address

    def before_logon(self, sid: Any) -> None:
        session = fix.Session.lookupSession(sid)
        if session is not None:
            self._seqnums[session_key(sid)] = (session.getExpectedSenderNum(), session.getExpectedTargetNum())

    def on_from_admin(self, message: Any, sid: Any) -> None:
        if self.authenticator is None or message.getHeader().getField(codec.MSG_TYPE) != codec.LOGON:
            return
        key = session_key(sid)
        try:
            fields = codec.parse(message.toString())
            reason = self.authenticator.check_logon(key, sid.getBeginString().getValue(),
                                                    fields.get(codec.USERNAME), fields.get(codec.PASSWORD),
                                                    self.remote.get(key))
        except Exception:  # authentication fails closed: an error is a refusal, never a pass
            log.exception("logon check failed for %s", key)
            fields, reason = {}, "invalid logon"
        if reason is None:
            return
        log.warning("refused logon %s from %s: %s", key, self.remote.get(key, "?"), reason)
        if fields.get(141) == "Y" and key in self._seqnums:
            # QuickFIX reset the numbers before asking us: a refused logon must not reset anything.
            sender, target = self._seqnums[key]
            session = fix.Session.lookupSession(sid)
            session.setNextSenderMsgSeqNum(sender)
            session.setNextTargetMsgSeqNum(target)
        raise fix.RejectLogon(reason)

    def on_logon(self, key: str) -> None:
        if key not in self.drop_copy:
            self.submit(c.ClientSessionUp(key))

    def on_logout(self, key: str) -> None:
        if key in self.drop_copy:
            return
        # When we stop the engine, the client did not drop: no cancel-on-disconnect.
        if not self.stopping:
            self.submit(c.ClientSessionDown(key))

    def on_from_app(self, raw: str, key: str) -> None:
        if key in self.drop_copy:
            self._business_reject(raw, key, 0, "drop copy session: no orders or requests accepted")
            return
        try:
            command = codec.decode_client(raw, key)
        except codec.UnsupportedMessage:
            # As QuickFIX answers UnsupportedMessageType, which it cannot for a message it queued for us
            self._business_reject(raw, key, 3, "Unsupported Message Type")
            return
        except codec.DecodeError as exc:
            self._business_reject(raw, key, 5 if exc.tag else 0, exc.text)
            return
        if self.on_ack_latency is not None and isinstance(command, c.NewOrder | c.InvalidOrder):
            if len(self._received) > _MAX_PENDING_ACKS:  # answers that never came: never grow without bound
                self._received.clear()
            self._received[(key, command.cl_ord_id)] = time.perf_counter()
        self.submit(command)

    def on_app_error(self, raw: str, key: str, exc: Exception) -> None:
        self._business_reject(raw, key, 0, f"message not processed: {exc}")

    def _business_reject(self, raw: str, key: str, reason: int, text: str) -> None:
        fields = codec.parse(raw)
        msg = codec.encode_business_reject(
            self.begin_strings.get(key, codec.FIX44), fields.get(codec.MSG_SEQ_NUM, "0"),
            fields.get(codec.MSG_TYPE, "?"), reason, text,
        )
        self.send_raw(key, msg)

    # --- ClientGateway port ------------------------------------------------------------------
    def send_report(self, report: ExecutionReport) -> None:
        begin = self.begin_strings.get(report.session, codec.FIX44)
        self.post(report.session, codec.encode_report(report, begin))
        if self._received:
            started = self._received.pop((report.session, report.cl_ord_id), None)
            if started is not None and self.on_ack_latency is not None:
                self.on_ack_latency(time.perf_counter() - started)
        for key, accounts in self.drop_copy.items():
            if report.account in accounts or "*" in accounts:
                self.post(key, codec.encode_report(report, self.begin_strings.get(key, codec.FIX44), copy=True))

    def send_cancel_reject(self, reject: CancelReject) -> None:
        begin = self.begin_strings.get(reject.session, codec.FIX44)
        self.post(reject.session, codec.encode_cancel_reject(reject, begin))

    def send_mass_cancel_report(self, report: MassCancelReport) -> None:
        begin = self.begin_strings.get(report.session, codec.FIX44)
        self.post(report.session, codec.encode_mass_cancel_report(report, begin))

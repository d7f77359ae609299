"""Admin-socket actions on one FIX session beyond enable/disable/reset/seqnum (fixoms.admin).

- `sessions.disconnect`: drop the TCP connection, session still enabled (the counterparty or our
  initiator reconnects by itself).
- `sessions.sequence_reset`: SequenceReset (35=4) in Reset mode to NewSeqNo N, never below our next
  sender number.
- `sessions.resend`: ResendRequest (35=2) BeginSeqNo..EndSeqNo (0: through the last).
- `sessions.test_request`: TestRequest (35=1) with a fresh TestReqID; the answering Heartbeat gives the
  round trip.
- `sessions.hold` / `sessions.release`: the session's trading state (oms.risk, journaled and replayed on
  restart) set to HALTED / back to ACTIVE: it stays logged on, new orders and risk-adding replaces are
  rejected, cancels pass.

Messages go out through QuickFIX's own Session (sendToTarget), so sequence numbers, persistence and the
FileLog stay QuickFIX's business. Sends that move our sender number run on the engine thread, so no
report of ours can slip between the message and the number it sets.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from fix_engine import codec
from fix_engine.logs import SessionLogFactory, message_file, tail
from fix_engine.quickfix_import import fix
from fixoms.admin_errors import AdminError, brief_session, state_name
from oms import commands as c
from oms.risk import Scope

if TYPE_CHECKING:
    from fix_engine.application import GuardedApplication
    from fix_engine.settings import SessionInfo

Result = tuple[Any, dict[str, Any] | None]
T = TypeVar("T")
RECENT = 10  # messages `sessions show` lists
LAST_TIMES_WINDOW = 200  # messages searched for the last of each way (heartbeats keep both in it)


class AdminHost(Protocol):
    """What these operations use of the admin server they extend (fixoms.admin.AdminServer, which imports
    this module: named here as a protocol so that this one does not import it back)."""

    # the engine it serves (fixoms.app.EngineApp): its session logs, gateway, venue application and risk
    app: Any

    def ask(self, make: Callable[[Callable[[Any], None]], Any]) -> Any: ...

    def on_engine_thread(self, fn: Callable[[], T]) -> T: ...

    def session(self, args: dict[str, Any]) -> tuple[SessionInfo, Any]: ...

    def describe(self, info: SessionInfo, session: Any) -> dict[str, Any]: ...

    def wait_state(self, session: Any, logged_on: bool, timeout: float) -> None: ...


class SessionOps:
    def __init__(self, server: AdminHost) -> None:
        self.server = server
        self.app = server.app

    def actions(self) -> dict[str, Callable[[str, dict[str, Any]], Result]]:
        return {
            "sessions.disconnect": self.disconnect,
            "sessions.sequence_reset": self.sequence_reset,
            "sessions.resend": self.resend,
            "sessions.test_request": self.test_request,
            "sessions.hold": self.hold,
            "sessions.release": self.release,
        }

    # --- what list/show add ----------------------------------------------------------------------
    def _logs(self, info: SessionInfo) -> SessionLogFactory:
        return self.app.client_logs if info.connection_type == "acceptor" else self.app.venue_logs

    # Both read the session's FileLog (its last window): QuickFIX's C++ writes it, nothing in Python sees
    # each message go by.
    def last_times(self, info: SessionInfo) -> dict[str, str | None]:
        out: dict[str, str | None] = {"last_in": None, "last_out": None}
        messages, _ = tail(Path(self.message_log(info)), info.sender, limit=LAST_TIMES_WINDOW)
        for m in messages:
            out["last_in" if m.direction == "in" else "last_out"] = m.ts
        return out

    def recent(self, info: SessionInfo, n: int = RECENT) -> list[dict[str, Any]]:
        messages, _ = tail(Path(self.message_log(info)), info.sender, limit=n)
        return [m.as_dict() for m in messages]

    def message_log(self, info: SessionInfo) -> str:
        return str(message_file(self._logs(info).path, info.begin_string, info.sender, info.target))

    def trading_states(self, keys: list[str]) -> dict[str, str]:
        """Each client session's trading state (HALTED: held).

        Read from this thread, not through the engine thread: `sessions list` must answer while the
        engine waits for its database, and one dict lookup per session is atomic under the GIL."""
        risk = self.app.risk
        return {k: risk.state_of(Scope("session", k)).value for k in keys}

    # --- helpers ---------------------------------------------------------------------------------
    def _live(self, args: dict[str, Any], what: str) -> tuple[SessionInfo, Any, dict[str, Any]]:

        info, session = self.server.session(args)
        before = self.server.describe(info, session)
        if before["state"] != "LOGGED_ON":
            raise AdminError(f"session {info.key} is not logged on: {what} needs a live session")
        return info, session, before

    def _app(self, info: SessionInfo) -> GuardedApplication:
        return self.app.gateway if info.connection_type == "acceptor" else self.app.venue_app

    @staticmethod
    def _send(info: SessionInfo, raw: str) -> None:

        sid = fix.SessionID(info.begin_string, info.sender, info.target)
        if not fix.Session.sendToTarget(fix.Message(raw, False), sid):
            raise AdminError(f"session {info.key}: QuickFIX did not send the message (session down?)")

    @staticmethod
    def _seqno(args: dict[str, Any], name: str, minimum: int) -> int:

        value = args.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise AdminError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return value

    # --- actions ---------------------------------------------------------------------------------
    def disconnect(self, who: str, args: dict[str, Any]) -> Result:

        info, session, before = self._live(args, "disconnect")
        session.disconnect()  # no Logout: the TCP connection is just closed, the session stays enabled
        self.server.wait_state(session, False, float(args.get("wait", 5.0)))
        after = self.server.describe(info, session)
        return {"before": before, "after": after}, {"before": brief_session(before), "after": brief_session(after)}

    def sequence_reset(self, who: str, args: dict[str, Any]) -> Result:

        new = self._seqno(args, "new_seqno", 1)
        info, session, before = self._live(args, "a SequenceReset")
        raw = codec.encode_sequence_reset(info.begin_string, new)

        def send() -> int:
            current = int(session.getExpectedSenderNum())
            if new < current:
                raise AdminError(f"NewSeqNo {new} is below the next sequence number {current} we send on "
                                 f"{info.key}: the counterparty would refuse it (lowering needs `sessions reset`)")
            self._send(info, raw)
            # QuickFIX numbered the reset itself and moved on by one; the counterparty now expects `new`.
            session.setNextSenderMsgSeqNum(new)
            return current

        sent_at = self.server.on_engine_thread(send)
        after = self.server.describe(info, session)
        result = {"id": info.key, "new_seqno": new, "sent_with_seqno": sent_at, "before": before, "after": after}
        return result, {"new_seqno": new, "before": brief_session(before), "after": brief_session(after)}

    def resend(self, who: str, args: dict[str, Any]) -> Result:

        begin = self._seqno(args, "begin", 1)
        end = self._seqno(args, "end", 0) if args.get("end") is not None else 0
        if end and end < begin:
            raise AdminError(f"EndSeqNo {end} is before BeginSeqNo {begin} (0 means through the last)")
        info, session, before = self._live(args, "a ResendRequest")
        if begin >= before["next_target_seq"]:
            raise AdminError(f"{info.key} has sent us up to {before['next_target_seq'] - 1}: nothing to resend from "
                             f"{begin}")
        self._send(info, codec.encode_resend_request(info.begin_string, begin, end))
        result = {"id": info.key, "begin": begin, "end": end, "next_target_seq": before["next_target_seq"]}
        return result, result

    def test_request(self, who: str, args: dict[str, Any]) -> Result:
        import queue


        timeout = args.get("timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
            raise AdminError(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
        info, _, _ = self._live(args, "a TestRequest")
        probes = self._app(info).probes
        test_req_id = f"OPS-{secrets.token_hex(6)}"
        answers = probes.expect(test_req_id)
        try:
            start = time.perf_counter()
            self._send(info, codec.encode_test_request(info.begin_string, test_req_id))
            try:
                answered = answers.get(timeout=float(timeout))
            except queue.Empty:
                raise AdminError(f"no Heartbeat answering TestRequest {test_req_id} from {info.key} within "
                                 f"{timeout:g}s") from None
        finally:
            probes.forget(test_req_id)
        result = {"id": info.key, "test_req_id": test_req_id, "round_trip_ms": round((answered - start) * 1000, 3)}
        return result, result

    def _session_state(self, args: dict[str, Any], verb: str) -> tuple[SessionInfo, str]:

        info, _ = self.server.session(args)
        if info.connection_type != "acceptor":
            raise AdminError(f"{info.key} is a venue session: {verb} applies to client sessions (use `sessions "
                             f"disable` or `risk halt` for a venue)")
        return info, self.trading_states([info.key])[info.key]

    def _set_state(self, who: str, info: SessionInfo, state: str, reason: str) -> tuple[str, str]:

        answer = self.server.ask(lambda put: c.SetTradingState(f"session:{info.key}", state, who, reason,
                                                               False, reply=put))
        if isinstance(answer, str):
            raise AdminError(answer)
        before, after, _ = answer
        return state_name(before), state_name(after)

    def hold(self, who: str, args: dict[str, Any]) -> Result:

        info, state = self._session_state(args, "hold")
        if state == "HALTED":
            raise AdminError(f"session {info.key} is already held (trading state HALTED)")
        reason = str(args.get("reason") or f"held by {who}")
        before, after = self._set_state(who, info, "HALTED", reason)
        result = {"id": info.key, "before": before, "after": after, "reason": reason}
        return result, result

    def release(self, who: str, args: dict[str, Any]) -> Result:

        info, state = self._session_state(args, "release")
        if state != "HALTED":
            # Releasing must not silently lift a REDUCING set with `risk reduce`.
            raise AdminError(f"session {info.key} is not held (trading state {state})"
                             + (": use `risk resume`" if state != "ACTIVE" else ""))
        reason = str(args.get("reason") or f"released by {who}")
        before, after = self._set_state(who, info, "ACTIVE", reason)
        result = {"id": info.key, "before": before, "after": after, "reason": reason}
        return result, result

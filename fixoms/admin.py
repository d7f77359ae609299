"""The admin socket: how operators (the `fixoms` CLI) act on a running engine.

A Unix domain socket (mode 0600, path `[engine] admin_socket`, or FIXOMS_ADMIN_SOCKET) served by one
thread inside `fixoms run`. The protocol is JSON lines: each request `{"action": NAME, "args": {...}}`
gets one answer `{"ok": true, "result": ...}` or `{"ok": false, "error": "one line"}`; a connection
may carry several requests.

Who is asking comes from the kernel (SO_PEERCRED: the peer's uid, named with pwd), never from the
request; only the engine's own user and root may connect. Every request is audited (an `admin` row of
the journal's hash chain) with that user, its arguments (passwords left out) and its outcome.

The server never touches order state: it submits the engine's operator commands (AdminCancel,
SetTradingState, SetRiskLimit) and waits for their answers, calls QuickFIX's thread-safe session
methods (logon/logout/reset, sequence numbers), swaps the authenticator's credentials, and reads the
journal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import queue
import secrets
import socket
import stat
import statistics
import struct
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from fixoms.admin_errors import AdminError, brief_session, state_name
from oms import commands as c
from oms.queries import load_credentials, set_credential

# QuickFIX (fix_engine.settings, fixoms.admin_sessions) is imported where the server uses it: the CLI
# imports this module for AdminClient and socket_path, and its read commands must start quickly.
if TYPE_CHECKING:
    from fix_engine import settings as fix_settings
    from fix_engine.client_gateway import ClientGateway
    from fixoms.config import Config
    from fixoms.jobs import Jobs
    from oms.engine import Engine
    from oms.journal import Journal

log = logging.getLogger(__name__)

SOCKET_ENV = "FIXOMS_ADMIN_SOCKET"
MAX_LINE = 1 << 20
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL
T = TypeVar("T")

# The engine has no "do nothing and answer" command, so waiting for the engine thread uses a risk-limit
# change it refuses (an unknown limit name): the engine answers it after committing everything queued
# before it, changes nothing and journals nothing, and runs the reply on the engine thread, where the
# engine's state may be read. Nothing else ever sends this name.
# Reads that change nothing: not worth an audit row each.
_NOT_AUDITED = frozenset({"ping", "journal.sync"})


class EngineNotRunning(AdminError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"engine not running: no admin socket at {path}")
        self.path = path


def socket_path(config: Config) -> Path:
    """Where the admin socket is: FIXOMS_ADMIN_SOCKET if set, else the config's `admin_socket`."""
    env = os.environ.get(SOCKET_ENV)
    return Path(env) if env else Path(config.admin_socket)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value)
    return str(value)


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, default=_json_default, separators=(",", ":")) + "\n").encode()


# --- server ------------------------------------------------------------------------------------------
class EngineHost(Protocol):
    """What the admin server uses of the engine it serves: fixoms.app.EngineApp (named here as a protocol
    so that this module, which the app imports, does not import the app back)."""

    config: Config
    engine: Engine
    gateway: ClientGateway
    jobs: Jobs
    journal: Journal
    risk: Any
    router: Any
    settings: Any


class AdminServer:
    def __init__(self, app: EngineHost, path: Path, reply_timeout: float = 10.0) -> None:
        self.app = app
        self.path = Path(path)
        self.reply_timeout = reply_timeout
        self._sock: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._answering = threading.Lock()  # held from a request read to its answer sent
        self._inode: int | None = None
        self._allowed_uids = {os.getuid(), 0}
        self._actions: dict[str, Callable[[str, dict[str, Any]], tuple[Any, dict[str, Any] | None]]] = {
            "ping": self._ping,
            "journal.sync": self._journal_sync,
            "sessions.list": self._sessions_list,
            "sessions.show": self._sessions_show,
            "sessions.enable": self._sessions_enable,
            "sessions.disable": self._sessions_disable,
            "sessions.reset": self._sessions_reset,
            "sessions.seqnum": self._sessions_seqnum,
            "credentials.set": self._credentials_set,
            "credentials.reload": self._credentials_reload,
            "orders.cancel": self._orders_cancel,
            "orders.cancel_all": self._orders_cancel_all,
            "risk.show": self._risk_show,
            "risk.set": self._risk_set,
            "risk.state": self._risk_state,
            "jobs.list": self._jobs_list,
            "venues.list": self._venues_list,
            "jobs.run": self._jobs_run,
        }
        from fixoms.admin_sessions import SessionOps

        self.session_ops = SessionOps(self)
        self._actions.update(self.session_ops.actions())
        self._actions["ha.step_down"] = self._ha_step_down

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        path = self.path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise AdminError(f"admin socket path {path} is longer than {MAX_SOCKET_PATH} bytes: choose a shorter "
                             f"[engine] admin_socket")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._bind_private(sock, path)
            sock.listen(16)
            sock.settimeout(0.25)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._inode = os.stat(path).st_ino
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="fixoms-admin", daemon=True)
        self._thread.start()
        log.info("admin socket listening at %s", path)

    @staticmethod
    def _clear_stale(path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise AdminError(f"admin socket path {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)  # left by an engine that died: nobody listens
            return
        finally:
            probe.close()
        raise AdminError(f"admin socket {path} is in use by another running engine")

    @staticmethod
    def _bind_private(sock: socket.socket, path: Path) -> None:
        """Bind in a fresh 0700 folder, make the socket 0600, then move it into place: it is never
        reachable with wider permissions."""
        private = path.parent / f".adm{secrets.token_hex(3)}"
        if len(os.fsencode(private / "s")) > MAX_SOCKET_PATH:
            sock.bind(str(path))
            os.chmod(path, 0o600)
            return
        private.mkdir(mode=0o700)
        try:
            tmp = private / "s"
            sock.bind(str(tmp))
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                (private / "s").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                private.rmdir()

    def stop(self) -> None:
        self._stop.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            # shutdown wakes the admin thread's accept at once (close alone leaves it to its 0.25 s timeout,
            # which every stop of an engine waited for)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        conn = self._conn
        if conn is not None:
            # A request being answered is answered first: `ha step-down` stops this engine as soon as it
            # has said yes, and shutting the connection under that answer left the operator with "the engine
            # closed the admin connection without answering" (2 of 16 runs of tests/fault/test_failover.py).
            # Not from the admin thread itself, which holds it; bounded, as the thread's join below.
            thread = self._thread
            if thread is not None and thread.ident != threading.get_ident() and self._answering.acquire(timeout=5):
                self._answering.release()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        # Remove the socket file only if it is still ours (not one a later engine put there).
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        self._inode = None

    # --- serving ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("admin socket accept failed")
                time.sleep(0.5)
                continue
            self._conn = conn
            try:
                self._handle_connection(conn)
            except Exception:
                log.exception("admin connection failed")
            finally:
                self._conn = None
                with contextlib.suppress(OSError):
                    conn.close()

    def _handle_connection(self, conn: socket.socket) -> None:
        conn.settimeout(60.0)
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                               struct.calcsize("3i")))
        who = _user_name(uid)
        if uid not in self._allowed_uids:
            log.warning("admin socket: refused user %s (pid %d)", who, pid)
            self._audit(who, {"action": "connect", "ok": False, "error": "user not allowed"})
            conn.sendall(_dumps({"ok": False, "error": f"user {who} may not use this engine's admin socket"}))
            return
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, OSError):
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    with self._answering:  # `stop` lets an answer under way go out (see there)
                        answer = _dumps(self.handle_line(who, line))
                        try:
                            conn.sendall(answer)
                        except OSError:  # the caller went away (Ctrl-C): the action is done and audited
                            return
            if len(buf) > MAX_LINE:
                conn.sendall(_dumps({"ok": False, "error": f"request longer than {MAX_LINE} bytes"}))
                return

    def handle_line(self, who: str, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("action"), str):
                raise ValueError("a request is {\"action\": NAME, \"args\": {...}}")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError("args must be an object")
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        return self.dispatch(who, request["action"], args)

    def dispatch(self, who: str, action: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = self._actions.get(action)
        if handler is None:
            return {"ok": False, "error": f"unknown action {action!r} (known: {', '.join(sorted(self._actions))})"}
        record: dict[str, Any] = {"action": action, "args": {k: v for k, v in args.items() if k != "password"}}
        try:
            result, detail = handler(who, args)
        except AdminError as exc:
            answer: dict[str, Any] = {"ok": False, "error": str(exc)}
            record |= {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("admin action %s failed", action)
            answer = {"ok": False, "error": f"{action} failed: {exc.__class__.__name__}: {exc}"}
            record |= {"ok": False, "error": answer["error"]}
        else:
            answer = {"ok": True, "result": result}
            record |= {"ok": True, **(detail or {})}
        if action not in _NOT_AUDITED:
            warning = self._audit(who, record)
            if warning:
                answer["warning"] = warning
        return answer

    def _audit(self, who: str, record: dict[str, Any]) -> str | None:
        try:
            self.app.journal.append_audit(who, "admin", json.loads(json.dumps(record, default=_json_default)))
        except Exception as exc:
            log.error("admin action not audited: %s", exc)
            return f"not audited: {exc.__class__.__name__}: {exc}"
        return None

    # --- engine helpers --------------------------------------------------------------------------
    def ask(self, make: Callable[[Callable[[Any], None]], Any]) -> Any:
        """Submit an operator command built with a reply callable and wait for the engine's answer."""
        answers: queue.Queue[Any] = queue.Queue()
        self.app.engine.submit(make(answers.put))
        try:
            return answers.get(timeout=self.reply_timeout)
        except queue.Empty:
            raise AdminError(f"the engine did not answer within {self.reply_timeout:g}s") from None

    def on_engine_thread(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the engine thread once everything submitted before is committed; return its value."""
        value = self.ask(lambda put: c.EngineCall(fn, put))
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[no-any-return]

    # --- actions ---------------------------------------------------------------------------------
    def _ha_step_down(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        ha = getattr(self.app, "ha", None)  # fixoms.ha: a planned switch-over to the standby
        if ha is None:
            raise AdminError("this engine does not run in HA mode (run --standby, or [ha] enabled): no standby "
                             "to step down to")
        # a refused step-down raises fixoms.ha.StepDownRefused, an AdminError: the operator's one-line answer
        return ha.node.step_down(force=bool(args.get("force"))), None

    def _ping(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        return {"instance": self.app.config.instance, "pid": os.getpid(), "user": who,
                "socket": str(self.path)}, None

    def _journal_sync(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """Project what the engine has appended so far: the CLI asks this before it reads the journal's
        tables, which trail the log by a projection pass (read what you just did)."""
        self.app.journal.sync()
        return None, None

    # sessions
    def _infos(self) -> dict[str, fix_settings.SessionInfo]:
        from fix_engine import settings as fix_settings

        return {s.key: s for s in fix_settings.sessions(self.app.settings)}

    def session(self, args: dict[str, Any]) -> tuple[fix_settings.SessionInfo, Any]:
        from fix_engine.quickfix_import import fix

        key = str(args.get("id") or "")
        infos = self._infos()
        info = infos.get(key)
        if info is None:
            raise AdminError(f"no session {key!r} (sessions: {', '.join(sorted(infos))})")
        session = fix.Session.lookupSession(fix.SessionID(info.begin_string, info.sender, info.target))
        if session is None:
            raise AdminError(f"session {key} is configured but not running in this engine")
        return info, session

    def describe(self, info: fix_settings.SessionInfo, session: Any) -> dict[str, Any]:
        acceptor = info.connection_type == "acceptor"
        if acceptor:
            remote = self.app.gateway.remote.get(info.key, "")
        else:
            s = info.settings
            remote = f"{s.get('SocketConnectHost', '')}:{s.get('SocketConnectPort', '')}"
        enabled = bool(session.isEnabled())
        logged_on = bool(session.isLoggedOn())
        return {
            "id": info.key,
            "role": "client" if acceptor else "venue",
            "connection": info.connection_type,
            "begin_string": info.begin_string,
            "sender": info.sender,
            "target": info.target,
            "enabled": enabled,
            "state": "LOGGED_ON" if logged_on else "DOWN",
            "next_sender_seq": int(session.getExpectedSenderNum()),
            "next_target_seq": int(session.getExpectedTargetNum()),
            "remote": remote,
            "heartbeat": int(info.settings.get("HeartBtInt", "0") or 0),
            **self.session_ops.last_times(info),
        }

    def _with_trading(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add each client session's trading state (HALTED: held by `sessions hold` or `risk halt`)."""
        states = self.session_ops.trading_states([r["id"] for r in rows if r["role"] == "client"])
        for r in rows:
            r["trading"] = states.get(r["id"], "")
        return rows

    def _sessions_list(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        from fix_engine.quickfix_import import fix

        out = []
        for info in self._infos().values():
            session = fix.Session.lookupSession(fix.SessionID(info.begin_string, info.sender, info.target))
            if session is not None:
                out.append(self.describe(info, session))
        return self._with_trading(out), None

    def _sessions_show(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        info, session = self.session(args)
        out = self._with_trading([self.describe(info, session)])[0]
        out["message_log"] = self.session_ops.message_log(info)
        out["recent"] = self.session_ops.recent(info)
        out["settings"] = dict(info.settings)
        if info.connection_type == "acceptor":
            auth = self.app.gateway.authenticator
            cred = auth.credentials.get(info.key) if auth is not None else None
            out["credential"] = (
                {"username": cred.username, "allowed_addresses": sorted(cred.allowed_addresses)} if cred else None
            )
            out["cancel_on_disconnect"] = info.key in self.app.config.cancel_on_disconnect
        return out, None

    def wait_state(self, session: Any, logged_on: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and bool(session.isLoggedOn()) != logged_on:
            time.sleep(0.05)

    def _sessions_enable(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        info, session = self.session(args)
        before = self.describe(info, session)
        session.logon()
        if info.connection_type == "initiator":
            self.wait_state(session, True, float(args.get("wait", 3.0)))
        after = self.describe(info, session)
        return {"before": before, "after": after}, {"before": brief_session(before), "after": brief_session(after)}

    def _sessions_disable(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        info, session = self.session(args)
        reason = str(args.get("reason") or f"disabled by {who}")
        before = self.describe(info, session)
        session.logout(reason)
        # QuickFIX sends the Logout on its next timer tick (about a second): wait for the session to drop.
        self.wait_state(session, False, float(args.get("wait", 5.0)))
        after = self.describe(info, session)
        return {"before": before, "after": after, "reason": reason}, {"before": brief_session(before),
                                                                        "after": brief_session(after), "reason": reason}

    def _sessions_reset(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        info, session = self.session(args)
        before = self.describe(info, session)
        session.reset()  # Logout if logged on, disconnect, sequence numbers back to 1/1
        after = self.describe(info, session)
        return {"before": before, "after": after}, {"before": brief_session(before), "after": brief_session(after)}

    def _sessions_seqnum(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        info, session = self.session(args)
        sender, target, force = args.get("sender"), args.get("target"), bool(args.get("force"))
        if sender is None and target is None:
            raise AdminError("give --sender N and/or --target N")
        for name, value in (("sender", sender), ("target", target)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise AdminError(f"{name} sequence number must be an integer >= 1, got {value!r}")
        before = self.describe(info, session)
        if not force:
            if before["state"] == "LOGGED_ON":
                raise AdminError(f"session {info.key} is logged on: disable it first, or use --force")
            if target is not None and target < before["next_target_seq"]:
                raise AdminError(f"lowering the target sequence number of {info.key} from "
                                 f"{before['next_target_seq']} to {target} would accept old messages again: "
                                 f"use --force if the counterparty agreed")
        if sender is not None:
            session.setNextSenderMsgSeqNum(int(sender))
        if target is not None:
            session.setNextTargetMsgSeqNum(int(target))
        after = self.describe(info, session)
        return {"before": before, "after": after}, {"before": brief_session(before), "after": brief_session(after)}

    # credentials
    def _credentials_set(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        comp_id = str(args.get("comp_id") or "")
        password = args.get("password")
        if not comp_id or not isinstance(password, str) or not password:
            raise AdminError("credentials.set needs comp_id and a non-empty password")
        username = str(args.get("username") or comp_id)
        addresses = frozenset(str(a) for a in args.get("addresses") or [])
        before = load_credentials(self.app.journal.engine).get(comp_id)
        set_credential(self.app.journal.engine, comp_id, username, password, addresses, who)
        detail = {"comp_id": comp_id, "username": username, "allowed_addresses": sorted(addresses),
                  "replaced": before is not None}
        return detail, detail

    def _credentials_reload(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        auth = self.app.gateway.authenticator
        if auth is None:
            raise AdminError("this engine does not authenticate logons")
        old = auth.credentials
        new = load_credentials(self.app.journal.engine)
        auth.credentials = new  # one reference swap: a logon checks either the old or the new set
        result = {
            "before": len(old),
            "after": len(new),
            "added": sorted(set(new) - set(old)),
            "removed": sorted(set(old) - set(new)),
            "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
        }
        return result, result

    # orders
    def _order_status(self, order_id: str) -> str | None:
        from oms.enums import reported_status

        order = self.app.engine.orders.get(order_id)
        if order is None:
            return None
        return reported_status(order.status, order.pending).name

    def _cancelable(self, order_id: str) -> tuple[bool, str]:
        """On the engine thread: (can the operator cancel it, its status)."""
        order = self.app.engine.orders.get(order_id)
        if order is None:
            return False, "UNKNOWN"
        status = self._order_status(order_id) or "UNKNOWN"
        return (not order.is_terminal and order.pending is None), status

    def _orders_cancel(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        order_id = str(args.get("order_id") or "")
        reason = str(args.get("reason") or "canceled by operator")
        ok, before = self.on_engine_thread(lambda: self._cancelable(order_id))
        if before == "UNKNOWN":
            raise AdminError(f"no order {order_id}")
        if not ok:
            raise AdminError(f"order {order_id} is {before}: nothing to cancel"
                             if before not in ("PENDING_CANCEL", "PENDING_REPLACE")
                             else f"order {order_id} is {before}: wait for the pending request to finish")
        self.app.engine.submit(c.AdminCancel(order_id, who, reason))
        after = self.on_engine_thread(lambda: self._order_status(order_id))
        result = {"order_id": order_id, "before": before, "after": after, "reason": reason}
        return result, result

    def _orders_cancel_all(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        account, symbol, session, venue = (args.get(k) for k in ("account", "symbol", "session", "venue"))
        if not (account or symbol or session or venue):
            raise AdminError("cancel-all needs a scope: --account, --symbol, --session and/or --venue")
        reason = str(args.get("reason") or "canceled by operator")

        def select() -> list[tuple[str, str]]:
            out = []
            for order in self.app.engine.orders.values():
                if order.is_terminal or order.pending is not None:
                    continue
                if (account and order.account != account) or (symbol and order.symbol != symbol) or (
                        session and order.session != session):
                    continue
                if venue and not any(ch.venue == venue and not ch.done for ch in order.children.values()):
                    continue
                out.append((order.order_id, self._order_status(order.order_id) or ""))
            return sorted(out)

        chosen = self.on_engine_thread(select)
        for order_id, _ in chosen:
            self.app.engine.submit(c.AdminCancel(order_id, who, reason))
        after = self.on_engine_thread(lambda: {oid: self._order_status(oid) for oid, _ in chosen})
        orders = [{"order_id": oid, "before": status, "after": after.get(oid)} for oid, status in chosen]
        scope = {k: v for k, v in (("account", account), ("symbol", symbol), ("session", session),
                                   ("venue", venue)) if v}
        result = {"scope": scope, "reason": reason, "count": len(orders), "orders": orders}
        return result, {"scope": scope, "reason": reason, "count": len(orders),
                        "order_ids": [o["order_id"] for o in orders]}

    # risk
    def _risk_show(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        return self.on_engine_thread(self.app.risk.snapshot), None

    def _risk_set(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        account, name, value = (str(args.get(k) or "") for k in ("account", "name", "value"))
        if not account or not name or not value:
            raise AdminError("risk set needs ACCOUNT NAME VALUE")
        answer = self.ask(lambda put: c.SetRiskLimit(account, name, value, who, reply=put))
        if isinstance(answer, str):
            raise AdminError(answer)
        before, after = answer
        result = {"account": account, "name": name, "before": before, "after": after}
        return result, result

    def _risk_state(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        scope, state, reason = (str(args.get(k) or "") for k in ("scope", "state", "reason"))
        cancel_open = bool(args.get("cancel_open"))
        if not reason.strip():
            raise AdminError("a trading state change needs a reason (--reason)")
        answer = self.ask(lambda put: c.SetTradingState(scope, state, who, reason, cancel_open, reply=put))
        if isinstance(answer, str):
            raise AdminError(answer)
        before, after, canceled = answer
        result = {"scope": scope, "before": state_name(before), "after": state_name(after), "reason": reason,
                  "canceled": canceled}
        return result, result

    # jobs
    def _venues_list(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """Status, fees and latency profile, measured ack time (median of the last 100 children: routed ->
        the venue's New), open children and today's fills per venue (engine thread)."""
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from oms.queries import fills_by_venue

        engine = self.app.engine
        router = self.app.router
        # "Today" is the trading day in the configured time zone; the journal counts finished orders'
        # fills too (after a restart only working orders are in memory).
        tz = ZoneInfo(self.app.config.timezone)
        midnight = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        self.app.journal.sync()  # the executions table trails the log by a projection pass
        fills_today = fills_by_venue(self.app.journal.engine, midnight)

        def read() -> list[dict[str, Any]]:
            rows = []
            for name in sorted(engine.venues):
                children = [ch for o in engine.orders.values() for ch in o.children.values() if ch.venue == name]
                fills = fills_today.get(name, 0)
                profile = router.profile(name)
                rows.append({
                    # suspect: logged on but not answering (oms.engine venue faults)
                    "venue": name, "status": ("down" if name not in engine.venues_up
                                              else "suspect" if name in engine.suspect else "up"),
                    "open_children": sum(1 for ch in children if not ch.done),
                    "in_doubt": sum(1 for ch in children if ch.in_doubt),
                    "fills_today": fills,
                    "taker_fee": str(profile.taker_fee), "maker_rebate": str(profile.maker_rebate),
                    "latency_ms": str(profile.latency_ms),
                    "ack_ms": _median_ms(engine.venue_ack_s.get(name)),
                    "symbols_quoted": len([s for s in router.book.symbols() if name in router.book.venues(s)]),
                })
            return rows

        return self.on_engine_thread(read), None

    def _jobs_list(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        return self.app.jobs.list(), None

    def _jobs_run(self, who: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        name = str(args.get("name") or "")
        from fixoms.jobs import JOB_NAMES

        if name not in JOB_NAMES:
            raise AdminError(f"unknown job {name!r} (known: {', '.join(JOB_NAMES)})")

        def open_count() -> int:
            return sum(not o.is_terminal for o in self.app.engine.orders.values())

        before = self.on_engine_thread(open_count)
        detail = self.app.jobs.run_now(name)
        after = self.on_engine_thread(open_count)
        result = {"job": name, "open_orders_before": before, "open_orders_after": after}
        if detail is not None:
            result["detail"] = detail
        return result, result


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def current_user() -> str:
    return _user_name(os.getuid())


# --- client ------------------------------------------------------------------------------------------
class AdminClient:
    """One request per connection: `AdminClient(path).call("sessions.list")`."""

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def call(self, action: str, **args: Any) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise EngineNotRunning(self.path) from None
            except PermissionError:
                raise AdminError(f"permission denied on admin socket {self.path}: run as the engine's user") from None
            except OSError as exc:
                raise AdminError(f"cannot connect to admin socket {self.path}: {exc.strerror or exc}") from None
            sock.sendall(_dumps({"action": action, "args": args}))
            buf = b""
            while not buf.endswith(b"\n"):
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    raise AdminError(f"no answer from the engine within {self.timeout:g}s") from None
                if not chunk:
                    raise AdminError("the engine closed the admin connection without answering")
                buf += chunk
        finally:
            sock.close()
        answer = json.loads(buf)
        if not answer.get("ok"):
            raise AdminError(str(answer.get("error", "request failed")))
        if answer.get("warning"):
            log.warning("%s", answer["warning"])
        return answer.get("result")


def _median_ms(samples: Any) -> str:
    return f"{statistics.median(samples) * 1000:.2f}" if samples else "-"

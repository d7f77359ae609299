"""A QuickFIX Application whose callbacks can never hang the process.

An exception other than QuickFIX's own escaping a callback hangs QuickFIX, so every callback body is
guarded: QuickFIX's exceptions pass through (they are how we answer Reject/Logout), anything else is
logged and turned into the nearest FIX answer by the subclass.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from fix_engine import codec
from fix_engine.inbox import LOGON, Inbox, session_event
from fix_engine.outbox import Outbox
from fix_engine.quickfix_import import fix

log = logging.getLogger(__name__)

# QuickFIX's own exceptions: raising these from a callback is the documented way to answer.
QF_EXCEPTIONS: tuple[type[BaseException], ...] = (
    fix.RejectLogon,
    fix.UnsupportedMessageType,
    fix.DoNotSend,
    fix.FieldNotFound,
    fix.IncorrectDataFormat,
    fix.IncorrectTagValue,
)


_DICTIONARIES: dict[str, Any] = {}


def dictionary(begin_string: str) -> Any:
    """The shipped data dictionary for a BeginString, loaded once."""
    if begin_string not in _DICTIONARIES:
        from fix_engine.settings import resolve_dictionary

        _DICTIONARIES[begin_string] = fix.DataDictionary(resolve_dictionary(begin_string.replace(".", "") + ".xml"))
    return _DICTIONARIES[begin_string]


def destroy(obj: Any) -> None:
    """Delete a stopped QuickFIX acceptor or initiator now, however many Python references to it are left;
    the proxy must not be used afterwards.

    Its sessions leave QuickFIX's process-wide registry only when it is deleted (settings.registered), and
    a Python reference is easily kept by accident: an exception raised by its start() (a port that cannot
    be bound) holds it in its traceback, in the frame of quickfix.py's start(), and pytest keeps a failed
    test's exception in a reference cycle until the garbage collector runs, later, on whatever thread then
    allocates. Left to reference counting, such an acceptor outlived its engine's stop(): the next engine's
    sessions (same ids) were kept out of the registry and its clients' logons went to the old sessions;
    when the collector deleted those, the ids left the registry ("Session not found") and connections still
    using them crashed (SIGSEGV or heap corruption)."""
    type(obj).__swig_destroy__(obj)


def session_key(sid: Any) -> str:
    """Our name for a session: the counterparty's CompID."""
    return str(sid.getTargetCompID().getValue())


def copy_session_id(sid: Any) -> Any:
    """SessionIDs handed to callbacks are borrowed C++ objects: keep our own copy."""
    return fix.SessionID(
        sid.getBeginString().getValue(), sid.getSenderCompID().getValue(), sid.getTargetCompID().getValue(),
        sid.getSessionQualifier(),
    )


class Probes:
    """TestRequests an operator sent (`fixoms sessions test-request`), by TestReqID(112): the Heartbeat
    that answers one records when it arrived. Costs nothing while none is pending."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, queue.Queue[float]] = {}

    @property
    def pending(self) -> bool:
        return bool(self._waiting)

    def expect(self, test_req_id: str) -> queue.Queue[float]:
        answers: queue.Queue[float] = queue.Queue(1)
        with self._lock:
            self._waiting[test_req_id] = answers
        return answers

    def forget(self, test_req_id: str) -> None:
        with self._lock:
            self._waiting.pop(test_req_id, None)

    def on_admin(self, raw: str) -> None:
        fields = codec.parse(raw)
        if fields.get(codec.MSG_TYPE) != codec.HEARTBEAT:
            return
        with self._lock:
            answers = self._waiting.pop(fields.get(codec.TEST_REQ_ID, ""), None)
        if answers is not None:
            answers.put(time.perf_counter())


class GuardedApplication(fix.Application):  # type: ignore[misc]
    """Base for our acceptor and initiator applications. Subclasses override the `on_*` hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.session_ids: dict[str, Any] = {}
        self.begin_strings: dict[str, str] = {}
        self.logged_on: set[str] = set()
        self.probes = Probes()
        # Sends in progress, and whether QuickFIX's sessions are about to be destroyed (`close`)
        self._gate = threading.Condition()
        self._sending = 0
        self._closed = False
        # Set (before QuickFIX's sessions are created) to take application messages, logons and logouts
        # from QuickFIX's AppInbox on the engine thread (`pump`) instead of in callbacks on its threads.
        self.fix_inbox: Inbox | None = None
        # Application messages QuickFIX handed to `fromApp` on its own thread (all of them without an
        # inbox; with one, only those it could not queue)
        self.callback_deliveries = 0
        # HA (the sessions' store in the database, patched: native/quickfix/build.sh): after each journal
        # append, tell each session's store how far what was pumped is kept (`journaled`), so that the
        # number received it stores never passes a message the engine has not journaled yet.
        self.durable_marks = False
        self._pumped: dict[str, int] = {}
        self._mark_failed = False
        # Set (before QuickFIX's sessions are created, with the session setting AppOutboxFd) to hand the
        # engine thread's messages to a thread of each session (`post`, `flush`, `wait_sent`) instead of
        # sending them on the engine thread (fix_engine.outbox). The engine thread is the one that pumps.
        self.outboxes: dict[str, Outbox] = {}
        self._engine_thread = 0

    # --- QuickFIX callbacks (guarded) --------------------------------------------------------
    def onCreate(self, sid: Any) -> None:
        self._guard("onCreate", self._created, sid)

    def onLogon(self, sid: Any) -> None:
        self._guard("onLogon", self._logon, sid)

    def onLogout(self, sid: Any) -> None:
        self._guard("onLogout", self._logout, sid)

    def toAdmin(self, message: Any, sid: Any) -> None:
        self._guard("toAdmin", self.on_to_admin, message, sid)

    def fromAdmin(self, message: Any, sid: Any) -> None:
        if self.probes.pending:
            self._guard("probe", self.probes.on_admin, message.toString())
        self._guard("fromAdmin", self.on_from_admin, message, sid)

    def toApp(self, message: Any, sid: Any) -> None:
        self._guard("toApp", self.on_to_app, message, sid)

    def fromApp(self, message: Any, sid: Any) -> None:
        # Only without an inbox, or when QuickFIX could not hand a message to it (AppInbox.h).
        self.callback_deliveries += 1
        self._receive(message.toString(), session_key(sid))

    def _receive(self, raw: str, key: str) -> None:
        try:
            self.on_from_app(raw, key)
        except QF_EXCEPTIONS:
            raise
        except Exception as exc:
            log.exception("message from %s not processed", key)
            try:
                self.on_app_error(raw, key, exc)
            except Exception:
                log.exception("error answer failed")

    # --- the inbox (engine thread) -----------------------------------------------------------
    def fileno(self) -> int:
        assert self.fix_inbox is not None
        return self.fix_inbox.fileno()

    def pump(self) -> None:
        """Hand what QuickFIX's sessions queued in the inbox to the hooks, in the order it came; never
        blocks. Runs on the engine thread, so the hooks' `submit` reaches the engine queue in order."""
        if self.fix_inbox is None or self.fix_inbox.closed:
            return
        self._engine_thread = threading.get_ident()
        for frame in self.fix_inbox.read():
            event = session_event(frame)
            if event is None:
                key = codec.field(frame, codec.SENDER_COMP_ID)
                if self.durable_marks:
                    with contextlib.suppress(ValueError):
                        self._pumped[key] = int(codec.field(frame, codec.MSG_SEQ_NUM))
                try:
                    self._receive(frame, key)
                except QF_EXCEPTIONS as exc:  # there is no QuickFIX callback to answer it for us
                    log.error("message refused after QuickFIX took it: %r", exc)
            else:
                what, key = event
                self._guard(what, self.on_logon if what == LOGON else self.on_logout, key)

    def journaled(self) -> None:
        """Everything pumped so far is journaled (or answered): each session's store may say so (HA only,
        `durable_marks`). A store told nothing keeps storing the number QuickFIX received, as before."""
        if not self._pumped:
            return
        pumped, self._pumped = self._pumped, {}
        with self._sessions_in_use() as usable:
            if not usable:
                return
            try:
                for key, seq in pumped.items():
                    sid = self.session_ids.get(key)
                    session = fix.Session.lookupSession(sid) if sid is not None else None
                    if session is not None:
                        # number 0 is no message: the patched PostgreSQLStore takes it as the durable mark
                        session.getStore().set(0, str(seq + 1))
            except Exception:  # never the engine's stop: a store told nothing new stores less, which is safe
                if not self._mark_failed:
                    log.exception("telling the FIX store what the journal holds failed (logged once)")
                self._mark_failed = True

    def _guard(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except QF_EXCEPTIONS:
            raise
        except Exception:
            log.exception("%s failed", name)

    def _created(self, sid: Any) -> None:
        key = session_key(sid)
        self.session_ids[key] = copy_session_id(sid)
        self.begin_strings[key] = sid.getBeginString().getValue()

    def _logon(self, sid: Any) -> None:
        key = session_key(sid)
        self.logged_on.add(key)
        log.info("logon %s", key)
        if self.fix_inbox is None:  # else it comes through the inbox, in order with the messages
            self.on_logon(key)

    def _logout(self, sid: Any) -> None:
        key = session_key(sid)
        self.logged_on.discard(key)
        log.info("logout %s", key)
        if self.fix_inbox is None:
            self.on_logout(key)

    # --- hooks -------------------------------------------------------------------------------
    def on_logon(self, key: str) -> None:
        pass

    def on_logout(self, key: str) -> None:
        pass

    def on_to_admin(self, message: Any, sid: Any) -> None:
        pass

    def on_from_admin(self, message: Any, sid: Any) -> None:
        pass

    def on_to_app(self, message: Any, sid: Any) -> None:
        pass

    def on_from_app(self, raw: str, key: str) -> None:
        raise fix.UnsupportedMessageType()

    def on_app_error(self, raw: str, key: str, exc: Exception) -> None:
        pass

    # --- sending -----------------------------------------------------------------------------
    def post(self, key: str, raw: str) -> None:
        """Send a message built as a string, without repeating groups: from the engine thread, through the
        session's outbox (it goes at the batch's `flush`); from any other thread, or without an outbox,
        at once (`send_raw`)."""
        box = self._engine_outbox(key)
        if box is None:
            self.send_raw(key, raw)
        else:
            box.queue(raw)

    def _engine_outbox(self, key: str) -> Outbox | None:
        """The session's outbox if this is the engine thread and the outbox is in use, else None."""
        box = self.outboxes.get(key)
        if box is None or box.broken or threading.get_ident() != self._engine_thread:
            return None
        return box

    def flush(self) -> None:
        """Hand what the engine thread posted to the sessions' threads (end of a batch's sends)."""
        for box in self.outboxes.values():
            try:
                box.flush()
            except OSError as exc:  # its session is gone: what it had is the restart's to resend
                log.error("handing messages to session %s failed: %s", box.key, exc)
                box.broken = True

    def wait_sent(self) -> None:
        """Block until the sessions have sent everything flushed (before the next journal append)."""
        for box in self.outboxes.values():
            box.wait()

    def send_raw(self, key: str, raw: str, groups: bool = False) -> bool:
        """Send a message built as a string (see codec). Thread-safe; the GIL is released inside.

        A message with repeating groups must be parsed with the data dictionary, or QuickFIX would
        reorder the group's repeated tags. On the engine thread, what it posted to the session before
        goes first."""
        box = self._engine_outbox(key)
        if box is not None and box.pending():
            box.flush()
            box.wait()
        sid = self.session_ids.get(key)
        if sid is None:
            log.error("send to unknown session %s dropped", key)
            return False
        if groups:
            message = fix.Message(raw, dictionary(self.begin_strings.get(key, "FIX.4.4")), False)
        else:
            message = fix.Message(raw, False)
        with self._sessions_in_use() as usable:
            if not usable:
                log.warning("send to %s after its sessions were closed dropped", key)
                return False
            return bool(fix.Session.sendToTarget(message, sid))

    @contextlib.contextmanager
    def _sessions_in_use(self) -> Iterator[bool]:
        """Counts a use of QuickFIX's sessions from this thread for `close` to wait for; yields False (and
        counts nothing) once they are closed."""
        with self._gate:
            closed = self._closed
            if not closed:
                self._sending += 1
        if closed:
            yield False
            return
        try:
            yield True
        finally:
            with self._gate:
                self._sending -= 1
                if not self._sending:
                    self._gate.notify_all()

    def close(self, timeout: float = 10.0) -> bool:
        """Refuse further sends and wait for those in progress; True once none is. Called before the
        acceptor/initiator holding this application is destroyed: sendToTarget finds the session in
        QuickFIX's registry and uses it without a lock, so a send from another thread (the engine's, if
        it outlived its stop) while the session is deleted would use freed memory.

        Only counted, not serialized: a callback on a QuickFIX thread holds its session's lock and may
        send (a reject) while another thread waits for that lock inside sendToTarget."""
        deadline = time.monotonic() + timeout
        for box in self.outboxes.values():
            # What the engine thread handed over before it stopped goes out before the sessions are deleted
            # (they are stopped by now: a session not logged on stores the message for a resend).
            box.wait(deadline)
        with self._gate:
            self._closed = True
            return self._gate.wait_for(lambda: not self._sending, max(0.0, deadline - time.monotonic()))

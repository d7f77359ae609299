"""A QuickFIX LogFactory (Python may supply Log and LogFactory, not a MessageStore) that keeps
QuickFIX's own FileLog and also tells the gateway what it needs before a Logon is processed:

- the remote address of each session's connection ("Allows connections to the acceptor from X");
- the session's sequence numbers just before a Logon is handled, so a refused Logon with
  ResetSeqNumFlag=Y can be rolled back (QuickFIX resets before it asks the application);
- refused connections for unknown CompIDs (QuickFIX only closes the socket), logged with the reason.

It also keeps, per session, the last messages in and out and when they passed (`Traffic`), so an
operator sees them without reading files (`fixoms sessions show|list`), and lets the log-rotation job
back the files up while QuickFIX keeps writing (`SessionLogFactory.rotate`). The FileLog's message
files are also read back here (`read_messages`), for `fixoms sessions messages` with or without a
running engine.

Every method is guarded: an exception escaping a QuickFIX callback would end the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fix_engine import codec
from fix_engine.quickfix_import import fix
from fix_engine.settings import session_file_prefix

log = logging.getLogger("fix_engine.sessions")

ALLOWS = "Allows connections to the acceptor from "
DENIES = "Deny connections to the acceptor from "
NOT_FOUND = "Session not found for incoming message: "


class LogListener(Protocol):
    def on_remote_address(self, sid: Any, address: str) -> None: ...

    def before_logon(self, sid: Any) -> None: ...


def _safe(s: str) -> str:
    """SWIG hands us invalid UTF-8 as surrogate escapes, which FileLog cannot take back: log them replaced."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class Traffic:
    """The last messages of one session (time, "in"/"out", raw) and when the last of each way passed.

    Appended on QuickFIX's thread, read by the admin thread: deque appends and copies are atomic under
    the GIL, so no lock is needed."""

    def __init__(self, keep: int) -> None:
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=keep)
        self.last_in: float | None = None
        self.last_out: float | None = None

    def add(self, direction: str, raw: str) -> None:
        now = time.time()
        self.recent.append((now, direction, raw))
        if direction == "in":
            self.last_in = now
        else:
            self.last_out = now

    def last(self, n: int) -> list[tuple[float, str, str]]:
        return list(self.recent)[-n:] if n > 0 else []


class _SessionLog(fix.Log):  # type: ignore[misc]
    def __init__(self, inner: Any, sid: Any | None, listener: LogListener | None,
                 traffic: Traffic | None = None) -> None:
        fix.Log.__init__(self)
        self.inner = inner
        self.sid = sid
        self.listener = listener
        self.traffic = traffic
        # The rotation job backs the files up from another thread while QuickFIX writes: the C++ FileLog
        # has no lock of its own.
        self.lock = threading.Lock()

    def clear(self) -> None:
        try:
            with self.lock:
                self.inner.clear()
        except Exception:
            log.exception("log clear failed")

    def backup(self) -> None:
        try:
            with self.lock:
                self.inner.backup()
        except Exception:
            log.exception("log backup failed")

    def onIncoming(self, s: str) -> None:
        try:
            with self.lock:
                self.inner.onIncoming(_safe(s))
            if self.traffic is not None:
                self.traffic.add("in", s)
            if self.sid is not None and self.listener is not None and "\x0135=A\x01" in s:
                self.listener.before_logon(self.sid)
        except Exception:
            log.exception("log hook failed")

    def onOutgoing(self, s: str) -> None:
        try:
            with self.lock:
                self.inner.onOutgoing(_safe(s))
            if self.traffic is not None:
                self.traffic.add("out", s)
        except Exception:
            log.exception("log failed")

    def onEvent(self, s: str) -> None:
        try:
            with self.lock:
                self.inner.onEvent(_safe(s))
            if s.startswith(ALLOWS) and self.sid is not None and self.listener is not None:
                self.listener.on_remote_address(self.sid, s[len(ALLOWS):])
            elif s.startswith(DENIES):
                log.warning("refused connection for %s: %s", self.sid, s)
            elif s.startswith(NOT_FOUND):
                fields = dict(p.split("=", 1) for p in s[len(NOT_FOUND):].split("\x01") if "=" in p)
                log.warning("refused logon: unknown session %s %s->%s (socket closed by QuickFIX)",
                            fields.get("8"), fields.get("49"), fields.get("56"))
        except Exception:
            log.exception("log hook failed")


class SessionLogFactory(fix.LogFactory):  # type: ignore[misc]
    def __init__(self, settings: Any, listener: LogListener | None = None, keep: int = 200) -> None:
        fix.LogFactory.__init__(self)
        defaults = settings.get()
        self.path = defaults.getString("FileLogPath") if defaults.has("FileLogPath") else "var/log"
        self.listener = listener
        self.keep = keep
        # Session key (the counterparty's CompID) -> its traffic; filled as QuickFIX creates sessions.
        self.traffic: dict[str, Traffic] = {}
        # Every log QuickFIX has from create() and has not destroyed yet, with its FileLog (rotate)
        self._keep: list[Any] = []

    def create(self, *args: Any) -> Any:
        sid = args[0] if args else None
        inner = fix.FileLog(self.path, sid) if sid is not None else fix.FileLog(self.path)
        traffic = None
        if sid is not None:
            traffic = self.traffic.setdefault(str(sid.getTargetCompID().getValue()), Traffic(self.keep))
        wrapper = _SessionLog(inner, sid, self.listener, traffic)
        self._keep.append((wrapper, inner))
        wrapper.__disown__()  # QuickFIX holds it (and so keeps it alive) until it calls destroy()
        return wrapper

    def destroy(self, log_: Any) -> None:
        """QuickFIX is done with a log (its session or acceptor is being deleted): delete the C++ side,
        which lets go of our wrapper, and with it its FileLog, which closes its files. Without this every
        engine started in a process left its log files open."""
        try:
            address = int(log_.this)  # a proxy of its own, not our wrapper: compared by address
            for i, (wrapper, _inner) in enumerate(self._keep):
                if int(wrapper.this) == address:
                    del self._keep[i]
                    fix.Log.__swig_destroy__(wrapper)
                    return
        except Exception:
            log.exception("log destroy failed")

    def rotate(self) -> int:
        """Back up every log this factory made (QuickFIX's FileLog.backup: the current files become
        `*.backup.N.log` and fresh ones are opened). Returns how many logs were backed up."""
        done = 0
        for wrapper, _ in self._keep:
            wrapper.backup()
            done += 1
        return done


# --- reading the FileLog's message files back -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoggedMessage:
    ts: str  # as logged (UTC), or ISO 8601 for the in-memory traffic
    direction: str  # "in" or "out", as seen from the logging side
    raw: str

    @property
    def fields(self) -> list[tuple[int, str]]:
        try:
            return codec.parse_list(self.raw)
        except ValueError:
            return []

    @property
    def msg_type(self) -> str:
        return _field(self.raw, codec.MSG_TYPE)

    @property
    def seq(self) -> str:
        return _field(self.raw, codec.MSG_SEQ_NUM)

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "direction": self.direction, "seq": self.seq, "msg_type": self.msg_type,
                "msg_type_name": codec.MSG_TYPE_NAMES.get(self.msg_type, ""), "message": tag_value(self.raw)}


def _field(raw: str, tag: int) -> str:
    marker = f"{codec.SOH}{tag}="
    start = raw.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    end = raw.find(codec.SOH, start)
    return raw[start:] if end < 0 else raw[start:end]


def tag_value(raw: str) -> str:
    """`8=FIX.4.4|9=65|35=0|...`: a message readable on one line."""
    return raw.rstrip(codec.SOH).replace(codec.SOH, "|")


def from_traffic(items: list[tuple[float, str, str]]) -> list[LoggedMessage]:
    return [LoggedMessage(datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"), d, raw)
            for t, d, raw in items]


def message_file(log_dir: str | Path, begin: str, sender: str, target: str, qualifier: str = "") -> Path:
    """The FileLog's current message file of a session (QuickFIX names it after the SessionID)."""
    return Path(log_dir) / f"{session_file_prefix(begin, sender, target, qualifier)}.messages.current.log"


def read_messages(path: Path, our_comp_id: str, offset: int = 0) -> tuple[list[LoggedMessage], int]:
    """Messages logged in `path` from byte `offset` on, and the offset after the last whole line.

    The FileLog writes `TIMESTAMP : MESSAGE` lines for both ways; the direction is told by
    SenderCompID(49). A file shorter than `offset` was rotated: it is read from the start."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], 0
    if size < offset:
        offset = 0
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1  # a line being written is read next time
    out: list[LoggedMessage] = []
    for line in data[:end].decode("utf-8", "replace").splitlines():
        ts, sep, raw = line.partition(" : ")
        if not sep or not raw.startswith("8="):
            continue
        direction = "out" if _field(raw, codec.SENDER_COMP_ID) == our_comp_id else "in"
        out.append(LoggedMessage(_iso(ts), direction, raw))
    return out, offset + end


def _iso(ts: str) -> str:
    """FileLog's `20250102-14:03:07.123456789` as `2025-01-02T14:03:07.123+00:00`, like the in-memory ring."""
    if len(ts) < 17 or ts[8] != "-":
        return ts
    return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}T{ts[9:21]}+00:00"  # to the millisecond, when there are any


def tail(path: Path, our_comp_id: str, types: frozenset[str] = frozenset(), limit: int = 50,
         ) -> tuple[list[LoggedMessage], int]:
    """The last `limit` messages of a file (of `types` if given) and the file's end offset."""
    messages, offset = read_messages(path, our_comp_id)
    if types:
        messages = [m for m in messages if m.msg_type in types]
    return messages[-limit:] if limit > 0 else messages, offset


def follow(path: Path, our_comp_id: str, offset: int, types: frozenset[str] = frozenset(),
           poll: float = 0.2) -> Iterator[list[LoggedMessage]]:
    """Each poll's new messages as QuickFIX appends them (often none), forever: the caller decides when
    to stop, so it can keep a deadline even while nothing arrives."""
    while True:
        messages, offset = read_messages(path, our_comp_id, offset)
        yield [m for m in messages if not types or m.msg_type in types]
        if not messages:
            time.sleep(poll)

"""A QuickFIX LogFactory (Python may supply Log and LogFactory, not a MessageStore) for the events QuickFIX
tells before a Logon is processed, which the gateway needs:

- the remote address of each session's connection ("Allows connections to the acceptor from X");
- the session's sequence numbers just before a Logon with ResetSeqNumFlag=Y resets them, so a refused
  Logon can be rolled back (QuickFIX resets before it asks the application);
- refused connections for unknown CompIDs (QuickFIX only closes the socket), logged with the reason.

The messages themselves stay in C++: with the guarded build (`native=True`, the session setting
NativeMessageLog=Y of native/quickfix/guard.patch) each session writes its own FileLog, messages and
events, without calling Python - a per-message callback took the GIL on QuickFIX's thread with the
session's lock held. This log then only watches the events. Without it (a plain QuickFIX) it writes the
FileLog itself, as before. Either way the FileLog's files are the one record of a session's traffic:
an operator's last messages and last in/out times are read back from them (`read_messages`,
`tail`), with or without a running engine, and the rotation job backs them up through
QuickFIX's session (`SessionLogFactory.rotate`).

Every method is guarded: an exception escaping a QuickFIX callback would end the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fix_engine import codec
from fix_engine.quickfix_import import fix
from fix_engine.settings import session_file_prefix

log = logging.getLogger("fix_engine.sessions")

ALLOWS = "Allows connections to the acceptor from "
DENIES = "Deny connections to the acceptor from "
NOT_FOUND = "Session not found for incoming message: "
RESETTING = "Logon contains ResetSeqNumFlag=Y"


class LogListener(Protocol):
    def on_remote_address(self, sid: Any, address: str) -> None: ...

    def before_logon(self, sid: Any) -> None: ...


def _safe(s: str) -> str:
    """SWIG hands us invalid UTF-8 as surrogate escapes, which FileLog cannot take back: log them replaced."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _SessionLog(fix.Log):  # type: ignore[misc]
    def __init__(self, inner: Any | None, sid: Any | None, listener: LogListener | None) -> None:
        fix.Log.__init__(self)
        self.inner = inner  # None when the session logs natively
        self.sid = sid
        self.listener = listener
        # The rotation job backs the files up from another thread while QuickFIX writes: the C++ FileLog
        # has no lock of its own.
        self.lock = threading.Lock()

    def clear(self) -> None:
        try:
            if self.inner is not None:
                with self.lock:
                    self.inner.clear()
        except Exception:
            log.exception("log clear failed")

    def backup(self) -> None:
        try:
            if self.inner is not None:
                with self.lock:
                    self.inner.backup()
        except Exception:
            log.exception("log backup failed")

    def onIncoming(self, s: str) -> None:
        try:
            if self.inner is not None:
                with self.lock:
                    self.inner.onIncoming(_safe(s))
        except Exception:
            log.exception("log failed")

    def onOutgoing(self, s: str) -> None:
        try:
            if self.inner is not None:
                with self.lock:
                    self.inner.onOutgoing(_safe(s))
        except Exception:
            log.exception("log failed")

    def onEvent(self, s: str) -> None:
        try:
            if self.inner is not None:
                with self.lock:
                    self.inner.onEvent(_safe(s))
            if s.startswith(ALLOWS) and self.sid is not None and self.listener is not None:
                self.listener.on_remote_address(self.sid, s[len(ALLOWS):])
            elif s.startswith(RESETTING) and self.sid is not None and self.listener is not None:
                self.listener.before_logon(self.sid)
            elif s.startswith(DENIES):
                log.warning("refused connection for %s: %s", self.sid, s)
            elif s.startswith(NOT_FOUND):
                fields = dict(p.split("=", 1) for p in s[len(NOT_FOUND):].split("\x01") if "=" in p)
                log.warning("refused logon: unknown session %s %s->%s (socket closed by QuickFIX)",
                            fields.get("8"), fields.get("49"), fields.get("56"))
        except Exception:
            log.exception("log hook failed")


class SessionLogFactory(fix.LogFactory):  # type: ignore[misc]
    def __init__(self, settings: Any, listener: LogListener | None = None, native: bool = False) -> None:
        """native: the sessions write their FileLogs themselves (NativeMessageLog=Y in `settings`)."""
        fix.LogFactory.__init__(self)
        defaults = settings.get()
        self.path = defaults.getString("FileLogPath") if defaults.has("FileLogPath") else "var/log"
        self.listener = listener
        self.native = native
        # Every log QuickFIX has from create() and has not destroyed yet, with its session (rotate)
        self._keep: list[tuple[Any, Any | None]] = []

    def create(self, *args: Any) -> Any:
        sid = None
        if args:
            s = args[0]  # borrowed from QuickFIX: our own copy
            sid = fix.SessionID(s.getBeginString().getValue(), s.getSenderCompID().getValue(),
                                s.getTargetCompID().getValue(), s.getSessionQualifier())
        if sid is None:
            inner = fix.FileLog(self.path)
        else:
            inner = None if self.native else fix.FileLog(self.path, sid)
        wrapper = _SessionLog(inner, sid, self.listener)
        self._keep.append((wrapper, sid))
        wrapper.__disown__()  # QuickFIX holds it (and so keeps it alive) until it calls destroy()
        return wrapper

    def destroy(self, log_: Any) -> None:
        """QuickFIX is done with a log (its session or acceptor is being deleted): delete the C++ side,
        which lets go of our wrapper, and with it its FileLog, which closes its files. Without this every
        engine started in a process left its log files open."""
        try:
            address = int(log_.this)  # a proxy of its own, not our wrapper: compared by address
            for i, (wrapper, _sid) in enumerate(self._keep):
                if int(wrapper.this) == address:
                    del self._keep[i]
                    fix.Log.__swig_destroy__(wrapper)
                    return
        except Exception:
            log.exception("log destroy failed")

    def rotate(self) -> int:
        """Back up every log of this factory's (QuickFIX's FileLog.backup: the current files become
        `*.backup.N.log` and fresh ones are opened). Returns how many logs were backed up.

        A native session log is reached through its session (SessionState::backup, under the lock its
        writes take)."""
        done = 0
        for wrapper, sid in list(self._keep):
            if self.native and sid is not None:
                session = fix.Session.lookupSession(sid)
                if session is None:
                    continue
                session.getLog().backup()
            else:
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
        return codec.field(self.raw, codec.MSG_TYPE)

    @property
    def seq(self) -> str:
        return codec.field(self.raw, codec.MSG_SEQ_NUM)

    def as_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "direction": self.direction, "seq": self.seq, "msg_type": self.msg_type,
                "msg_type_name": codec.MSG_TYPE_NAMES.get(self.msg_type, ""), "message": tag_value(self.raw)}


def tag_value(raw: str) -> str:
    """`8=FIX.4.4|9=65|35=0|...`: a message readable on one line."""
    return raw.rstrip(codec.SOH).replace(codec.SOH, "|")


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
    return _parse_lines(data[:end], our_comp_id), offset + end


def _parse_lines(data: bytes, our_comp_id: str) -> list[LoggedMessage]:
    out: list[LoggedMessage] = []
    for line in data.decode("utf-8", "replace").splitlines():
        ts, sep, raw = line.partition(" : ")
        if not sep or not raw.startswith("8="):
            continue
        direction = "out" if codec.field(raw, codec.SENDER_COMP_ID) == our_comp_id else "in"
        out.append(LoggedMessage(_iso(ts), direction, raw))
    return out


def _iso(ts: str) -> str:
    """FileLog's `20250102-14:03:07.123456789` as `2025-01-02T14:03:07.123+00:00`."""
    if len(ts) < 17 or ts[8] != "-":
        return ts
    return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}T{ts[9:21]}+00:00"  # to the millisecond, when there are any


def tail(path: Path, our_comp_id: str, types: frozenset[str] = frozenset(), limit: int = 50,
         ) -> tuple[list[LoggedMessage], int]:
    """The last `limit` messages of a file (of `types` if given; all for limit 0) and the file's end offset.

    Read from the end, a window at a time: a day's file of a busy session is large, and an operator
    asking for the last ten messages must not wait for all of it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], 0
    window = 64 * 1024
    with path.open("rb") as fh:
        while True:
            start = max(0, size - window)
            fh.seek(start)
            data = fh.read(size - start)
            end = data.rfind(b"\n") + 1
            first = 0 if start == 0 else data.find(b"\n") + 1  # the window's first line may be cut
            messages = _parse_lines(data[first:end], our_comp_id)
            if types:
                messages = [m for m in messages if m.msg_type in types]
            if start == 0 or (limit > 0 and len(messages) >= limit):
                return (messages[-limit:] if limit > 0 else messages), start + end
            window *= 4


def follow(path: Path, our_comp_id: str, offset: int, types: frozenset[str] = frozenset(),
           poll: float = 0.2) -> Iterator[list[LoggedMessage]]:
    """Each poll's new messages as QuickFIX appends them (often none), forever: the caller decides when
    to stop, so it can keep a deadline even while nothing arrives."""
    while True:
        messages, offset = read_messages(path, our_comp_id, offset)
        yield [m for m in messages if not types or m.msg_type in types]
        if not messages:
            time.sleep(poll)

"""A QuickFIX LogFactory (Python may supply Log and LogFactory, not a MessageStore) that keeps
QuickFIX's own FileLog and also tells the gateway what it needs before a Logon is processed:

- the remote address of each session's connection ("Allows connections to the acceptor from X");
- the session's sequence numbers just before a Logon is handled, so a refused Logon with
  ResetSeqNumFlag=Y can be rolled back (QuickFIX resets before it asks the application);
- refused connections for unknown CompIDs (QuickFIX only closes the socket), logged with the reason.

Every method is guarded: an exception escaping a QuickFIX callback would end the process.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from fix_engine.quickfix_import import fix

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


class _SessionLog(fix.Log):  # type: ignore[misc]
    def __init__(self, inner: Any, sid: Any | None, listener: LogListener | None) -> None:
        fix.Log.__init__(self)
        self.inner = inner
        self.sid = sid
        self.listener = listener

    def clear(self) -> None:
        try:
            self.inner.clear()
        except Exception:
            log.exception("log clear failed")

    def backup(self) -> None:
        try:
            self.inner.backup()
        except Exception:
            log.exception("log backup failed")

    def onIncoming(self, s: str) -> None:
        try:
            self.inner.onIncoming(_safe(s))
            if self.sid is not None and self.listener is not None and "\x0135=A\x01" in s:
                self.listener.before_logon(self.sid)
        except Exception:
            log.exception("log hook failed")

    def onOutgoing(self, s: str) -> None:
        try:
            self.inner.onOutgoing(_safe(s))
        except Exception:
            log.exception("log failed")

    def onEvent(self, s: str) -> None:
        try:
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
    def __init__(self, settings: Any, listener: LogListener | None = None) -> None:
        fix.LogFactory.__init__(self)
        defaults = settings.get()
        self.path = defaults.getString("FileLogPath") if defaults.has("FileLogPath") else "var/log"
        self.listener = listener
        self._keep: list[Any] = []  # QuickFIX owns the C++ side; the Python objects must stay alive

    def create(self, *args: Any) -> Any:
        sid = args[0] if args else None
        inner = fix.FileLog(self.path, sid) if sid is not None else fix.FileLog(self.path)
        wrapper = _SessionLog(inner, sid, self.listener)
        self._keep.append((wrapper, inner))
        wrapper.__disown__()
        return wrapper

    def destroy(self, log_: Any) -> None:
        pass

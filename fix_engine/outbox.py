"""The sending end of a session's outbox (native/quickfix/guard.patch, AppOutbox.h).

With `AppOutboxFd` set, the engine thread does not call `sendToTarget` for each message it sends (QuickFIX
then parses it, fills its header, writes it to the store - for PostgreSQL a round trip - and to the log and
the socket, all on the engine thread). It queues the batch's messages per session, writes each session's
in one system call (`flush`) and goes on; a thread of the session sends them and writes back one byte per
message sent. Before the engine journals its next batch it waits for those bytes (`wait`), so that, as
before, a crash can leave at most the last journaled batch unsent, which a restart sends again.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

log = logging.getLogger(__name__)

_SOCKET_BUFFER = 4 << 20  # the kernel caps it (net.core.*mem_max); sendall waits for the rest
# A session that has not said it sent anything for this long is reported, and after GIVE_UP_S given up on
# (its thread has gone: the session was deleted, or its counterpart stopped reading for that long).
_REPORT_S = 5.0
GIVE_UP_S = 60.0


class Outbox:
    """One socket pair per session: QuickFIX reads `quickfix_fd` (the session setting AppOutboxFd), the
    engine thread writes to the other end. Thread-safe, though only the engine thread queues."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._mine, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        self._theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        self._lock = threading.Lock()
        self._queued: list[bytes] = []
        self.posted = 0  # messages written to QuickFIX
        self.sent = 0  # messages QuickFIX said it sent
        self.broken = False  # given up on: the application sends to this session synchronously again
        self.closed = False

    @property
    def quickfix_fd(self) -> int:
        return self._theirs.fileno()

    def queue(self, raw: str) -> None:
        # as SWIG hands a str to QuickFIX: UTF-8, surrogate escapes back to the bytes they stood for
        data = raw.encode("utf-8", "surrogateescape")
        with self._lock:
            self._queued.append(len(data).to_bytes(4, "little") + data)

    def pending(self) -> bool:
        """Messages queued or written that QuickFIX has not said it sent (acknowledgements read now)."""
        with self._lock:
            if self._queued:
                return True
            self._read_acks()
            return self.sent < self.posted

    def flush(self) -> None:
        """Hand everything queued to QuickFIX's session thread (blocks only while the socket is full)."""
        with self._lock:
            if not self._queued:
                return
            if self.closed:  # the session is deleted: what its engine thread still posts cannot go
                log.warning("session %s: %d messages posted after its sessions were released dropped", self.key,
                            len(self._queued))
                self._queued.clear()
                return
            frames, self._queued = self._queued, []
            self._mine.sendall(b"".join(frames))
            self.posted += len(frames)

    def wait(self, deadline: float | None = None) -> bool:
        """Until QuickFIX has sent everything flushed; False if it gave up (after GIVE_UP_S without any
        progress), the outbox is closed or the `deadline` (time.monotonic) passed. The GIL is released
        while waiting."""
        if self.sent >= self.posted:  # nothing outstanding (the usual case): no lock, no system call
            return True
        reported = False
        last_progress = time.monotonic()
        while True:
            with self._lock:
                if self.closed or self.broken:
                    return False
                before = self.sent
                self._read_acks()
                if self.sent >= self.posted:
                    if reported:
                        log.warning("session %s: its messages are sent again", self.key)
                    return True
                if self.sent != before:
                    last_progress = time.monotonic()
            if deadline is not None and time.monotonic() >= deadline:
                return False
            try:
                select.select([self._mine], [], [], 1.0 if deadline is None else
                              max(0.0, min(1.0, deadline - time.monotonic())))
            except (OSError, ValueError):  # closed meanwhile
                return False
            stalled = time.monotonic() - last_progress
            if stalled >= _REPORT_S and not reported:
                reported = True
                log.warning("session %s: %d messages handed to QuickFIX not sent after %.0f s",
                            self.key, self.posted - self.sent, stalled)
            if stalled >= GIVE_UP_S:
                with self._lock:
                    self.broken = True
                log.error("session %s: its outbox sent nothing for %.0f s: given up on, %d messages may not "
                          "have gone (sends to it are synchronous from now on)", self.key, stalled,
                          self.posted - self.sent)
                return False

    def _read_acks(self) -> None:
        while True:
            try:
                data = self._mine.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.broken = True
                return
            if not data:
                self.broken = True  # QuickFIX's end is closed
                return
            self.sent += len(data)

    def close(self) -> None:
        """Only once the session that reads here is deleted (its thread joined): a descriptor closed earlier
        could be reused by another file, which that thread would then read."""
        with self._lock:
            self.closed = True
            self._queued.clear()
            self._mine.close()
            self._theirs.close()

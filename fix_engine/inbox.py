"""The receiving end of a QuickFIX application's inbox (native/quickfix/guard.patch, AppInbox.h).

With `AppInboxFd` set, QuickFIX's session threads no longer call Python for each application message
(`fromApp`, which must take the GIL while the session's lock is held, and so waited for the engine
thread's Python at every message): the validated message is written into a socket as a frame (4-byte
little-endian length, then the message) - by the session's thread when the socket takes it at once, else
by a thread of the session's that it queues it for - and the engine thread reads the
frames when it is ready, many at a time, with no other Python thread involved. A session's logon and
logout come through the same socket, in order with its messages, as frames that cannot be a FIX message
("!logon" or "!logout", SOH, the counterparty's CompID).
"""

from __future__ import annotations

import socket

LOGON = "!logon"
LOGOUT = "!logout"
_SOCKET_BUFFER = 4 << 20  # the kernel caps it (net.core.*mem_max); the C++ side queues the rest
_READ = 1 << 20


class Inbox:
    """One socket pair: QuickFIX writes to `writer_fd` (given to it as the session setting AppInboxFd),
    the engine thread reads frames with `read()` and waits for them with `fileno()` in select."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._reader.setblocking(False)
        self._writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        self._reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        self._partial = b""
        self.closed = False

    @property
    def writer_fd(self) -> int:
        return self._writer.fileno()

    def fileno(self) -> int:
        return self._reader.fileno()

    def read(self) -> list[str]:
        """Every whole frame that has arrived, oldest first; never blocks."""
        chunks = [self._partial]
        while True:
            try:
                data = self._reader.recv(_READ)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            chunks.append(data)
            if len(data) < _READ:
                break
        buf = b"".join(chunks)
        frames: list[str] = []
        at, end = 0, len(buf)
        while at + 4 <= end:
            size = int.from_bytes(buf[at:at + 4], "little")
            if at + 4 + size > end:
                break
            # as SWIG hands QuickFIX's strings to Python: invalid UTF-8 kept as surrogate escapes
            frames.append(buf[at + 4:at + 4 + size].decode("utf-8", "surrogateescape"))
            at += 4 + size
        self._partial = buf[at:]
        return frames

    def close(self) -> None:
        """Only once QuickFIX's sessions that write here are deleted (their pumps joined): a descriptor
        closed earlier could be reused by another file, which a pump would then write into."""
        self.closed = True
        self._reader.close()
        self._writer.close()


def session_event(frame: str) -> tuple[str, str] | None:
    """("!logon" or "!logout", CompID) for a session event frame, None for a FIX message."""
    if not frame.startswith("!"):
        return None
    what, _, key = frame.partition("\x01")
    return what, key

"""A standby's client ports, bound before it takes over (QuickFIX built with SocketAcceptFd: guard.patch).

A client that loses its primary reconnects on its own cadence (QuickFIX initiators: every ReconnectInterval,
alternating between SocketConnectHost and SocketConnectHost1). If the standby only listened once it had
taken over, a client that tried its address a moment before was refused and came back an interval or two
later: in tests/fault/test_failover.py the first attempt at the standby came 0.9 s after the kill, the
standby's sessions opened 0.5 s after that, and the client logged on 2.8-3.8 s after the kill, depending
only on where its reconnect cycle stood.

So a standby binds and listens on its acceptor ports as soon as it stands by, and:

- while the primary renews its lease on time, a connection waits one lease (`grace_s`) and is then
  reset (the client sees what a refused connection shows it: a disconnect, and tries again - at the
  primary). Not at once: a client whose primary was just killed reconnects at once, and its first try
  may well be at the standby, before the standby can tell that the lease will lapse;
- once a renewal is late (less than the lease minus two renewal intervals left) or the lease is free, it
  stops accepting: connections wait in the socket's backlog, their Logon unread;
- when it takes over, QuickFIX's acceptor is handed the listening sockets (SocketAcceptFd) and answers
  the waiting Logons as soon as its sessions are up.

If the primary recovers before that, the waiting connections are accepted and closed like the others.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time

log = logging.getLogger(__name__)

BACKLOG = 128
_POLL_S = 0.05


class HeldPorts:
    """Listening sockets on `ports`, refusing (a connection is reset once it has waited `grace_s`) until
    `hold` is called; `hand_over` gives their descriptors away (the caller's QuickFIX acceptor owns and
    closes them from then on)."""

    def __init__(self, ports: list[int], grace_s: float, host: str = "") -> None:
        self.grace_s = grace_s
        self._sockets: dict[int, socket.socket] = {}
        for port in sorted(set(ports)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(BACKLOG)
                sock.setblocking(False)  # while we refuse; QuickFIX's accept thread needs it blocking
            except OSError as exc:
                sock.close()
                log.warning("HA standby: client port %d not bound ahead of a takeover (%s): clients that try it "
                            "before then are refused", port, exc)
                continue
            self._sockets[port] = sock
        self._refusing = threading.Event()
        self._refusing.set()
        self._stop = threading.Event()
        self.refused = 0
        self._thread: threading.Thread | None = None
        if self._sockets:
            self._thread = threading.Thread(target=self._refuse_loop, name="ha-held-ports", daemon=True)
            self._thread.start()

    @property
    def ports(self) -> list[int]:
        return sorted(self._sockets)

    @property
    def holding(self) -> bool:
        return not self._refusing.is_set()

    def hold(self, holding: bool) -> None:
        """True: let connections wait in the backlog (a takeover may be near); False: refuse them."""
        if holding == self.holding:
            return
        if holding:
            self._refusing.clear()
            log.info("HA standby: the primary's lease is late or free: client connections wait for the takeover")
        else:
            self._refusing.set()
            log.info("HA standby: the primary renews its lease again: client connections are refused")

    def _refuse_loop(self) -> None:
        socks = list(self._sockets.values())
        waiting_since: float | None = None  # when a connection was first seen waiting
        while True:
            refusing = self._refusing.wait(_POLL_S)
            if self._stop.is_set():
                return
            if not refusing:
                waiting_since = None  # holding: they wait for the takeover
                continue
            try:
                ready, _, _ = select.select(socks, [], [], _POLL_S)
            except (OSError, ValueError):  # closed meanwhile
                return
            if not ready:
                waiting_since = None
                continue
            now = time.monotonic()
            if waiting_since is None:
                waiting_since = now
            if now - waiting_since < self.grace_s:
                self._stop.wait(_POLL_S)  # give the lease time to show whether the primary is gone
                continue
            waiting_since = None
            for sock in ready:
                while self._refusing.is_set() and not self._stop.is_set():
                    try:
                        conn, _addr = sock.accept()
                    except OSError:  # BlockingIOError: none left (or the client gave up meanwhile)
                        break
                    # a reset, not an orderly close: the client drops the connection at once
                    with contextlib.suppress(OSError):
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    self.refused += 1

    def _stop_refusing(self) -> None:
        self._stop.set()
        self._refusing.set()  # wakes a loop that waits while holding
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def hand_over(self) -> dict[int, int]:
        """Stop refusing and give the listening descriptors away: {port: fd}. Connections waiting in their
        backlogs stay there for whoever accepts on them next."""
        self._stop_refusing()
        for sock in self._sockets.values():
            sock.setblocking(True)
        fds = {port: sock.detach() for port, sock in self._sockets.items()}
        self._sockets.clear()
        return fds

    def close(self) -> None:
        """Stop listening (connections still waiting are reset)."""
        self._stop_refusing()
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

"""fixoms.held_ports without QuickFIX: a standby's client port refuses, holds, refuses again, and a port
it cannot bind is left alone. (tests/e2e/test_start_stop.py hands a held port to a real engine.)"""

from __future__ import annotations

import contextlib
import socket
import time

from fixoms.held_ports import HeldPorts
from fixoms.netutil import free_port


def _reset_at_once(port: int) -> bool:
    """Connect and wait for the peer: True if it drops the connection (a reset or an orderly close)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"8=FIX.4.4\x01")
            return sock.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_refusing_holding_and_refusing_again() -> None:
    port = free_port()
    held = HeldPorts([port], grace_s=0.0)
    try:
        assert held.ports == [port]
        assert _reset_at_once(port) and _reset_at_once(port)
        held.hold(True)
        waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
        waiting.settimeout(0.5)
        try:
            waiting.recv(1)
            raise AssertionError("a held connection was answered or dropped")
        except TimeoutError:
            pass  # waiting in the backlog, as it should
        held.hold(False)  # the primary is on time again: whoever waited is let go, to try the primary
        waiting.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert waiting.recv(1) == b""
        waiting.close()
        deadline = time.monotonic() + 5  # counted just after the reset the client saw
        while held.refused < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held.refused == 3
    finally:
        held.close()
    with socket.socket() as again:  # closed: the port is free
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("", port))


def test_a_port_that_cannot_be_bound_is_left_out() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("", port))
        taken.listen()
        held = HeldPorts([port], grace_s=0.0)
        assert held.ports == [] and held.hand_over() == {}
        held.close()


def test_a_connection_made_while_the_primary_looks_on_time_waits_for_the_takeover_if_the_lease_lapses() -> None:
    """A client whose primary was just killed reconnects at once, often to the standby, before the
    standby can tell that the lease will lapse: it is not reset during the grace (one lease), and once the
    standby holds, it stays for the engine that takes the port over."""
    port = free_port()
    held = HeldPorts([port], grace_s=30.0)
    early = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        early.sendall(b"8=FIX.4.4\x01")
        held.hold(True)  # the lease turned out late
        fds = held.hand_over()
        with socket.socket(fileno=fds[port]) as listener:  # what the acceptor does with it
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                assert conn.recv(100) == b"8=FIX.4.4\x01"
        assert held.refused == 0
    finally:
        early.close()
        held.close()

"""Free loopback ports for the demo and tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports below the kernel's ephemeral range: an outgoing connection (an initiator's, a database driver's)
# never takes one of these as its local port, so a port picked here stays free until it is bound. A port
# the kernel hands out for bind(0) comes from that range, where one of them may take it first (a test's
# acceptor once failed with "Address already in use" for exactly that reason).
_LOWEST = 15_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    top = _ephemeral_start()
    if top - _LOWEST >= 1_000:
        for _ in range(200):
            port = random.randrange(_LOWEST, top)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

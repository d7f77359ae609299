"""Import quickfix once, undoing its SIGINT reset so Ctrl-C still stops the process cleanly."""

from __future__ import annotations

import signal
import threading

_handler = signal.getsignal(signal.SIGINT)
import quickfix as fix  # noqa: E402

if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _handler if callable(_handler) else signal.default_int_handler)

__all__ = ["fix"]

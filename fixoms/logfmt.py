"""How fixoms logs: text lines (the default) or JSON lines (`fixoms run --log-format json`, or
`[logging] format = "json"`), to stderr or to `[logging] file`.

A JSON line is one object: `ts` (UTC, ISO 8601), `level`, `logger`, `event` (the formatted message), any
`extra={...}` fields given to the logging call, and `exc` with the traceback when there is one. Stdlib
only: no dependency for a formatter. A file is opened with WatchedFileHandler, so the rotation job can
move it away and the next line starts a new file.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has: whatever else is on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str, fmt: str = "text", file: Path | None = None) -> None:
    """(Re)configure the root logger; replaces the handlers an earlier call installed."""
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.WatchedFileHandler(file)
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Its INFO lines repeat every second (the GTD poll): keep them out unless debugging.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)

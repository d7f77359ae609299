"""Log rotation (the `rotate_logs` job): the QuickFIX FileLogs and the engine's own log file.

1. Every FIX session log is backed up by QuickFIX itself (FileLog.backup, through our LogFactory so it
   cannot race a write): `X.messages.current.log` becomes `X.messages.backup.N.log`, a fresh file opens.
2. The engine log (`[logging] file`) is renamed to `NAME.YYYYmmdd-HHMMSS`; its WatchedFileHandler opens a
   new file at the next line.
3. Every rotated file is gzipped with the rotation time in its name (QuickFIX reuses backup numbers once
   the old ones are gone), empty ones are just removed.
4. Compressed logs older than `[schedule] log_retention_days` are deleted.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Rotatable(Protocol):
    path: str  # the FileLogPath folder

    def rotate(self) -> int: ...


def rotate_logs(fix_logs: Iterable[Rotatable], engine_log: Path | None, retention_days: int,
                now: float | None = None) -> dict[str, int]:
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d-%H%M%S")
    # Only names we make are ever deleted: (folder, glob of our archives there).
    archives: set[tuple[Path, str]] = set()
    rotated = 0
    for factory in fix_logs:
        rotated += factory.rotate()
        archives.add((Path(factory.path), "*.log.gz"))
    pending = [p for folder, _ in archives for p in sorted(folder.glob("*.backup.*.log"))]
    if engine_log is not None:
        archives.add((engine_log.parent, f"{engine_log.name}.*.gz"))
        if engine_log.exists() and engine_log.stat().st_size > 0:
            moved = engine_log.with_name(f"{engine_log.name}.{stamp}")
            os.replace(engine_log, moved)
            rotated += 1
        pending += [p for p in sorted(engine_log.parent.glob(f"{engine_log.name}.*")) if p.suffix != ".gz"]
    compressed = 0
    for path in pending:
        if _compress(path, stamp):
            compressed += 1
    cutoff = now - retention_days * 86400
    deleted = 0
    for folder, pattern in archives:
        for old in folder.glob(pattern):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
                deleted += 1
    return {"rotated": rotated, "compressed": compressed, "deleted": deleted}


def _compress(path: Path, stamp: str) -> bool:
    """gzip `path` beside itself and remove it; an empty file is only removed. True if a .gz was made."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
            return False
        # FIX.4.4-FIXOMS-CLIENT1.messages.backup.1.log -> FIX.4.4-FIXOMS-CLIENT1.messages.<stamp>.1.log.gz
        target = path.with_name(path.name.replace(".backup.", f".{stamp}.") + ".gz")
        n = 1
        while target.exists():  # two rotations within a second
            n += 1
            target = target.with_name(target.name[:-3] + f".{n}.gz")
        with path.open("rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
        return True
    except OSError as exc:  # one unreadable file must not stop the others
        log.error("log rotation: cannot compress %s: %s", path, exc)
        return False

"""bench/e2e.py with the engine as an HA primary ([ha] enabled: the lease, fenced appends, the FIX sessions
on QuickFIX's PostgreSQLStore). Same arguments as e2e.py; run it beside `bench/e2e.py --db postgresql` with
the same arguments for the single-node baseline (docs/performance.md, High availability).

    .venv/bin/python bench/ha_e2e.py --db postgresql --no-echo [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e  # noqa: E402

_engine_config = e2e.engine_config


def ha_engine_config(*args: Any, **kwargs: Any) -> Path:
    path = _engine_config(*args, **kwargs)
    path.write_text(path.read_text() + "\n[ha]\nenabled = true\n")
    return path


if __name__ == "__main__":
    if "postgresql" not in " ".join(sys.argv) or "sqlite" in " ".join(sys.argv):
        sys.exit("HA needs PostgreSQL: pass --db postgresql")
    e2e.engine_config = ha_engine_config
    sys.exit(e2e.main())

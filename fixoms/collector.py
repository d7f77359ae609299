"""The engine process's garbage collection: the young objects only, when the engine thread is idle.

Measured with bench/e2e.py at 1,000 resting orders/s (a gc callback timing each collection), under the
earlier policy (threshold 50,000): a young collection every ~3 s took 10-33 ms of the engine thread,
GIL held; every 20th walked those objects again (generation 1), and a full one took 80-122 ms. Most young
objects are alive - the working orders, their children, their views - and every collection walks them.
None of those collections found any garbage: the engine's objects form no reference cycles, and
reference counting frees them. So:

- automatic collection is off (gc.disable);
- the engine thread collects the young generation itself (`housekeeping`, called by oms.engine's
  runner): when it is about to wait for work and at least IDLE_AT objects are new, or after a batch
  once FORCE_AT are (a runner that is never idle);
- what survives is frozen (gc.freeze): out of the collector's sight, so no object is walked twice.
  Reference counting still frees a frozen object when it is dropped; only garbage in a cycle with a
  frozen object would stay (none was seen).

`enable` is for `fixoms run` only: a test process runs many engines and keeps the default collector.
"""

from __future__ import annotations

import gc

IDLE_AT = 2_000
FORCE_AT = 50_000

_enabled = False


def enable() -> None:
    """Collect and freeze what the start loaded, then take collection over (see the module)."""
    global _enabled
    gc.collect()
    gc.freeze()
    gc.disable()
    _enabled = True


def housekeeping(idle: bool) -> None:
    """The engine thread's call: after a batch (`idle` False) and before it waits for work (True)."""
    if _enabled and gc.get_count()[0] >= (IDLE_AT if idle else FORCE_AT):
        gc.collect(0)
        gc.freeze()

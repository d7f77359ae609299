"""The projector as a process of its own: `python -m oms.projector_process INSTANCE`, the database URL in
FIXOMS_JOURNAL_URL (not on the command line, where `ps` shows it).

Started by oms.journal.Journal (projector="process", `[journal] projector` in fixoms.toml). The hand-off
is the log itself: the engine appends and commits a batch, then writes one byte to this process's stdin;
this process projects whatever the log holds past the mark (Journal.project_new), so nothing is lost if
either side dies, and a restart of either resumes from the mark. It keeps the projection's Python work
(rows, JSON, hashes, SQLAlchemy) off the engine process's GIL, which the engine thread shares with the
QuickFIX threads. End of input (the engine closed the pipe, or died) means: one last pass, then exit.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
import sys
import time

from oms.journal import Journal
from oms.schema import make_engine

log = logging.getLogger("oms.projector")
# How long a pass waits for more appends after the first wake-up: a pass has a fixed cost (its reads of
# the marks and the log, a transaction), so under load one pass per this many ms takes every batch of
# the interval. The tables trail the log by about this much; `Journal.sync` does not wait for it.
GATHER_S = 0.05
# Every this often, a full garbage collection (see PassCollector).
FULL_GC_S = 60.0


class PassCollector:
    """Garbage collection between passes, not during them, as fixoms.collector does for the engine thread.

    A pass holds up to PASS_RECORDS decoded records and their rows, and the automatic collector walked them
    again and again while they were being made: 50-70 us of a pass's 370-410 us per order
    (bench/record_codec_bench.py). They form no reference cycles, so reference counting frees them when
    the pass ends. So: what the start loaded is frozen, automatic collection is off, the young objects are
    collected after each pass and everything every FULL_GC_S (anything SQLAlchemy or a driver left in a
    cycle is freed then)."""

    def __init__(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        self._full = time.monotonic()

    def after_pass(self) -> None:
        if time.monotonic() - self._full >= FULL_GC_S:
            gc.collect()
            self._full = time.monotonic()
        else:
            gc.collect(0)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not os.environ.get("FIXOMS_JOURNAL_URL"):
        print("usage: FIXOMS_JOURNAL_URL=... python -m oms.projector_process INSTANCE", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the engine, which closes our stdin
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # No pre-ping: a pass that fails on a dropped connection is retried below (half a second later).
    journal = Journal(make_engine(os.environ["FIXOMS_JOURNAL_URL"], pre_ping=False), argv[0], projector="off")
    fd = sys.stdin.fileno()
    failing = False
    collector = PassCollector()
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        ended = False
        if ready:
            time.sleep(GATHER_S)  # let a burst gather: one pass for all of it
            ended = not os.read(fd, 65536)
        try:
            journal.project_new()
            failing = False
        except Exception as exc:  # the database is away: the log keeps the records, try again
            if not failing:
                log.error("projecting the journal log failed (retrying): %s", exc)
            failing = True
            time.sleep(0.5)
        collector.after_pass()
        if ended:
            journal.engine.dispose()
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

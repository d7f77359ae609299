"""`--watch` for read commands: redraw until Ctrl-C (or `count` redraws). On a terminal one table is
redrawn in place (rich Live); otherwise (a pipe, a log) each redraw is printed in turn, JSON as one
array a line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console


def watch(console: Console, frame: Callable[[], tuple[Any, Any]], as_json: bool, interval: float,
          count: int | None) -> None:
    """`frame()` returns (data for --json, the table to show)."""
    from rich.live import Live

    done = 0
    try:
        if console.is_terminal and not as_json:
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    live.update(frame()[1], refresh=True)
                    done += 1
                    if count is not None and done >= count:
                        return
                    time.sleep(interval)
        while True:
            data, table = frame()
            if as_json:
                click.echo(json.dumps(data, default=str))
            else:
                console.print(table)
            done += 1
            if count is not None and done >= count:
                return
            time.sleep(interval)
    except KeyboardInterrupt:  # the way to stop watching: not an error
        return

"""`fixoms demo`, the README's first promise, run as `make demo` runs it: the installed `fixoms` script in a
subprocess, from the repository folder (its fixoms.toml). Its output must show what the README says it
shows, it must exit 0, and it may say that every session shut down cleanly only once they have."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CLEAN = "all sessions shut down cleanly"


def fixoms_script() -> list[str]:
    script = Path(sys.executable).parent / "fixoms"  # what `make demo` runs: $(VENV)/bin/fixoms
    return [str(script)] if script.exists() else [sys.executable, "-c", "from fixoms.cli import main; main()"]


def parse_tables(out: str) -> dict[str, list[dict[str, str]]]:
    """The rich tables of the output by title: each a list of rows, cells by column header."""
    tables: dict[str, list[dict[str, str]]] = {}
    title, header = "", [""]
    for line in out.splitlines():
        if line.startswith("┃"):
            header = [cell.strip() for cell in line.strip("┃").split("┃")]
        elif line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            assert len(cells) == len(header), f"a table row wrapped or cut: {line!r}"
            tables[title].append(dict(zip(header, cells, strict=True)))
        elif line and line[0] not in "┏┡└":
            title = line.strip()
            tables.setdefault(title, [])
    return tables


def steps(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(r["ExecType"], r["OrdStatus"]) for r in rows]


def test_demo_shows_what_the_readme_promises_and_shuts_down_before_saying_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIXOMS_")}
    env |= {"COLUMNS": "250", "TMPDIR": str(tmp_path)}  # wide enough that no table row wraps
    proc = subprocess.run([*fixoms_script(), "demo"], capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tables = parse_tables(proc.stdout)

    aapl = tables["CLIENT1 market buy 100 AAPL: filled"]
    assert steps(aapl) == [("NEW", "NEW"), ("TRADE", "FILLED")]
    assert (aapl[-1]["CumQty"], aapl[-1]["LeavesQty"], aapl[-1]["LastQty"]) == ("100", "0", "100")

    msft = steps(tables["CLIENT1 limit buy 2000 MSFT: partial fill, then cancel"])
    pending = msft.index(("PENDING_CANCEL", "PENDING_CANCEL"))
    assert msft[0] == ("NEW", "NEW") and ("TRADE", "PARTIALLY_FILLED") in msft[:pending]
    assert msft[-1] == ("CANCELED", "CANCELED")  # a fill may still cross the cancel (TRADE, PENDING_CANCEL)
    canceled = tables["CLIENT1 limit buy 2000 MSFT: partial fill, then cancel"][-1]
    assert 0 < int(canceled["CumQty"]) < 2000 and canceled["LeavesQty"] == "0"

    resting = tables["CLIENT1 limit sell 300 IBM away from the market: resting"]
    assert [(r["ExecType"], r["OrdStatus"], r["LeavesQty"]) for r in resting] == [("NEW", "NEW", "300")]

    (reject,) = tables["CLIENT1 market buy 100 XYZ: rejected"]
    assert (reject["ExecType"], reject["OrdStatus"]) == ("REJECTED", "REJECTED")
    assert "unknown symbol" in reject["Text"]

    tsla = tables["CLIENT2 FIX 4.2 client: market sell 200 TSLA: filled"]
    assert tsla[0]["OrdStatus"] == "NEW" and tsla[-1]["OrdStatus"] == "FILLED"  # FIX 4.2: ExecType 2 (FILL)
    assert (tsla[-1]["CumQty"], tsla[-1]["LeavesQty"]) == ("200", "0")

    # The blotter, from the journal's tables: every order of the demo, as it ended.
    blotter = {(r["session"], r["symbol"]): r for r in tables["Blotter"]}
    assert {k: (r["status"], r["cum_qty"]) for k, r in blotter.items()} == {
        ("CLIENT1", "AAPL"): ("FILLED", "100"),
        ("CLIENT1", "MSFT"): ("CANCELED", canceled["CumQty"]),
        ("CLIENT1", "IBM"): ("NEW", "0"),
        ("CLIENT1", "XYZ"): ("REJECTED", "0"),
        ("CLIENT2", "TSLA"): ("FILLED", "200"),
    }

    # "shut down cleanly" is said once, last, after the shutdown began.
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert CLEAN in lines[-1], lines[-3:]
    assert sum(CLEAN in line for line in lines) == 1
    shutting = next(i for i, line in enumerate(lines) if line.startswith("shutting down"))
    assert shutting < len(lines) - 1

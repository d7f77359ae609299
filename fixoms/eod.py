"""End-of-day report: the day's orders, fills, positions and P&L per account, as CSV files and a summary.

Reads the journal only; run by `fixoms report eod` and by the scheduled `eod_report` job.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine as SAEngine

from fixoms.blotter import list_orders, positions_report, trade_dict
from oms.positions import SettlementCalendar


def _write(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_eod(db: SAEngine, day: date, out_dir: Path, tz: tzinfo, calendar: SettlementCalendar | None = None
              ) -> dict[str, Any]:
    """Write orders/fills/positions CSVs for `day` (local to `tz`) into out_dir; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = day.strftime("%Y%m%d")
    orders = [o for o in list_orders(db)
              if o["created_at"] and datetime.fromisoformat(o["created_at"]).astimezone(tz).date() == day]
    book = positions_report(db, calendar=calendar, tz=tz, as_of=day)
    fills = [trade_dict(t) for t in book.trades if t.trade_date == day]
    positions = [p.as_dict() for p in book.positions]
    files = {
        "orders": out_dir / f"orders-{stamp}.csv",
        "fills": out_dir / f"fills-{stamp}.csv",
        "positions": out_dir / f"positions-{stamp}.csv",
    }
    _write(files["orders"], orders, list(orders[0]) if orders else ["order_id"])
    _write(files["fills"], fills, list(fills[0]) if fills else ["exec_id"])
    _write(files["positions"], positions, list(positions[0]) if positions else ["account"])
    per_account: dict[str, dict[str, Any]] = defaultdict(lambda: {"orders": 0, "fills": 0, "filled_qty": Decimal(0),
                                                                  "realized": Decimal(0), "unrealized": Decimal(0)})
    for o in orders:
        per_account[o["account"]]["orders"] += 1
    for f in fills:
        acc = per_account[f["account"]]
        acc["fills"] += 1
        acc["filled_qty"] += Decimal(f["qty"])
    for p in book.positions:
        per_account[p.account]["realized"] += p.realized
        per_account[p.account]["unrealized"] += p.unrealized
    summary = {
        "date": day.isoformat(),
        "files": {k: str(v) for k, v in files.items()},
        "accounts": {k: {n: str(v) if isinstance(v, Decimal) else v for n, v in a.items()}
                     for k, a in sorted(per_account.items())},
    }
    return summary

"""Positions and P&L per account and symbol, from executions (pure: the caller reads the journal).

Average-cost method, the same for long and short positions: a fill that adds to the position (or opens
one) moves the average cost; a fill that reduces it realizes `(px - avg) * closed qty` (times -1 when
short) and leaves the average alone; a fill that goes through flat closes the old position and opens
the rest at the fill price. Unrealized P&L is `(mark - avg) * position`; the mark of a symbol is the
price passed in, else its last fill price.

Busted executions (status "busted") do not count; corrected ones count at their corrected quantity
and price (the journal's executions rows already carry them).

Settlement: each trade settles `cycle_days` business days after its trade date (T+1 by default),
skipping weekends and the configured holidays. The trade date is the fill time's date in the
configured time zone (a 19:00 New York fill is that New York day's trade, though it is the next day
in UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from oms.enums import Side

ZERO = Decimal(0)
BUSTED = "busted"


@dataclass(frozen=True, slots=True)
class Fill:
    exec_id: str
    account: str
    symbol: str
    side: str  # the FIX value ("1" buy, "2" sell, "5" sell short) or the Side name
    qty: Decimal
    px: Decimal
    ts: datetime
    status: str = "ok"  # ok | corrected | busted

    @property
    def sign(self) -> int:
        return _side_sign(self.side)


def _side_sign(side: str) -> int:
    try:
        return Side(side).sign
    except ValueError:
        pass
    try:
        return Side[side.upper()].sign
    except KeyError:
        raise ValueError(f"unknown side {side!r}") from None


@dataclass(frozen=True, slots=True)
class SettlementCalendar:
    cycle_days: int = 1
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if self.cycle_days < 0:
            raise ValueError(f"settlement cycle_days must be >= 0, got {self.cycle_days}")

    def is_business_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self.holidays

    def settlement_date(self, trade_date: date) -> date:
        """`cycle_days` business days after the trade date (T+0 is the trade date itself, or the next
        business day when the trade date is not one)."""
        d = trade_date
        if self.cycle_days == 0:
            while not self.is_business_day(d):
                d += timedelta(days=1)
            return d
        left = self.cycle_days
        while left:
            d += timedelta(days=1)
            if self.is_business_day(d):
                left -= 1
        return d

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SettlementCalendar:
        """From a `[settlement]` table: `cycle_days = 1`, `holidays = ["2025-12-25", ...]`."""
        cycle = section.get("cycle_days", 1)
        if isinstance(cycle, bool) or not isinstance(cycle, int):
            raise ValueError(f"[settlement] cycle_days must be an integer, got {cycle!r}")
        raw = section.get("holidays", [])
        if not isinstance(raw, list):
            raise ValueError("[settlement] holidays must be a list of dates (YYYY-MM-DD)")
        holidays: set[date] = set()
        for h in raw:
            if isinstance(h, datetime):
                holidays.add(h.date())
            elif isinstance(h, date):
                holidays.add(h)
            else:
                try:
                    holidays.add(date.fromisoformat(str(h)))
                except ValueError:
                    raise ValueError(f"[settlement] holiday {h!r} is not a date (YYYY-MM-DD)") from None
        unknown = set(section) - {"cycle_days", "holidays"}
        if unknown:
            raise ValueError(f"[settlement] unknown keys: {', '.join(sorted(unknown))}")
        return cls(cycle, frozenset(holidays))


@dataclass(frozen=True, slots=True)
class Trade:
    exec_id: str
    account: str
    symbol: str
    side: str
    qty: Decimal
    px: Decimal
    ts: datetime
    trade_date: date
    settle_date: date
    status: str


@dataclass(slots=True)
class Position:
    account: str
    symbol: str
    qty: Decimal = ZERO  # signed: > 0 long, < 0 short
    avg_cost: Decimal = ZERO
    realized: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    buy_notional: Decimal = ZERO
    sell_notional: Decimal = ZERO
    fills: int = 0
    mark: Decimal | None = None
    unsettled: Decimal = ZERO  # signed quantity of trades not settled on the as-of date

    def apply(self, sign: int, qty: Decimal, px: Decimal) -> None:
        self.fills += 1
        if sign > 0:
            self.bought += qty
            self.buy_notional += qty * px
        else:
            self.sold += qty
            self.sell_notional += qty * px
        signed = qty * sign
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            held = abs(self.qty)
            self.avg_cost = (self.avg_cost * held + px * qty) / (held + qty)
            self.qty += signed
            return
        closed = min(qty, abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        self.realized += (px - self.avg_cost) * closed * direction
        self.qty += signed
        if self.qty == 0:
            self.avg_cost = ZERO
        elif (self.qty > 0) != (direction > 0):  # went through flat: the rest is a new position at px
            self.avg_cost = px

    @property
    def unrealized(self) -> Decimal:
        if self.mark is None or self.qty == 0:
            return ZERO
        return (self.mark - self.avg_cost) * self.qty

    @property
    def total(self) -> Decimal:
        return self.realized + self.unrealized

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "symbol": self.symbol,
            "qty": fmt_qty(self.qty),
            "avg_cost": fmt_price(self.avg_cost),
            "mark": fmt_price(self.mark) if self.mark is not None else "",
            "realized": fmt_money(self.realized),
            "unrealized": fmt_money(self.unrealized),
            "total": fmt_money(self.total),
            "bought": fmt_qty(self.bought),
            "sold": fmt_qty(self.sold),
            "fills": self.fills,
            "unsettled": fmt_qty(self.unsettled),
        }


@dataclass
class PositionBook:
    """An account's positions, trades and marks for the blotter (the order book is native.Book)."""

    positions: list[Position] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    marks: dict[str, Decimal] = field(default_factory=dict)

    def totals(self) -> dict[str, Decimal]:
        return {"realized": sum((p.realized for p in self.positions), ZERO),
                "unrealized": sum((p.unrealized for p in self.positions), ZERO)}

    def position(self, account: str, symbol: str) -> Position | None:
        return next((p for p in self.positions if p.account == account and p.symbol == symbol), None)


def compute(
    fills: Iterable[Fill],
    marks: Mapping[str, Decimal] | None = None,
    *,
    calendar: SettlementCalendar | None = None,
    tz: tzinfo = UTC,
    as_of: date | None = None,
) -> PositionBook:
    """Positions per (account, symbol), oldest fill first, and each counted trade with its settlement
    date. `as_of` (a date in `tz`) fills in each position's unsettled quantity."""
    calendar = calendar or SettlementCalendar()
    counted = sorted((f for f in fills if f.status != BUSTED and f.qty > 0), key=lambda f: (f.ts, f.exec_id))
    positions: dict[tuple[str, str], Position] = {}
    trades: list[Trade] = []
    last_px: dict[str, Decimal] = {}
    for f in counted:
        sign = f.sign
        pos = positions.get((f.account, f.symbol))
        if pos is None:
            pos = positions[(f.account, f.symbol)] = Position(f.account, f.symbol)
        pos.apply(sign, f.qty, f.px)
        last_px[f.symbol] = f.px
        ts = f.ts if f.ts.tzinfo is not None else f.ts.replace(tzinfo=UTC)
        trade_date = ts.astimezone(tz).date()
        settle = calendar.settlement_date(trade_date)
        trades.append(Trade(f.exec_id, f.account, f.symbol, "BUY" if sign > 0 else "SELL", f.qty, f.px, ts,
                            trade_date, settle, f.status))
        if as_of is not None and settle > as_of:
            pos.unsettled += f.qty * sign
    all_marks = {**last_px, **(marks or {})}
    for pos in positions.values():
        pos.mark = all_marks.get(pos.symbol)
    ordered = [positions[k] for k in sorted(positions)]
    return PositionBook(ordered, trades, all_marks)


def _plain(d: Decimal) -> str:
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_qty(d: Decimal) -> str:
    return _plain(d)


def fmt_price(d: Decimal) -> str:
    """Up to 6 decimals, trailing zeros dropped."""
    return _plain(d.quantize(Decimal("0.000001"), ROUND_HALF_EVEN))


def fmt_money(d: Decimal) -> str:
    """Cents (half-even)."""
    text = format(d.quantize(Decimal("0.01"), ROUND_HALF_EVEN), "f")
    return "0.00" if text == "-0.00" else text

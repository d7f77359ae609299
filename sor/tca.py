"""Transaction cost analysis: how well each parent order was executed, and over many parents.

Pure functions over plain data. Conventions:

* Shortfall is measured against the arrival mid (the NBBO mid when the order arrived), in basis points
  of it, signed so that positive is a cost: a buy filled above the arrival mid, or a sell below it.
* `shortfall_bps` covers the executed shares only. `implementation_shortfall_bps` also charges the
  unfilled shares the move from the arrival mid to `end_price`, so a strategy cannot look cheap just by
  not trading: pass the mid at the end for Perold's opportunity cost, or the far touch at the end to
  charge what completing the order would have cost (the benchmark does the latter).
* Fees are money, signed: positive paid, negative received. `fees` are what we paid (taker fees,
  maker fees on inverted venues), `rebates` what we got back, `net_fees = fees - rebates`.
* Aggregates weight by notional at the arrival mid, so a 100-share order does not count as much as a
  10,000-share one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from oms.enums import OrdType, Side, TimeInForce
from oms.model import Child, Order
from sor.venues import VenueProfile

ZERO = Decimal(0)
BPS = Decimal(10_000)
_Q = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Fill:
    qty: Decimal
    price: Decimal
    venue: str
    ts: datetime | None = None
    fee: Decimal = ZERO  # money for this fill: positive paid, negative a rebate received


@dataclass(frozen=True, slots=True)
class ParentTCA:
    order_id: str
    symbol: str
    side: Side
    order_qty: Decimal
    filled_qty: Decimal
    arrival_mid: Decimal | None
    avg_price: Decimal | None
    shortfall_bps: Decimal | None  # executed shares vs arrival mid, positive = cost
    implementation_shortfall_bps: Decimal | None  # plus the unfilled shares marked at end_price
    fill_rate: Decimal  # filled / ordered, 0..1
    fees: Decimal
    rebates: Decimal
    net_fees: Decimal
    venues: tuple[str, ...]
    time_to_fill: timedelta | None  # arrival to the fill that completed the order; None if never complete
    end_price: Decimal | None = None

    @property
    def sign(self) -> int:
        return 1 if self.side is Side.BUY else -1

    @property
    def execution_cost(self) -> Decimal:
        """Money lost against the arrival mid on the executed shares (before fees)."""
        if self.arrival_mid is None or self.avg_price is None:
            return ZERO
        return self.sign * (self.avg_price - self.arrival_mid) * self.filled_qty

    @property
    def opportunity_cost(self) -> Decimal:
        if self.arrival_mid is None or self.end_price is None:
            return ZERO
        return self.sign * (self.end_price - self.arrival_mid) * (self.order_qty - self.filled_qty)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParentTCA:
        """The inverse of `as_dict` (what the journal stores)."""

        def dec(key: str) -> Decimal | None:
            return None if d.get(key) is None else Decimal(str(d[key]))

        return cls(
            order_id=str(d["order_id"]), symbol=str(d["symbol"]), side=Side[str(d["side"])],
            order_qty=Decimal(str(d["order_qty"])), filled_qty=Decimal(str(d["filled_qty"])),
            arrival_mid=dec("arrival_mid"), avg_price=dec("avg_price"), shortfall_bps=dec("shortfall_bps"),
            implementation_shortfall_bps=dec("implementation_shortfall_bps"),
            fill_rate=Decimal(str(d["fill_rate"])), fees=Decimal(str(d["fees"])),
            rebates=Decimal(str(d["rebates"])), net_fees=Decimal(str(d["net_fees"])),
            venues=tuple(d.get("venues") or ()),
            time_to_fill=None if d.get("time_to_fill_s") is None else timedelta(seconds=float(d["time_to_fill_s"])),
            end_price=dec("end_price"),
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly (Decimals as strings) for the journal and `fixoms report tca --json`."""
        return {
            "order_id": self.order_id, "symbol": self.symbol, "side": self.side.name,
            "order_qty": str(self.order_qty), "filled_qty": str(self.filled_qty),
            "arrival_mid": _s(self.arrival_mid), "avg_price": _s(self.avg_price),
            "shortfall_bps": _s(self.shortfall_bps),
            "implementation_shortfall_bps": _s(self.implementation_shortfall_bps),
            "fill_rate": str(self.fill_rate), "fees": str(self.fees), "rebates": str(self.rebates),
            "net_fees": str(self.net_fees), "venues": list(self.venues),
            "time_to_fill_s": None if self.time_to_fill is None else self.time_to_fill.total_seconds(),
            "end_price": _s(self.end_price),
        }


def _s(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _bps(cost: Decimal, notional: Decimal) -> Decimal | None:
    return (cost / notional * BPS).quantize(_Q) if notional else None


def parent_tca(
    order_id: str,
    symbol: str,
    side: Side,
    order_qty: Decimal,
    arrival_mid: Decimal | None,
    fills: Iterable[Fill],
    arrived_at: datetime | None = None,
    end_price: Decimal | None = None,
) -> ParentTCA:
    fills = list(fills)
    filled = sum((f.qty for f in fills), ZERO)
    notional = sum((f.qty * f.price for f in fills), ZERO)
    avg = notional / filled if filled else None
    sign = 1 if side is Side.BUY else -1
    shortfall: Decimal | None = None
    implementation: Decimal | None = None
    if arrival_mid is not None and arrival_mid > 0:
        if avg is not None:
            shortfall = _bps(sign * (avg - arrival_mid) * filled, arrival_mid * filled)
        if end_price is not None or filled >= order_qty:
            executed = sign * (avg - arrival_mid) * filled if avg is not None else ZERO
            missed = sign * ((end_price or arrival_mid) - arrival_mid) * (order_qty - filled)
            implementation = _bps(executed + missed, arrival_mid * order_qty)
    paid = sum((f.fee for f in fills if f.fee > 0), ZERO)
    received = -sum((f.fee for f in fills if f.fee < 0), ZERO)
    time_to_fill: timedelta | None = None
    if filled >= order_qty > 0 and arrived_at is not None:
        stamps = [f.ts for f in fills if f.ts is not None]
        if stamps:
            time_to_fill = max(stamps) - arrived_at
    return ParentTCA(
        order_id, symbol, side, order_qty, filled, arrival_mid, avg, shortfall, implementation,
        (filled / order_qty) if order_qty else ZERO, paid, received, paid - received,
        tuple(sorted({f.venue for f in fills if f.qty > 0})), time_to_fill, end_price,
    )


def child_fee(child: Child, qty: Decimal, profiles: Mapping[str, VenueProfile]) -> Decimal:
    """Estimated fee of `qty` filled on `child`: IOC/FOK and market children took liquidity, resting
    limits are assumed to have added it. (Exact when fills carry LastLiquidityInd; venues here don't.)"""
    prof = profiles.get(child.venue)
    if prof is None:
        return ZERO
    taking = child.ord_type is OrdType.MARKET or child.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
    return qty * prof.taker_fee if taking else -qty * prof.maker_rebate


def order_tca(
    order: Order,
    arrival_mid: Decimal | None,
    profiles: Mapping[str, VenueProfile] | None = None,
    *,
    completed_at: datetime | None = None,
    end_price: Decimal | None = None,
) -> ParentTCA:
    """TCA of an engine order from its children (one fill per child at the child's average price, which
    gives the same average and fees as the individual fills). `completed_at`: when the last fill came."""
    assert order.side is not None
    profiles = profiles or {}
    fills = [
        Fill(ch.cum_qty, ch.avg_px, ch.venue, completed_at, child_fee(ch, ch.cum_qty, profiles))
        for ch in sorted(order.children.values(), key=lambda c: c.child_id)
        if ch.cum_qty > 0
    ]
    return parent_tca(
        order.order_id, order.symbol, order.side, order.order_qty, arrival_mid, fills, order.created_at, end_price,
    )


@dataclass(frozen=True, slots=True)
class TCASummary:
    parents: int
    order_qty: Decimal
    filled_qty: Decimal
    fill_rate: Decimal
    shortfall_bps: Decimal | None  # executed shares, weighted by arrival notional
    implementation_shortfall_bps: Decimal | None  # all shares, unfilled ones marked at end_price
    fees: Decimal
    rebates: Decimal
    net_fees: Decimal
    net_fees_bps: Decimal | None  # net fees per executed arrival notional
    avg_time_to_fill: timedelta | None
    venue_qty: dict[str, Decimal] = field(default_factory=dict)

    @property
    def all_in_bps(self) -> Decimal | None:
        """Executed shortfall plus net fees."""
        if self.shortfall_bps is None:
            return None
        return self.shortfall_bps + (self.net_fees_bps or ZERO)

    def as_dict(self) -> dict[str, object]:
        return {
            "parents": self.parents, "order_qty": str(self.order_qty), "filled_qty": str(self.filled_qty),
            "fill_rate": str(self.fill_rate), "shortfall_bps": _s(self.shortfall_bps),
            "implementation_shortfall_bps": _s(self.implementation_shortfall_bps),
            "fees": str(self.fees), "rebates": str(self.rebates), "net_fees": str(self.net_fees),
            "net_fees_bps": _s(self.net_fees_bps), "all_in_bps": _s(self.all_in_bps),
            "avg_time_to_fill_s": None if self.avg_time_to_fill is None else self.avg_time_to_fill.total_seconds(),
            "venue_qty": {v: str(q) for v, q in self.venue_qty.items()},
        }


def aggregate(tcas: Iterable[ParentTCA], venue_fills: Iterable[Fill] = ()) -> TCASummary:
    """Totals over parents. `venue_fills` (optional) gives the quantity per venue."""
    tcas = list(tcas)
    order_qty = sum((t.order_qty for t in tcas), ZERO)
    filled = sum((t.filled_qty for t in tcas), ZERO)
    exec_cost = exec_notional = ZERO
    is_cost = is_notional = ZERO
    for t in tcas:
        if t.arrival_mid is None or t.arrival_mid <= 0:
            continue
        if t.filled_qty > 0:
            exec_cost += t.execution_cost
            exec_notional += t.arrival_mid * t.filled_qty
        if t.implementation_shortfall_bps is not None:
            is_cost += t.execution_cost + t.opportunity_cost
            is_notional += t.arrival_mid * t.order_qty
    fees = sum((t.fees for t in tcas), ZERO)
    rebates = sum((t.rebates for t in tcas), ZERO)
    times = [t.time_to_fill for t in tcas if t.time_to_fill is not None]
    venue_qty: dict[str, Decimal] = {}
    for f in venue_fills:
        venue_qty[f.venue] = venue_qty.get(f.venue, ZERO) + f.qty
    return TCASummary(
        parents=len(tcas),
        order_qty=order_qty,
        filled_qty=filled,
        fill_rate=(filled / order_qty).quantize(_Q) if order_qty else ZERO,
        shortfall_bps=_bps(exec_cost, exec_notional),
        implementation_shortfall_bps=_bps(is_cost, is_notional),
        fees=fees,
        rebates=rebates,
        net_fees=fees - rebates,
        net_fees_bps=_bps(fees - rebates, exec_notional),
        avg_time_to_fill=sum(times, timedelta()) / len(times) if times else None,
        venue_qty=dict(sorted(venue_qty.items())),
    )

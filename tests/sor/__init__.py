"""Router, strategies, internal crossing and TCA: pure, in memory, no sockets.

Shared builders for the tests in this package live here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from oms import events as ev
from oms.enums import OrdType, Side, TimeInForce
from oms.model import Order

D = Decimal
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def make_order(
    side: Side = Side.BUY,
    qty: int | Decimal = 1000,
    price: str | Decimal | None = None,
    ord_type: OrdType | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    *,
    symbol: str = "XYZ",
    account: str = "ACC-1",
    order_id: str = "OMS1-1",
    strategy: str | None = None,
    ex_destination: str | None = None,
) -> Order:
    """An accepted client order, as the engine holds it before routing."""
    px = None if price is None else Decimal(price)
    if ord_type is None:
        ord_type = OrdType.MARKET if px is None else OrdType.LIMIT
    return Order.from_accepted(ev.OrderAccepted(
        order_id, 1, "CLIENT1", account, "c-1", symbol, side, ord_type, tif, Decimal(qty), px, None, T0,
        ex_destination=ex_destination, target_strategy=strategy,
    ))


def route_child(order: Order, venue: str, qty: int | Decimal, price: str | Decimal | None, ord_type: OrdType,
                tif: TimeInForce) -> str:
    """Record a routed child on the order (what the engine does with a ChildPlan)."""
    child_id = order.next_child_id()
    order.apply(ev.ChildRouted(order.order_id, child_id, venue, Decimal(qty),
                               None if price is None else Decimal(price), ord_type, tif))
    return child_id

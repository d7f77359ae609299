"""What risk needs to know of an order, independent of the engine's Order aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms.enums import OrdType, Side


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: str
    session: str
    account: str
    symbol: str
    side: Side
    ord_type: OrdType
    qty: Decimal
    # None for orders without a limit price (market, stop, pegged): risk values them at the reference.
    price: Decimal | None

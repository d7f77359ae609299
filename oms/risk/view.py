"""What risk needs to know of an order, independent of the engine's Order aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms.enums import OrdType, Side
from oms.fastinit import fast_init


@fast_init  # two a new order (its check, then its acceptance): see oms.fastinit
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

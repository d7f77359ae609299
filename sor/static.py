"""The simplest router: each order goes whole to its ExDestination(100) if given, else to its symbol's
configured venue, if that venue is up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from decimal import Decimal

from oms.model import Order
from oms.ports import ChildPlan


class StaticRouter:
    def __init__(self, venue_by_symbol: Mapping[str, str], no_amend: Iterable[str] = ()) -> None:
        self.venue_by_symbol = dict(venue_by_symbol)
        self.no_amend = frozenset(no_amend)

    def can_amend(self, venue: str) -> bool:
        return venue not in self.no_amend

    def route(self, order: Order, qty: Decimal, venues_up: Set[str]) -> list[ChildPlan]:
        venue = order.ex_destination or self.venue_by_symbol.get(order.symbol)
        if venue is None or venue not in venues_up or qty <= 0 or order.ord_type is None:
            return []
        return [ChildPlan(venue, qty, order.price, order.child_ord_type, order.child_tif)]

"""The engine's ports. Adapters (fix_engine, venues, sor) implement them; the engine only sees these.

All methods are called from the engine thread, after the events they announce are committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from oms.commands import NewOrder, ReplaceOrder
from oms.enums import OrdType, Side, TimeInForce
from oms.fastinit import fast_init
from oms.model import Order
from oms.reports import (
    CancelReject,
    ExecutionReport,
    MassCancelReport,
    VenueCancel,
    VenueNewOrder,
    VenueStatusRequest,
)
from oms.validation import Refusal


@fast_init
@dataclass(frozen=True, slots=True)
class ChildPlan:
    venue: str
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    time_in_force: TimeInForce


class Router(Protocol):
    """Decides where an order's unrouted quantity goes.

    `route` must be pure (no I/O, no blocking) and may return fewer shares than asked (the rest stays
    unrouted) but never more, and never a price through the order's limit. An empty list means no
    venue can take the order now.
    """

    def route(self, order: Order, qty: Decimal, venues_up: Set[str]) -> list[ChildPlan]: ...


class VenueConnector(Protocol):
    """One execution venue. `send_*` must not block on the network: they copy what they need and queue
    the message. Results come back as `oms.commands.VenueReport` / `VenueCancelReject` /
    `VenueSessionUp|Down` through the engine's `submit`."""

    name: str

    def send_new(self, msg: VenueNewOrder) -> None: ...

    def send_cancel(self, msg: VenueCancel) -> None: ...

    def send_status_request(self, msg: VenueStatusRequest) -> None: ...


class ClientGateway(Protocol):
    """The client side. `send_*` must not block; a message for a session that is down is stored by the
    FIX layer and goes out on its next logon (QuickFIX's own store) or is dropped with a log line."""

    def send_report(self, report: ExecutionReport) -> None: ...

    def send_cancel_reject(self, reject: CancelReject) -> None: ...

    def send_mass_cancel_report(self, report: MassCancelReport) -> None: ...


class RiskGate(Protocol):
    """Pre-trade risk as the engine sees it. Called only from the engine thread; pure and fast (no I/O).

    `check_*` return a Refusal naming the rule and value, or None. The `on_*` calls keep exposure in step
    with the order book: after acceptance, each fill (negative quantity for a bust), when an order is
    done (its unfilled rest released), and after a replace took effect (`before` is a copy of the order
    with its old terms)."""

    def check_new(self, cmd: NewOrder, account: str, order_id: str) -> Refusal | None: ...

    def check_replace(self, order: Order, cmd: ReplaceOrder) -> Refusal | None: ...

    def on_accepted(self, order: Order) -> None: ...

    def on_fill(self, order: Order, qty: Decimal, px: Decimal) -> None: ...

    def on_done(self, order: Order) -> None: ...

    def on_replaced(self, before: Order, after: Order) -> None: ...

    def set_state(self, scope: str, state: str, who: str, reason: str) -> tuple[str, str]:
        """(before, after); ValueError names a bad scope or state."""
        ...

    def set_limit(self, account: str, name: str, value: str) -> tuple[str, str]:
        """(before, after) as text; ValueError names a bad limit or value."""
        ...

    def rebuild(self, orders: Iterable[Order],
                finished: Mapping[tuple[str, str, Side], tuple[Decimal, Decimal]] | None = None) -> None:
        """Exposure from scratch: `orders` replayed, plus the summed (qty, CumQty x AvgPx) fills of
        finished orders the engine left in the journal, per (account, symbol, side)."""
        ...

    def restore(self, order: Order) -> None:
        """A finished order the engine read back from the journal (its fills were in `finished`)."""
        ...

    def forget(self, order_ids: set[str]) -> None:
        """Orders accepted in a batch that was never committed: as if never seen (duplicate window)."""
        ...

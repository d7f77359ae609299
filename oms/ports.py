"""The engine's ports. Adapters (fix_engine, venues, sor) implement them; the engine only sees these.

All methods are called from the engine thread, after the events they announce are committed.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from oms.enums import OrdType, TimeInForce
from oms.model import Order
from oms.reports import CancelReject, ExecutionReport, VenueCancel, VenueNewOrder


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


class ClientGateway(Protocol):
    """The client side. `send_*` must not block; a message for a session that is down is stored by the
    FIX layer and goes out on its next logon (QuickFIX's own store) or is dropped with a log line."""

    def send_report(self, report: ExecutionReport) -> None: ...

    def send_cancel_reject(self, reject: CancelReject) -> None: ...

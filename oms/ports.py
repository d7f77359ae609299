"""The engine's ports. Adapters (fix_engine, venues, sor) implement them; the engine only sees these.

All methods are called from the engine thread, after the events they announce are committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from oms import events as ev
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
    VenueReplace,
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

    # Optional (looked up by the decider): `can_amend(venue) -> bool`, whether the venue takes an
    # OrderCancelReplaceRequest for a working child ([venue_profiles.X] amend). A router without it
    # answers no: replaces then go out as cancel-and-reroute.


class VenueConnector(Protocol):
    """One execution venue. `send_*` must not block on the network: they copy what they need and queue
    the message. Results come back as `oms.commands.VenueReport` / `VenueCancelReject` /
    `VenueSessionUp|Down` through the engine's `submit`."""

    name: str

    def send_new(self, msg: VenueNewOrder) -> None: ...

    def send_cancel(self, msg: VenueCancel) -> None: ...

    def send_replace(self, msg: VenueReplace) -> None:
        """An amend of a working child. A venue that cannot amend answers VenueCancelReject."""
        ...

    def send_status_request(self, msg: VenueStatusRequest) -> None: ...


VenueMessage = VenueNewOrder | VenueCancel | VenueReplace | VenueStatusRequest
_VENUE_SENDS: dict[type, Callable[[VenueConnector, Any], None]] = {
    VenueNewOrder: lambda v, m: v.send_new(m),
    VenueCancel: lambda v, m: v.send_cancel(m),
    VenueReplace: lambda v, m: v.send_replace(m),
    VenueStatusRequest: lambda v, m: v.send_status_request(m),
}


def send_to_venue(venues: Mapping[str, VenueConnector], msg: VenueMessage) -> None:
    """Hand a venue message to its venue's connector (KeyError for a venue nobody connected)."""
    _VENUE_SENDS[type(msg)](venues[msg.venue], msg)


class ClientGateway(Protocol):
    """The client side. `send_*` must not block; a message for a session that is down is stored by the
    FIX layer and goes out on its next logon (QuickFIX's own store) or is dropped with a log line."""

    def send_report(self, report: ExecutionReport) -> None: ...

    def send_cancel_reject(self, reject: CancelReject) -> None: ...

    def send_mass_cancel_report(self, report: MassCancelReport) -> None: ...


class FixEdge(Protocol):
    """The FIX sessions' side of the engine thread (fix_engine.application): an inbox where messages wait
    for the engine thread to read them, and an outbox that sends what it posted on the sessions' own
    threads. The runner waits on `fileno()` with select and calls `pump()`, which hands what has arrived to
    the engine's `submit`, in order, and never blocks. Reading and handing over on the engine thread is
    what lets the FIX threads run without Python at each message, and the engine thread without
    QuickFIX's send work."""

    def fileno(self) -> int: ...

    def pump(self) -> None: ...

    def journaled(self) -> None:
        """Called after a journal append that took everything pumped before it: all of it is kept."""

    def flush(self) -> None:
        """Called after a batch's sends: what they posted goes to the sessions' threads now."""

    def wait_sent(self) -> None:
        """Called before the next journal append: blocks until everything flushed was sent, so only the
        last batch appended can be unsent when the process dies."""


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


@dataclass
class LoadedState:
    orders: dict[str, Order] = field(default_factory=dict)
    cl_ord_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    venue_exec_ids: set[tuple[str, str]] = field(default_factory=set)
    # (venue, venue exec id) -> (order id, child id, our exec id, qty, px) of fills still standing
    fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]] = field(default_factory=dict)
    max_seq: int = 0
    last_batch: int = 0
    unsent: list[Any] = field(default_factory=list)
    # operator changes to risk, oldest first, to replay on start
    risk_changes: list[ev.Event] = field(default_factory=list)
    # `load_open` only: (account, symbol, side) -> (qty, notional) filled by the finished orders it left
    # in the journal, valued as risk values a finished order (CumQty x AvgPx)
    finished_fills: dict[tuple[str, str, Side], tuple[Decimal, Decimal]] = field(default_factory=dict)
    # `load_open` only: finished orders with a child in doubt (the engine reads them back at start)
    in_doubt_orders: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LoadedOrder:
    """One order read from the journal on demand, with what the engine indexes besides the order."""

    order: Order
    # (venue, venue exec id) of every execution, busted ones too (a repeat must still be ignored)
    venue_exec_ids: frozenset[tuple[str, str]]
    # the executions still standing, as in LoadedState.fills
    fills: dict[tuple[str, str], tuple[str, str, str, Decimal, Decimal]]


class JournalPort(Protocol):
    """Where the engine makes its batches durable and recovers from (oms.journal.Journal).

    Three verbs, as exchange-core's journal: `append` a batch (its number in the log is the sequence),
    the snapshot (the derived tables, kept by the journal itself off the critical path) and the replay
    of the log past it, which `load_open` does before it returns the state. `load_order` and
    `order_id_of_child` read a finished order back when something names it. Called from the engine
    thread only."""

    def append(self, events: list[ev.Event], dirty: Iterable[Order], client_messages: list[Any] | None = None,
               inbound: Sequence[Any] = (), outbound: Sequence[Any] = ()) -> int:
        """Durable when it returns (the batch may then be sent); raises if not, and nothing is stored."""
        ...

    def load_open(self) -> LoadedState: ...

    def load_order(self, order_id: str) -> LoadedOrder | None: ...

    def order_id_of_child(self, venue_cl_ord_id: str) -> str | None: ...

    def refuses_content(self, exc: BaseException) -> bool:
        """Would `append` fail again with the same batch (as opposed to the database being away)?"""
        ...

    def close(self, sent: bool = True) -> None:
        """The engine stopped; `sent`: everything appended was sent."""
        ...

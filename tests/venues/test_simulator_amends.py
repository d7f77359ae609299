"""The venue simulator's amends (35=G) follow the book's priority rules: a quantity reduction at the same
price keeps the order's place in its queue; a price change or a quantity increase sends it to the back;
a new price that crosses trades at once. The same script runs on the C book and on the pure-Python
reference (native.ReferenceBook): both must answer every message alike, and as the rules say.

The simulator is driven in process, as its QuickFIX session thread drives it (`on_from_app` with the
raw message and the session's key, the counterparty's CompID); what it answers is read back from its
message log (`exchanged`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import native
from fix_engine import codec
from oms.enums import OrdType, Side, TimeInForce
from oms.reports import VenueNewOrder, VenueReplace
from tests.native import load_book
from venues.simulator import VenueSimulator

KEY = "FIXOMS"  # the engine's CompID: the simulator's name for its session with us
BOOKS = {"c": lambda: load_book().Book, "reference": lambda: native.ReferenceBook}
Row = tuple[str, str, str, str, str, str, str]


class Venue:
    """A simulator with IBM at 150.00 (house bids from 149.99 down, asks from 150.01 up) and two resting
    buys at 150.00: A first in the queue, then B."""

    def __init__(self, book: str) -> None:
        self.sim = VenueSimulator("VENUE-T", {"IBM": Decimal("150.00")}, seed=1, levels=3, book_factory=BOOKS[book]())
        self.seq = 0
        self.ids = {"A": "A", "B": "B"}
        for name in ("A", "B"):
            self._send(codec.encode_venue_new(VenueNewOrder("VENUE-T", name, "IBM", Side.BUY, OrdType.LIMIT,
                                                            TimeInForce.DAY, Decimal(300), Decimal("150.00"), ""),
                                              codec.FIX44))

    def _send(self, raw: str) -> None:
        self.sim.on_from_app(raw, KEY)

    def amend(self, name: str, qty: int, price: str) -> None:
        self.seq += 1
        new_id = f"{name}~{self.seq}"
        self._send(codec.encode_venue_replace(
            VenueReplace("VENUE-T", new_id, self.ids[name], name, "IBM", Side.BUY, OrdType.LIMIT, TimeInForce.DAY,
                         Decimal(qty), Decimal(price), ""), codec.FIX44))
        self.ids[name] = new_id

    def sell(self, qty: int, price: str = "150.00") -> None:
        self.sim.house_order("IBM", Side.SELL, Decimal(price), qty)

    def answers(self) -> list[Row]:
        """(ClOrdID, MsgType, ExecType, OrdStatus, OrderQty, CumQty, LastQty) of everything the venue sent
        about A and B."""
        out = self.sim.exchanged(*self.ids.values(), "A", "B", *(f"{n}~{i}" for n in "AB" for i in range(9)))
        return [(m[codec.CL_ORD_ID], m[codec.MSG_TYPE], m.get(codec.EXEC_TYPE, ""), m.get(codec.ORD_STATUS, ""),
                 m.get(codec.ORDER_QTY, ""), m.get(codec.CUM_QTY, ""), m.get(codec.LAST_QTY, ""))
                for direction, m in out if direction == "out"]

    def fills(self) -> list[tuple[str, str]]:
        return [(cl[0], last) for cl, kind, et, *_, last in self.answers() if kind == "8" and et == "F"]

    def queue(self) -> list[int]:
        book: Any = self.sim.books["IBM"]
        return list(book.level_orders(native.BUY, self.sim.ticks(Decimal("150.00"))))


def quantity_down(v: Venue) -> None:
    v.amend("A", 200, "150.00")
    v.sell(250)


def quantity_up(v: Venue) -> None:
    v.amend("A", 400, "150.00")
    v.sell(250)


def price_away_and_back(v: Venue) -> None:
    v.amend("A", 300, "149.99")
    v.amend("A", 300, "150.00")
    v.sell(250)


def price_through(v: Venue) -> None:
    v.amend("A", 300, "150.01")  # crosses the house ask: trades at once, as a new order would


def down_after_a_fill(v: Venue) -> None:
    v.sell(100)
    v.amend("A", 150, "150.00")  # 100 filled, 50 left: still first in the queue
    v.sell(100)


def down_to_cum_qty(v: Venue) -> None:
    v.sell(100)
    v.amend("A", 80, "150.00")  # below what filled: ends filled at 100, out of the book


SCRIPTS = {
    # what the rule says, as (who traded, how much) in the order the venue reported it
    "quantity_down_keeps_priority": (quantity_down, [("A", "200"), ("B", "50")]),
    "quantity_up_loses_priority": (quantity_up, [("B", "250")]),
    "price_change_loses_priority": (price_away_and_back, [("B", "250")]),
    "crossing_price_trades_at_once": (price_through, None),
    "reduction_after_a_fill_keeps_priority": (down_after_a_fill, [("A", "100"), ("A", "50"), ("B", "50")]),
    "down_to_cum_qty_ends_filled": (down_to_cum_qty, [("A", "100")]),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_amend_priority_rules_on_the_c_book_match_the_reference(name: str) -> None:
    script, expected_fills = SCRIPTS[name]
    runs = {}
    for book in BOOKS:
        venue = Venue(book)
        script(venue)
        runs[book] = (venue.answers(), venue.queue(), venue)
    assert runs["c"][:2] == runs["reference"][:2]
    venue = runs["c"][2]
    replaced = [r for r in venue.answers() if r[2] == "5"]
    assert replaced and all(r[1] == "8" for r in replaced)  # every amend answered Replaced, none refused
    if expected_fills is not None:
        assert venue.fills() == expected_fills
    else:
        fills = venue.fills()
        assert fills and fills[0][0] == "A"  # the amended order took the ask itself


def test_amend_answers_name_the_new_cl_ord_id_and_the_queue_shows_the_priority() -> None:
    venue = Venue("c")
    a, b = (venue.sim.by_cl_ord_id[("FIXOMS", n)] for n in "AB")
    venue.amend("A", 200, "150.00")
    assert venue.queue() == [a, b]
    venue.amend("A", 250, "150.00")
    assert venue.queue() == [b, a]
    assert venue.answers()[-1] == ("A~2", "8", "5", "0", "250", "0", "0")


@pytest.mark.parametrize("case,text", [
    ("unknown", "unknown order"),
    ("filled", "order not open"),
    ("halted", "trading halted in IBM: only cancels accepted"),
    ("side", "symbol, side and order type cannot change"),
])
def test_amends_the_venue_cannot_take_get_an_order_cancel_reject(case: str, text: str) -> None:
    venue = Venue("c")
    orig, side = "A", Side.BUY
    if case == "unknown":
        orig = "NOPE"
    elif case == "filled":
        venue.sell(300)
    elif case == "halted":
        venue.sim.halt("IBM")
    else:
        side = Side.SELL
    venue._send(codec.encode_venue_replace(
        VenueReplace("VENUE-T", "A~X", orig, "A", "IBM", side, OrdType.LIMIT, TimeInForce.DAY, Decimal(100),
                     Decimal("150.00"), ""), codec.FIX44))
    (rej,) = [m for d, m in venue.sim.exchanged("A~X") if d == "out"]
    assert (rej[codec.MSG_TYPE], rej[codec.CXL_REJ_RESPONSE_TO], rej[codec.TEXT]) == (codec.CANCEL_REJECT, "2", text)
    assert ("FIXOMS", "A~X") not in venue.sim.by_cl_ord_id  # the order keeps its ClOrdID

"""Internal crossing: the INTERNAL venue (venues/internal.py) and the router's side of it (sor/crossing.py).

Rules under test: cross only inside the lit NBBO, at the midpoint when both orders are marketable,
else at the limit that stops short of the mid; never through a protected quote; never two orders of
one account (the resting one is canceled); reports exactly as a FIX venue sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from oms.commands import VenueCancelReject, VenueReport
from oms.enums import ExecType, OrdStatus, OrdType, Side, TimeInForce
from oms.reports import VenueCancel, VenueNewOrder, VenueStatusRequest
from sor import crossing
from sor.crossing import Interest, find_cross
from sor.router import SmartRouter
from tests.sor import D, make_order
from venues import internal
from venues.internal import InternalVenue

BID, ASK = D("100.00"), D("100.10")


@dataclass
class Harness:
    reports: list[object] = field(default_factory=list)
    nbbo: dict[str, tuple[Decimal | None, Decimal | None]] = field(default_factory=lambda: {"XYZ": (BID, ASK)})
    published: dict[str, tuple[list[tuple[Decimal, Decimal, str]], list[tuple[Decimal, Decimal, str]]]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        self.venue = InternalVenue(self.reports.append, reference=lambda s: self.nbbo.get(s, (None, None)),
                                   on_book=lambda s, b, a: self.published.__setitem__(s, (b, a)))
        self.n = 0

    def send(self, side: Side, qty: int, price: str | None, account: str, tif: TimeInForce = TimeInForce.DAY,
             child_id: str | None = None, ord_type: OrdType | None = None) -> str:
        self.n += 1
        child_id = child_id or f"C{self.n}"
        ord_type = ord_type or (OrdType.MARKET if price is None else OrdType.LIMIT)
        self.venue.send_new(VenueNewOrder("INTERNAL", child_id, "XYZ", side, ord_type, tif, D(qty),
                                          None if price is None else D(price), account))
        return child_id

    def of(self, child_id: str, exec_type: ExecType | None = None) -> list[VenueReport]:
        return [r for r in self.reports if isinstance(r, VenueReport)
                and (r.cl_ord_id == child_id or r.orig_cl_ord_id == child_id)
                and (exec_type is None or r.exec_type is exec_type)]

    def trades(self, child_id: str) -> list[tuple[Decimal, Decimal]]:
        return [(r.last_qty, r.last_px) for r in self.of(child_id, ExecType.TRADE)]


def test_both_marketable_cross_at_the_midpoint() -> None:
    h = Harness()
    sell = h.send(Side.SELL, 300, "99.90", "ACC-1")  # would sell at the bid or below
    assert [r.exec_type for r in h.of(sell)] == [ExecType.NEW]
    buy = h.send(Side.BUY, 200, "100.50", "ACC-2", TimeInForce.IOC)  # would pay the ask or more
    assert h.trades(buy) == [(D(200), D("100.05"))]
    assert h.trades(sell) == [(D(200), D("100.05"))]
    last = h.of(sell)[-1]
    assert (last.ord_status, last.cum_qty, last.leaves_qty, last.avg_px) == (
        OrdStatus.PARTIALLY_FILLED, D(200), D(100), D("100.05"))
    assert h.of(buy)[-1].ord_status is OrdStatus.FILLED
    assert h.published["XYZ"] == ([], [(D("99.90"), D(100), "ACC-1")])


def test_one_side_not_marketable_crosses_at_its_limit_inside_the_spread() -> None:
    h = Harness()
    sell = h.send(Side.SELL, 100, "100.07", "ACC-1")  # above the mid: the seller will not go lower
    buy = h.send(Side.BUY, 100, None, "ACC-2", TimeInForce.IOC)
    assert h.trades(buy) == h.trades(sell) == [(D(100), D("100.07"))]
    buy2 = h.send(Side.BUY, 100, "100.03", "ACC-3")  # below the mid: the buyer will not go higher
    sell2 = h.send(Side.SELL, 100, None, "ACC-1", TimeInForce.IOC)
    assert h.trades(sell2) == h.trades(buy2) == [(D(100), D("100.03"))]


def test_never_trades_through_the_nbbo() -> None:
    h = Harness()
    far_buy = h.send(Side.BUY, 100, "101.00", "ACC-1")  # rests far above the lit offer
    sell = h.send(Side.SELL, 100, "99.00", "ACC-2", TimeInForce.IOC)  # and a seller far below the bid
    assert h.trades(sell) == h.trades(far_buy) == [(D(100), D("100.05"))]  # the mid, not 101 or 99


def test_no_cross_when_the_limit_does_not_reach_the_near_touch() -> None:
    h = Harness()
    sell = h.send(Side.SELL, 100, "99.90", "ACC-1")
    buy = h.send(Side.BUY, 100, "99.95", "ACC-2")  # below the lit bid: buying here would trade through it
    assert h.trades(buy) == [] and h.trades(sell) == []
    # It rests, one tick short of the internal offer it may not trade with, so the book stays uncrossed.
    bids, asks = h.published["XYZ"]
    assert bids == [(D("99.95"), D(100), "ACC-2")] and asks == [(D("99.90"), D(100), "ACC-1")]
    assert h.venue.books["XYZ"].best_bid()[0] == 9_989


def test_no_cross_without_a_two_sided_lit_market() -> None:
    h = Harness()
    h.send(Side.SELL, 100, "99.90", "ACC-1")
    h.nbbo["XYZ"] = (BID, None)
    buy = h.send(Side.BUY, 100, "100.50", "ACC-2", TimeInForce.IOC)
    assert h.trades(buy) == []
    assert [r.exec_type for r in h.of(buy)] == [ExecType.NEW, ExecType.CANCELED]


def test_self_match_prevention_cancels_the_resting_order_of_the_same_account() -> None:
    h = Harness()
    own = h.send(Side.SELL, 100, "99.90", "ACC-1")
    other = h.send(Side.SELL, 100, "99.95", "ACC-2")
    buy = h.send(Side.BUY, 200, None, "ACC-1", TimeInForce.IOC)
    assert h.trades(own) == []
    assert h.of(own)[-1].exec_type is ExecType.CANCELED and h.of(own)[-1].text == "self-match prevented"
    assert h.trades(buy) == h.trades(other) == [(D(100), D("100.05"))]
    assert h.of(buy)[-1].exec_type is ExecType.CANCELED  # the other 100: nothing left to cross


def test_market_and_ioc_remainders_never_rest() -> None:
    h = Harness()
    ioc = h.send(Side.BUY, 100, "100.05", "ACC-1", TimeInForce.IOC)
    market = h.send(Side.SELL, 100, None, "ACC-2", TimeInForce.DAY)
    for child in (ioc, market):
        assert [r.exec_type for r in h.of(child)] == [ExecType.NEW, ExecType.CANCELED]
    assert h.published["XYZ"] == ([], [])


def test_cancel_status_and_rejects_as_a_fix_venue_answers() -> None:
    h = Harness()
    resting = h.send(Side.BUY, 100, "99.50", "ACC-1")
    h.venue.send_cancel(VenueCancel("INTERNAL", "X1", resting, "XYZ", Side.BUY, D(100)))
    canceled = h.reports[-1]
    assert isinstance(canceled, VenueReport)
    assert (canceled.exec_type, canceled.cl_ord_id, canceled.orig_cl_ord_id) == (ExecType.CANCELED, "X1", resting)
    h.venue.send_cancel(VenueCancel("INTERNAL", "X2", resting, "XYZ", Side.BUY, D(100)))
    assert isinstance(h.reports[-1], VenueCancelReject) and h.reports[-1].cl_ord_id == "X2"
    h.venue.send_status_request(VenueStatusRequest("INTERNAL", resting, "XYZ", Side.BUY))
    status = h.reports[-1]
    assert isinstance(status, VenueReport)
    assert (status.exec_type, status.ord_status) == (ExecType.ORDER_STATUS, OrdStatus.CANCELED)
    h.venue.send_status_request(VenueStatusRequest("INTERNAL", "nope", "XYZ", Side.BUY))
    unknown = h.reports[-1]
    assert isinstance(unknown, VenueReport)
    assert (unknown.ord_status, unknown.venue_order_id) == (OrdStatus.REJECTED, "NONE")
    for bad in (dict(qty=D("10.5")), dict(ord_type=OrdType.STOP), dict(child_id=resting),
                dict(price=None, ord_type=OrdType.LIMIT), dict(time_in_force=TimeInForce.AT_THE_OPEN)):
        fields = dict(venue="INTERNAL", child_id="R", symbol="XYZ", side=Side.BUY, ord_type=OrdType.LIMIT,
                      time_in_force=TimeInForce.DAY, qty=D(100), price=D("100"), account="ACC-1")
        fields.update(bad)  # type: ignore[arg-type]
        h.venue.send_new(VenueNewOrder(**fields))  # type: ignore[arg-type]
        rejected = h.reports[-1]
        assert isinstance(rejected, VenueReport) and rejected.exec_type is ExecType.REJECTED, bad
        h.venue.by_child.pop("R", None)


def test_exec_ids_are_unique() -> None:
    h = Harness()
    for i in range(20):
        h.send(Side.SELL if i % 2 else Side.BUY, 100, "100.05", f"ACC-{i % 3}")
    ids = [r.exec_id for r in h.reports if isinstance(r, VenueReport)]
    assert len(ids) == len(set(ids))


def test_the_router_aims_an_ioc_at_crossable_interest_first() -> None:
    h = Harness()
    router = SmartRouter({"XYZ": "LIT"}, default_strategy="sweep")
    router.on_book("LIT", "XYZ", [(BID, D(500))], [(ASK, D(500))])
    h.venue.on_book = router.on_internal_book
    h.venue.reference = router.reference_prices
    h.send(Side.SELL, 300, "99.95", "ACC-1")
    h.send(Side.SELL, 500, "100.00", "ACC-2")  # the buyer's own account: not a cross for it
    order = make_order(Side.BUY, 1000, "100.20", account="ACC-2")
    plans = router.route(order, D(1000), {"LIT", "INTERNAL"})
    assert plans[0].venue == "INTERNAL" and plans[0].time_in_force is TimeInForce.IOC
    assert (plans[0].qty, plans[0].price) == (D(300), D("100.05"))
    assert [(p.venue, p.qty, p.price) for p in plans[1:]] == [("LIT", D(500), ASK)]
    # The venue executes the cross at the mid.
    h.venue.send_new(VenueNewOrder("INTERNAL", "P.1", "XYZ", Side.BUY, OrdType.LIMIT, TimeInForce.IOC, D(300),
                                   plans[0].price, "ACC-2"))
    assert h.trades("P.1") == [(D(300), D("100.05"))]
    # The rest of the internal interest is the buyer's own: nothing more to cross.
    again = make_order(Side.BUY, 200, "100.20", account="ACC-2")
    assert all(p.venue != "INTERNAL" for p in router.route(again, D(200), {"LIT", "INTERNAL"}))


def test_the_router_rests_passive_orders_internally_for_opted_in_accounts() -> None:
    router = SmartRouter({"XYZ": "LIT"}, internal_rest_accounts=["ACC-1"])
    router.on_book("LIT", "XYZ", [(BID, D(500))], [(ASK, D(500))])
    passive = make_order(Side.BUY, 400, "100.02", account="ACC-1")
    assert [(p.venue, p.qty, p.price) for p in router.route(passive, D(400), {"LIT", "INTERNAL"})] == [
        ("INTERNAL", D(400), D("100.02"))]
    other = make_order(Side.BUY, 400, "100.02", account="ACC-2")
    assert all(p.venue == "LIT" for p in router.route(other, D(400), {"LIT", "INTERNAL"}))


def test_find_cross_takes_the_best_contra_first_and_skips_the_own_account() -> None:
    from sor.book import NBBO

    nbbo = NBBO(BID, D(100), ASK, D(100), (BID + ASK) / 2)
    contra = [Interest(D("100.08"), D(100), "B"), Interest(D("99.90"), D(100), "A"),
              Interest(D("99.95"), D(100), "C")]
    assert find_cross(Side.BUY, None, D(150), "X", contra, nbbo) == crossing.Cross(D("100.05"), D(150))
    assert find_cross(Side.BUY, None, D(500), "X", contra, nbbo) == crossing.Cross(D("100.08"), D(300))
    assert find_cross(Side.BUY, None, D(500), "A", contra, nbbo) == crossing.Cross(D("100.08"), D(200))
    assert find_cross(Side.BUY, D("100.06"), D(500), "X", contra, nbbo) == crossing.Cross(D("100.05"), D(200))
    assert find_cross(Side.BUY, D("99.99"), D(500), "X", contra, nbbo) is None  # below the bid
    assert find_cross(Side.BUY, None, D(500), "X", contra, None) is None


prices = st.integers(9_900, 10_100).map(lambda t: t * D("0.01"))


@settings(max_examples=300, deadline=None)
@given(st.none() | prices, st.none() | prices, prices, prices)
def test_router_and_venue_price_rules_agree(buy: Decimal | None, sell: Decimal | None, a: Decimal,
                                             b: Decimal) -> None:
    bid, ask = min(a, b), max(a, b)
    px = crossing.cross_price(buy, sell, bid, ask)
    assert px == internal.cross_price(buy, sell, bid, ask)
    if px is not None:
        assert bid <= px <= ask
        assert buy is None or px <= buy
        assert sell is None or px >= sell
        if (buy is None or buy >= ask) and (sell is None or sell <= bid):
            assert px == (bid + ask) / 2


order_ops = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 5).map(lambda n: n * 100),
    st.none() | st.integers(9_950, 10_050).map(lambda t: str(t * D("0.01"))),
    st.sampled_from(["ACC-1", "ACC-2", "ACC-3"]),
    st.sampled_from([TimeInForce.DAY, TimeInForce.IOC, TimeInForce.GTC]),
    st.tuples(st.integers(9_960, 10_020), st.integers(0, 20)),  # the lit NBBO at that moment, in ticks
)


@settings(max_examples=150, deadline=None)
@given(st.lists(order_ops, min_size=1, max_size=25))
def test_every_internal_trade_is_inside_the_nbbo_and_both_limits(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    h = Harness()
    sent: dict[str, tuple[Side, Decimal | None, str, Decimal]] = {}
    for side, qty, price, account, tif, (bid_t, width) in ops:
        bid, ask = bid_t * D("0.01"), (bid_t + width) * D("0.01")
        h.nbbo["XYZ"] = (bid, ask)
        before = len(h.reports)
        child = h.send(side, qty, price, account, tif)
        sent[child] = (side, None if price is None else D(price), account, D(qty))
        trades = [r for r in h.reports[before:] if isinstance(r, VenueReport) and r.exec_type is ExecType.TRADE]
        assert len(trades) % 2 == 0  # every match reports to both sides
        for taker_fill, maker_fill in zip(trades[0::2], trades[1::2], strict=True):
            assert taker_fill.cl_ord_id == child
            assert taker_fill.last_px == maker_fill.last_px and taker_fill.last_qty == maker_fill.last_qty
            px = taker_fill.last_px
            assert bid <= px <= ask
            m_side, m_limit, m_account, _ = sent[maker_fill.cl_ord_id]
            assert m_account != account and m_side is not side
            for s, limit in ((side, sent[child][1]), (m_side, m_limit)):
                assert limit is None or (px <= limit if s is Side.BUY else px >= limit)
    for child, (_, _, _, qty) in sent.items():
        last = h.of(child)[-1]
        assert last.cum_qty <= qty and last.cum_qty + last.leaves_qty <= qty
    if "XYZ" in h.venue.books:
        h.venue.books["XYZ"].check()

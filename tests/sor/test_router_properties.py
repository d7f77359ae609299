"""The router's hard rules on random markets, venues and orders (hypothesis; the router alone, no engine,
no sockets):

- never more than the quantity asked (nor more than the order's unrouted quantity);
- never a price through the order's limit, never a market child for a limit order;
- never a venue that is down, unknown to the book's up set, or unable to take the child (order type,
  IOC, size limit, a taking order to a post-only venue);
- internal crosses only at prices inside the lit NBBO;
- an IOC/FOK parent never gets a resting child, and a FOK parent at most one child, whole;
- the same inputs give the same plan, whatever order the market data arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from oms import events as ev
from oms.enums import OrdType, Side, TimeInForce
from oms.model import Order
from oms.ports import ChildPlan
from sor.router import SmartRouter
from sor.venues import VenueProfile
from tests.sor import D, make_order, route_child

VENUES = ("V1", "V2", "V3", "V4")
TICK = D("0.01")
TAKING = (TimeInForce.IOC, TimeInForce.FOK)


def often(draw: st.DrawFn, in_ten: int = 8) -> bool:
    return draw(st.integers(0, 9)) < in_ten


@st.composite
def profiles(draw: st.DrawFn, name: str) -> VenueProfile:
    types = {OrdType.LIMIT, OrdType.MARKET} if often(draw) else {draw(st.sampled_from([OrdType.LIMIT,
                                                                                       OrdType.MARKET]))}
    return VenueProfile(
        name,
        maker_rebate=draw(st.integers(-20, 30)) * D("0.0001"),
        taker_fee=draw(st.integers(-5, 30)) * D("0.0001"),
        order_types=frozenset(types),
        max_order_qty=None if often(draw, 6) else D(draw(st.integers(1, 50)) * 100),
        supports_ioc=often(draw, 9),
        post_only=not often(draw, 9),
        touch_outflow=None if often(draw, 5) else D(draw(st.integers(1, 5000))),
    )


def levels(descending: bool) -> st.SearchStrategy[list[tuple[Decimal, Decimal]]]:
    # Mostly an ordinary market around 100.00; sometimes locked or crossed across venues.
    lo, hi = (9_940, 10_003) if descending else (9_997, 10_060)
    level = st.tuples(st.integers(lo, hi).map(lambda t: t * TICK), st.integers(1, 3000).map(D))
    return st.lists(level, max_size=6).map(lambda ls: sorted(ls, reverse=descending))


@dataclass
class Scenario:
    profiles: dict[str, VenueProfile]
    books: dict[str, tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]]
    down_after_data: set[str]
    up: frozenset[str]
    internal: tuple[list[tuple[Decimal, Decimal, str]], list[tuple[Decimal, Decimal, str]]]
    strategy_by_account: dict[str, str]
    default_strategy: str


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    profs = {v: draw(profiles(v)) for v in VENUES if often(draw, 7)}
    books = {v: (draw(levels(True)), draw(levels(False))) for v in VENUES if often(draw, 9)}
    down_after = {v for v in VENUES if not often(draw, 8)}
    up = {v for v in (*VENUES, "INTERNAL") if often(draw)} | ({"GHOST"} if not often(draw, 9) else set())
    interest = st.tuples(st.integers(9_960, 10_040).map(lambda t: t * TICK), st.integers(1, 3000).map(D),
                         st.sampled_from(["ACC-1", "ACC-2", ""]))
    internal = (draw(st.lists(interest, max_size=4)), draw(st.lists(interest, max_size=4)))
    names = st.sampled_from(["single", "pro_rata", "sweep", "cont_kukanov", "post_only"])
    return Scenario(profs, books, down_after, frozenset(up), internal,
                    draw(st.dictionaries(st.sampled_from(["ACC-1", "ACC-2"]), names)), draw(names))


@st.composite
def orders(draw: st.DrawFn) -> Order:
    ord_type = draw(st.sampled_from([OrdType.MARKET, OrdType.LIMIT, OrdType.LIMIT, OrdType.STOP,
                                     OrdType.STOP_LIMIT]))
    priced = ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT)
    order = make_order(
        draw(st.sampled_from([Side.BUY, Side.SELL, Side.SELL_SHORT])),
        draw(st.integers(1, 20_000)),
        draw(st.integers(9_940, 10_060)) * TICK if priced else None,
        ord_type,
        draw(st.sampled_from([TimeInForce.DAY, TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC,
                              TimeInForce.FOK, TimeInForce.GTD])),
        account=draw(st.sampled_from(["ACC-1", "ACC-2", "ACC-3"])),
        strategy=draw(st.none() | st.sampled_from(["single", "pro_rata", "sweep", "cont_kukanov", "post_only",
                                                   "Cont-Kukanov", "vwap"])),
        ex_destination=None if often(draw, 9) else draw(st.sampled_from((*VENUES, "INTERNAL"))),
    )
    # Earlier rounds: IOC children that missed, and maybe one still working.
    for _ in range(draw(st.integers(0, 8)) if not often(draw, 6) else 0):
        child = route_child(order, draw(st.sampled_from(VENUES)), 100, None, OrdType.MARKET, TimeInForce.IOC)
        order.apply(ev.ChildDone(order.order_id, child, False, "IOC canceled"))
    working = draw(st.integers(0, 2)) * min(order.order_qty // 3, D(1000))
    if working > 0:
        route_child(order, draw(st.sampled_from(VENUES)), working, order.price, order.child_ord_type,
                    order.child_tif)
    return order


def build(s: Scenario, reverse: bool = False) -> SmartRouter:
    router = SmartRouter({"XYZ": "V1"}, s.profiles, default_strategy=s.default_strategy,
                         strategy_by_account=s.strategy_by_account, internal_rest_accounts=["ACC-2"])
    for venue in sorted(s.books, reverse=reverse):
        bids, asks = s.books[venue]
        router.on_book(venue, "XYZ", bids, asks)
    router.on_internal_book("XYZ", *s.internal)
    for venue in sorted(s.down_after_data):
        router.on_venue_down(venue)
    return router


def check(router: SmartRouter, s: Scenario, order: Order, qty: Decimal, plans: list[ChildPlan]) -> None:
    assert order.side is not None
    buy = order.side is Side.BUY
    up = s.up - s.down_after_data
    assert sum((p.qty for p in plans), D(0)) <= min(qty, order.unrouted_qty)
    limit = order.price if order.child_ord_type is OrdType.LIMIT else None
    lit = router.book.nbbo("XYZ", {v for v in up if v != "INTERNAL"})
    for p in plans:
        assert p.qty > 0
        assert p.venue in up
        if order.ex_destination:
            assert p.venue == order.ex_destination
        prof = router.profile(p.venue)
        taking = p.time_in_force in TAKING or p.ord_type is OrdType.MARKET
        assert prof.accepts(p.ord_type, p.qty, ioc=p.time_in_force in TAKING)
        assert not (taking and prof.post_only)
        if p.ord_type is OrdType.MARKET:
            assert limit is None and p.price is None
        else:
            assert p.price is not None and p.price > 0
        if limit is not None:
            assert p.price is not None and (p.price <= limit if buy else p.price >= limit)
        if p.venue == "INTERNAL" and p.time_in_force is TimeInForce.IOC and not order.ex_destination:
            assert lit is not None and lit.bid is not None and lit.ask is not None and p.price is not None
            assert lit.bid <= p.price <= lit.ask  # never through a protected quote
        if order.child_tif in TAKING:
            assert p.time_in_force in TAKING  # an IOC/FOK parent must not leave anything resting
    if order.child_tif is TimeInForce.FOK and not order.ex_destination:
        assert len(plans) <= 1 and all(p.qty == qty and p.time_in_force is TimeInForce.FOK for p in plans)


@settings(max_examples=400, deadline=None)
@given(scenarios(), orders(), st.integers(0, 3))
def test_router_plans_obey_the_hard_rules(s: Scenario, order: Order, extra: int) -> None:
    router = build(s)
    # The engine asks for the unrouted quantity; asking for more must not get more.
    qty = order.unrouted_qty + extra * 1000
    plans = router.route(order, qty, s.up - s.down_after_data)
    check(router, s, order, min(qty, order.unrouted_qty), plans)


@settings(max_examples=200, deadline=None)
@given(scenarios(), orders())
def test_router_is_deterministic(s: Scenario, order: Order) -> None:
    up = s.up - s.down_after_data
    first = build(s).route(order, order.unrouted_qty, up)
    again = build(s, reverse=True)
    assert again.route(order, order.unrouted_qty, up) == first
    assert again.route(order, order.unrouted_qty, set(up)) == first


@settings(max_examples=200, deadline=None)
@given(scenarios(), orders())
def test_down_venues_are_never_used_even_with_fresh_quotes(s: Scenario, order: Order) -> None:
    router = build(s)
    down = set(VENUES) - set(s.up)
    plans = router.route(order, order.unrouted_qty, s.up)
    assert not {p.venue for p in plans} & down


def test_without_market_data_the_default_venue_gets_the_order() -> None:
    router = SmartRouter({"XYZ": "V1"}, {"V1": VenueProfile("V1")})
    order = make_order(Side.BUY, 500, "100.00")
    assert router.route(order, D(500), {"V1", "V2"}) == [
        ChildPlan("V1", D(500), D("100.00"), OrdType.LIMIT, TimeInForce.DAY)]
    assert router.route(order, D(500), {"V2"}) == []  # its venue is down: nowhere to go
    router.on_book("V2", "OTHER", [(D("1"), D(1))], [])
    assert router.route(order, D(500), {"V1", "V2"})[0].venue == "V1"


def test_ex_destination_goes_there_or_nowhere() -> None:
    router = SmartRouter({"XYZ": "V1"}, {"V2": VenueProfile("V2", order_types=frozenset({OrdType.LIMIT}))})
    router.on_book("V1", "XYZ", [(D("99.99"), D(100))], [(D("100.01"), D(100))])
    limit = make_order(Side.BUY, 300, "100.01", ex_destination="V2")
    assert router.route(limit, D(300), {"V1", "V2"}) == [
        ChildPlan("V2", D(300), D("100.01"), OrdType.LIMIT, TimeInForce.DAY)]
    assert router.route(limit, D(300), {"V1"}) == []
    market = make_order(Side.BUY, 300, ex_destination="V2")
    assert router.route(market, D(300), {"V1", "V2"}) == []  # V2 takes no market orders


def test_residual_rounds_stop_sweeping_after_repeated_misses() -> None:
    router = SmartRouter({"XYZ": "V1"}, max_ioc_misses=2, default_strategy="sweep")
    router.on_book("V1", "XYZ", [(D("99.99"), D(100))], [(D("100.01"), D(100))])
    order = make_order(Side.BUY, 500, "100.05")
    first = router.route(order, D(500), {"V1"})
    assert first == [ChildPlan("V1", D(100), D("100.01"), OrdType.LIMIT, TimeInForce.IOC)]
    for _ in range(2):  # the book was stale: each IOC comes back unfilled
        child = route_child(order, "V1", 100, "100.01", OrdType.LIMIT, TimeInForce.IOC)
        order.apply(ev.ChildDone(order.order_id, child, False, "IOC canceled"))
    # No more IOCs: the whole order goes to one venue on its own terms (it rests there at its limit).
    assert router.route(order, order.unrouted_qty, {"V1"}) == [
        ChildPlan("V1", D(500), D("100.05"), OrdType.LIMIT, TimeInForce.DAY)]


def test_a_market_order_the_venue_had_nothing_for_is_not_resent() -> None:
    router = SmartRouter({"XYZ": "V1"}, default_strategy="sweep")
    router.on_book("V1", "XYZ", [(D("99.99"), D(100))], [])
    order = make_order(Side.BUY, 500)
    plans = router.route(order, D(500), {"V1"})
    assert plans == [ChildPlan("V1", D(500), None, OrdType.MARKET, TimeInForce.DAY)]
    child = route_child(order, "V1", 500, None, OrdType.MARKET, TimeInForce.DAY)
    order.apply(ev.ChildDone(order.order_id, child, False, "no liquidity"))
    assert router.route(order, order.unrouted_qty, {"V1"}) == []


def test_children_are_capped_per_parent() -> None:
    router = SmartRouter({"XYZ": "V1"}, max_children=3)
    router.on_book("V1", "XYZ", [(D("99.99"), D(100))], [(D("100.01"), D(100))])
    order = make_order(Side.BUY, 500, "100.05")
    for _ in range(3):
        route_child(order, "V1", 1, "100.01", OrdType.LIMIT, TimeInForce.DAY)
    assert router.route(order, order.unrouted_qty, {"V1"}) == []

"""The consolidated book, venue profiles and each routing strategy on hand-built books."""

from __future__ import annotations

from decimal import Decimal

import pytest

from oms.enums import OrdType, Side, TimeInForce
from oms.ports import ChildPlan
from sor.book import ConsolidatedBook, ProtectedQuote, Quote
from sor.router import DEFAULT_STRATEGY, SmartRouter
from sor.strategies import (
    STRATEGIES,
    ContKukanov,
    PostOnly,
    ProRata,
    RouteRequest,
    SingleVenue,
    Sweep,
    split,
    strategy_named,
)
from sor.venues import VenueProfile, profiles_from_config
from tests.sor import D, make_order

PROFILES = {
    "A": VenueProfile("A", maker_rebate=D("0.002"), taker_fee=D("0.003")),
    "B": VenueProfile("B", maker_rebate=D("-0.001"), taker_fee=D("-0.0005"), max_order_qty=D(500)),
    "C": VenueProfile("C", maker_rebate=D("0.001"), taker_fee=D("0.001"), order_types=frozenset({OrdType.LIMIT})),
}
BOOK = {
    "A": ([("99.99", 300), ("99.98", 500)], [("100.01", 200), ("100.02", 400)]),
    "B": ([("99.99", 100)], [("100.01", 100), ("100.03", 1000)]),
    "C": ([("99.98", 1000)], [("100.02", 300)]),
}


def lv(levels: list[tuple[str, int]]) -> list[tuple[Decimal, Decimal]]:
    return [(D(p), D(q)) for p, q in levels]


def book() -> ConsolidatedBook:
    b = ConsolidatedBook(dark={"INTERNAL"})
    for venue, (bids, asks) in BOOK.items():
        b.update(venue, "XYZ", lv(bids), lv(asks))
    return b


def request(side: Side, qty: int | Decimal, limit: str | None = None, tif: TimeInForce = TimeInForce.DAY,
            venues: dict[str, VenueProfile] | None = None, **kw: object) -> RouteRequest:
    b = book()
    venues = PROFILES if venues is None else venues
    contra = b.levels("XYZ", Side.SELL if side is Side.BUY else Side.BUY, set(venues))
    same = b.levels("XYZ", side, set(venues))
    return RouteRequest(
        "XYZ", side, D(qty), None if limit is None else D(limit), OrdType.MARKET if limit is None else OrdType.LIMIT,
        tif, b.nbbo("XYZ", set(venues)), tuple(contra), tuple(same), venues, "A", **kw,  # type: ignore[arg-type]
    )


def total(plans: list[ChildPlan]) -> Decimal:
    return sum((p.qty for p in plans), D(0))


# --- consolidated book --------------------------------------------------------------------------
def test_nbbo_sums_size_at_the_best_price_across_venues() -> None:
    nbbo = book().nbbo("XYZ")
    assert nbbo is not None
    assert (nbbo.bid, nbbo.bid_qty, nbbo.ask, nbbo.ask_qty, nbbo.mid) == (
        D("99.99"), D(400), D("100.01"), D(300), D("100.00"))
    assert nbbo.spread == D("0.02")


def test_levels_are_best_first_then_by_venue_name() -> None:
    asks = book().levels("XYZ", Side.SELL)
    assert [(q.venue, q.price) for q in asks[:4]] == [
        ("A", D("100.01")), ("B", D("100.01")), ("A", D("100.02")), ("C", D("100.02"))]
    bids = book().levels("XYZ", Side.BUY, {"C"})
    assert bids == (Quote("C", D("99.98"), D(1000)),)


def test_levels_follow_every_update_of_the_book() -> None:
    """`levels` keeps its answer per symbol and side until the book changes: each update and a venue going
    down show at once, and another symbol's update does not drop the answer."""
    b = book()
    before = b.levels("XYZ", Side.SELL, {"A", "B"})
    assert b.levels("XYZ", Side.SELL, {"A", "B"}) is before  # kept
    b.update("OTHER", "ABC", lv([("10.00", 5)]), lv([("10.01", 5)]))
    assert b.levels("XYZ", Side.SELL, {"A", "B"}) is before
    b.update("B", "XYZ", lv([("99.99", 100)]), lv([("100.00", 50)]))
    after = b.levels("XYZ", Side.SELL, {"A", "B"})
    assert [(q.venue, q.price, q.qty) for q in after[:2]] == [("B", D("100.00"), D(50)), ("A", D("100.01"), D(200))]
    assert [q.venue for q in b.levels("XYZ", Side.SELL, {"A"})] == ["A", "A"]  # another set of venues
    b.drop_venue("A")
    assert [q.venue for q in b.levels("XYZ", Side.SELL, {"A", "B"})] == ["B"]
    assert b.levels("XYZ", Side.BUY, {"A"}) == ()


def test_a_venue_going_down_takes_its_quotes_with_it() -> None:
    b = book()
    b.drop_venue("A")
    nbbo = b.nbbo("XYZ")
    assert nbbo is not None and (nbbo.bid_qty, nbbo.ask_qty) == (D(100), D(100))
    assert all(q.venue != "A" for q in b.levels("XYZ", Side.SELL))


def test_snapshot_replaces_and_is_cleaned() -> None:
    b = book()
    # Unsorted, duplicated, zero-size levels: stored sorted, merged, without the empty one.
    b.update("A", "XYZ", lv([("99.97", 100), ("99.99", 0), ("99.98", 100), ("99.98", 50)]), [])
    assert b.venue_levels("A", "XYZ", Side.BUY) == ((D("99.98"), D(150)), (D("99.97"), D(100)))
    assert b.venue_levels("A", "XYZ", Side.SELL) == ()
    b.update("A", "XYZ", [], [])
    assert "A" not in b.venues("XYZ")


def test_dark_venue_neither_sets_the_nbbo_nor_is_protected() -> None:
    b = book()
    b.update("INTERNAL", "XYZ", lv([("100.00", 5000)]), [])
    nbbo = b.nbbo("XYZ")
    assert nbbo is not None and nbbo.bid == D("99.99")
    assert all(q.venue != "INTERNAL" for q in b.protected_quotes("XYZ"))


def test_protected_quotes_are_each_venues_top_of_book() -> None:
    quotes = book().protected_quotes("XYZ", {"A", "C"})
    assert quotes == [
        ProtectedQuote("A", Side.BUY, D("99.99"), D(300)), ProtectedQuote("A", Side.SELL, D("100.01"), D(200)),
        ProtectedQuote("C", Side.BUY, D("99.98"), D(1000)), ProtectedQuote("C", Side.SELL, D("100.02"), D(300)),
    ]


def test_no_quotes_no_nbbo() -> None:
    assert ConsolidatedBook().nbbo("XYZ") is None


# --- venue profiles -------------------------------------------------------------------------------
def test_profiles_from_config_are_exact_decimals() -> None:
    profiles = profiles_from_config({
        "V1": {"maker_rebate": 0.002, "taker_fee": "0.003", "latency_ms": 1, "order_types": ["LIMIT", "1"],
               "max_order_qty": 5000, "supports_ioc": True, "post_only": False},
        "V2": {"order_types": ["limit"], "post_only": True, "touch_outflow": 2000},
    })
    v1, v2 = profiles["V1"], profiles["V2"]
    assert v1.maker_rebate == D("0.002") and v1.taker_fee == D("0.003") and v1.max_order_qty == D(5000)
    assert v1.order_types == frozenset({OrdType.LIMIT, OrdType.MARKET})
    assert v2.order_types == frozenset({OrdType.LIMIT}) and v2.post_only and not v2.can_take
    assert v2.touch_outflow == D(2000) and v2.max_order_qty is None
    assert not v1.accepts(OrdType.LIMIT, D(5001)) and v1.accepts(OrdType.LIMIT, D(5000), ioc=True)


@pytest.mark.parametrize("cfg", [{"taker_fees": 1}, {"taker_fee": "abc"}, {"order_types": ["ICEBERG"]},
                                 {"max_order_qty": 0}, {"taker_fee": True}])
def test_bad_profile_config_is_refused_with_its_name(cfg: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="venue_profiles.V"):
        VenueProfile.from_config("V", cfg)


# --- strategies -----------------------------------------------------------------------------------
def test_strategy_names_follow_target_strategy_spelling() -> None:
    assert set(STRATEGIES) == {"single", "pro_rata", "sweep", "cont_kukanov", "post_only"}
    assert strategy_named("Cont-Kukanov") is STRATEGIES["cont_kukanov"]
    assert strategy_named(" SWEEP ") is STRATEGIES["sweep"]
    assert strategy_named("vwap") is None and strategy_named(None) is None


def test_single_goes_whole_to_the_best_priced_venue() -> None:
    # A and B both offer 100.01; A shows more there.
    assert SingleVenue().plan(request(Side.BUY, 300)) == [
        ChildPlan("A", D(300), None, OrdType.MARKET, TimeInForce.DAY)]
    sell = SingleVenue().plan(request(Side.SELL, 800, "99.95"))
    assert sell == [ChildPlan("A", D(800), D("99.95"), OrdType.LIMIT, TimeInForce.DAY)]


def test_single_skips_a_venue_whose_size_limit_the_order_exceeds() -> None:
    only_b_and_c = {"B": PROFILES["B"], "C": PROFILES["C"]}
    plans = SingleVenue().plan(request(Side.BUY, 800, "100.05", venues=only_b_and_c))
    assert plans == [ChildPlan("C", D(800), D("100.05"), OrdType.LIMIT, TimeInForce.DAY)]


def test_single_falls_back_to_the_default_venue_when_nobody_quotes() -> None:
    req = request(Side.BUY, 100, "100.00")
    req = RouteRequest("XYZ", Side.BUY, D(100), D("100.00"), OrdType.LIMIT, TimeInForce.DAY, None, (), (),
                       PROFILES, "B")
    assert SingleVenue().plan(req) == [ChildPlan("B", D(100), D("100.00"), OrdType.LIMIT, TimeInForce.DAY)]


def test_pro_rata_splits_by_displayed_size_within_the_limit() -> None:
    # Within 100.01: A shows 200, B 100 (C has nothing there) -> 2:1.
    plans = ProRata().plan(request(Side.BUY, 900, "100.01"))
    assert plans == [ChildPlan("A", D(600), D("100.01"), OrdType.LIMIT, TimeInForce.DAY),
                     ChildPlan("B", D(300), D("100.01"), OrdType.LIMIT, TimeInForce.DAY)]


def test_pro_rata_respects_venue_size_limits_and_types() -> None:
    plans = ProRata().plan(request(Side.BUY, 3000))  # market: C cannot take market orders
    assert {p.venue for p in plans} == {"A", "B"}
    assert all(p.qty <= 500 for p in plans if p.venue == "B")
    assert total(plans) <= 3000


def test_sweep_takes_best_price_first_then_cheapest_fee() -> None:
    plans = Sweep().plan(request(Side.BUY, 600))
    # 100.01: B (paid to take) before A; 100.02: C (0.001) before A (0.003).
    assert plans == [
        ChildPlan("B", D(100), D("100.01"), OrdType.LIMIT, TimeInForce.IOC),
        ChildPlan("A", D(200), D("100.01"), OrdType.LIMIT, TimeInForce.IOC),
        ChildPlan("C", D(300), D("100.02"), OrdType.LIMIT, TimeInForce.IOC),
    ]


def test_sweep_pins_each_venue_at_its_deepest_level_and_never_past_the_limit() -> None:
    plans = Sweep().plan(request(Side.BUY, 5000, "100.02"))
    assert plans == [
        ChildPlan("B", D(100), D("100.01"), OrdType.LIMIT, TimeInForce.IOC),
        ChildPlan("A", D(600), D("100.02"), OrdType.LIMIT, TimeInForce.IOC),
        ChildPlan("C", D(300), D("100.02"), OrdType.LIMIT, TimeInForce.IOC),
    ]  # the other 4,000 stay unrouted until the IOCs are back


def test_sweep_keeps_to_a_venue_size_limit() -> None:
    plans = Sweep().plan(request(Side.BUY, 2000))
    b = [p for p in plans if p.venue == "B"]
    assert b == [ChildPlan("B", D(500), D("100.03"), OrdType.LIMIT, TimeInForce.IOC)]


def test_sweep_rests_a_non_marketable_limit_at_the_best_rebate() -> None:
    plans = Sweep().plan(request(Side.SELL, 2000, "100.00"))
    assert plans == [ChildPlan("A", D(2000), D("100.00"), OrdType.LIMIT, TimeInForce.DAY)]


def test_sweep_of_an_ioc_order_with_nothing_to_take_goes_on_its_own_terms() -> None:
    plans = Sweep().plan(request(Side.SELL, 100, "100.00", TimeInForce.IOC))
    assert plans == [ChildPlan("A", D(100), D("100.00"), OrdType.LIMIT, TimeInForce.IOC)]


def test_sweep_stops_sending_iocs_after_too_many_misses() -> None:
    plans = Sweep().plan(request(Side.BUY, 600, "100.02", allow_ioc=False))
    assert plans == [ChildPlan("A", D(600), D("100.02"), OrdType.LIMIT, TimeInForce.DAY)]


def test_post_only_rests_at_the_near_touch_and_never_takes() -> None:
    plans = PostOnly().plan(request(Side.BUY, 1000, "100.05"))
    assert plans == [ChildPlan("A", D(1000), D("99.99"), OrdType.LIMIT, TimeInForce.DAY)]
    sell = PostOnly().plan(request(Side.SELL, 1000, "100.02"))  # limit behind the touch: rests at it
    assert sell == [ChildPlan("A", D(1000), D("100.02"), OrdType.LIMIT, TimeInForce.DAY)]
    assert PostOnly().plan(request(Side.BUY, 1000, "100.05", TimeInForce.IOC)) == []


def test_post_only_spills_past_a_size_limit_to_the_next_best_rebate() -> None:
    small_a = dict(PROFILES, A=VenueProfile("A", maker_rebate=D("0.002"), max_order_qty=D(400)))
    plans = PostOnly().plan(request(Side.BUY, 1000, "99.99", venues=small_a))
    assert plans == [ChildPlan("A", D(400), D("99.99"), OrdType.LIMIT, TimeInForce.DAY),
                     ChildPlan("C", D(600), D("99.99"), OrdType.LIMIT, TimeInForce.DAY)]


def test_cont_kukanov_splits_a_passive_order_across_queues() -> None:
    plans = ContKukanov().plan(request(Side.SELL, 2000, "100.00"))
    assert total(plans) == 2000
    assert all(p.price == D("100.00") and p.time_in_force is TimeInForce.DAY for p in plans)
    assert len({p.venue for p in plans}) >= 2  # spreading beats piling into one queue


def test_cont_kukanov_prefers_the_short_queue_between_equal_venues() -> None:
    same = {n: VenueProfile(n, maker_rebate=D("0.001"), taker_fee=D("0.002")) for n in ("A", "C")}
    b = ConsolidatedBook()
    b.update("A", "XYZ", lv([("99.99", 3000)]), lv([("100.01", 3000)]))
    b.update("C", "XYZ", lv([("99.98", 3000)]), lv([("100.01", 3000)]))
    req = RouteRequest("XYZ", Side.BUY, D(1000), D("99.99"), OrdType.LIMIT, TimeInForce.DAY, b.nbbo("XYZ"),
                       tuple(b.levels("XYZ", Side.SELL)), tuple(b.levels("XYZ", Side.BUY)), same)
    placed = {p.venue: p.qty for p in ContKukanov().plan(req)}
    assert placed.get("C", D(0)) > placed.get("A", D(0))  # at C nobody is ahead of us at 99.99


def test_cont_kukanov_urgency_moves_quantity_from_resting_to_taking() -> None:
    patient = ContKukanov().plan(request(Side.BUY, 600, "100.02", urgency_bps=D(0)))
    urgent = ContKukanov().plan(request(Side.BUY, 600, "100.02", urgency_bps=D(50)))

    def taken(plans: list[ChildPlan]) -> Decimal:
        return total([p for p in plans if p.time_in_force is TimeInForce.IOC])

    assert taken(urgent) > taken(patient)
    for plans in (patient, urgent):
        assert total(plans) == 600
        assert all(p.price is not None and p.price <= D("100.02") for p in plans)
        rested = [p for p in plans if p.time_in_force is TimeInForce.DAY]
        assert all(p.price == D("99.99") for p in rested)  # joins the bid, never crosses


def test_cont_kukanov_sweeps_market_and_ioc_orders() -> None:
    for req in (request(Side.BUY, 600), request(Side.BUY, 600, "100.02", TimeInForce.IOC)):
        assert ContKukanov().plan(req) == Sweep().plan(req)


def test_split_is_exact_in_lots_and_deterministic() -> None:
    parts = split(D(1000), [("A", D(3)), ("B", D(3)), ("C", D(3))], D(100))
    assert parts == {"A": D(400), "B": D(300), "C": D(300)}
    assert sum(split(D("1050.5"), [("A", D(1)), ("B", D(2))], D(100)).values()) == D("1050.5")
    assert split(D(100), [("A", D(0))], D(1)) == {}


# --- strategy selection in the router -------------------------------------------------------------
def test_strategy_precedence_target_strategy_then_account_then_default() -> None:
    router = SmartRouter({"XYZ": "A"}, PROFILES, strategy_by_account={"ACC-2": "single"})
    assert router.strategy_for(make_order(account="ACC-2", strategy="post_only")).name == "post_only"
    assert router.strategy_for(make_order(account="ACC-2")).name == "single"
    assert router.strategy_for(make_order(account="ACC-3")).name == DEFAULT_STRATEGY
    assert router.strategy_for(make_order(account="ACC-2", strategy="no-such")).name == "single"


def test_router_config_refuses_unknown_strategies_and_settings() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        SmartRouter.from_config({}, {"strategy_by_account": {"ACC-1": "vwap"}})
    with pytest.raises(ValueError, match="unknown setting"):
        SmartRouter.from_config({}, {"defualt_strategy": "sweep"})


def test_router_from_config() -> None:
    router = SmartRouter.from_config(
        {"XYZ": "A"},
        {"default_strategy": "sweep", "strategy_by_account": {"ACC-9": "pro_rata"}, "crossing": False,
         "lot_size": 100, "max_ioc_misses": 3, "urgency_bps": "2.5"},
        {"A": {"taker_fee": 0.003}},
    )
    assert router.default_strategy.name == "sweep" and router.strategy_by_account["ACC-9"].name == "pro_rata"
    assert not router.crossing and router.lot_size == 100 and router.urgency_bps == D("2.5")
    assert router.profile("A").taker_fee == D("0.003") and router.profile("Z") == VenueProfile("Z")


def test_cont_kukanov_quantities_stay_exact() -> None:
    qty = D("1234567.891")
    plans = ContKukanov().plan(request(Side.SELL, qty, "100.00"))
    assert total(plans) == qty

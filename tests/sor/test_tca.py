"""Transaction cost analysis per parent and over many."""

from __future__ import annotations

from datetime import timedelta

from oms import events as ev
from oms.enums import OrdType, Side, TimeInForce
from sor.tca import Fill, aggregate, child_fee, order_tca, parent_tca
from sor.venues import VenueProfile
from tests.sor import T0, D, make_order, route_child


def test_buy_above_arrival_is_a_positive_cost() -> None:
    t = parent_tca("P1", "XYZ", Side.BUY, D(1000), D("100.00"), [
        Fill(D(600), D("100.01"), "A", T0 + timedelta(seconds=1), D("1.80")),
        Fill(D(400), D("100.02"), "B", T0 + timedelta(seconds=3), D("-0.40")),
    ], arrived_at=T0)
    assert t.avg_price == D("100.014")
    assert t.shortfall_bps == D("1.4000")
    assert t.implementation_shortfall_bps == D("1.4000")  # complete: nothing left to charge
    assert t.fill_rate == 1
    assert (t.fees, t.rebates, t.net_fees) == (D("1.80"), D("0.40"), D("1.40"))
    assert t.venues == ("A", "B")
    assert t.time_to_fill == timedelta(seconds=3)


def test_sell_below_arrival_is_a_positive_cost_and_above_a_gain() -> None:
    cost = parent_tca("P", "XYZ", Side.SELL, D(100), D("50.00"), [Fill(D(100), D("49.99"), "A")])
    gain = parent_tca("P", "XYZ", Side.SELL_SHORT, D(100), D("50.00"), [Fill(D(100), D("50.01"), "A")])
    assert cost.shortfall_bps == D("2.0000") and gain.shortfall_bps == D("-2.0000")


def test_unfilled_shares_are_charged_only_with_an_end_price() -> None:
    fills = [Fill(D(500), D("100.00"), "A", T0)]
    plain = parent_tca("P", "XYZ", Side.BUY, D(1000), D("100.00"), fills, arrived_at=T0)
    assert plain.shortfall_bps == 0 and plain.implementation_shortfall_bps is None
    assert plain.fill_rate == D("0.5") and plain.time_to_fill is None  # never complete
    moved = parent_tca("P", "XYZ", Side.BUY, D(1000), D("100.00"), fills, end_price=D("100.10"))
    # 500 unfilled shares x 0.10 against 1,000 x 100.00 of arrival notional.
    assert moved.implementation_shortfall_bps == D("5.0000")
    assert moved.opportunity_cost == D("50.00")


def test_nothing_filled_and_no_arrival_mid() -> None:
    t = parent_tca("P", "XYZ", Side.BUY, D(100), None, [])
    assert (t.avg_price, t.shortfall_bps, t.fill_rate, t.venues) == (None, None, 0, ())
    assert t.as_dict()["shortfall_bps"] is None


def test_aggregate_weights_by_arrival_notional() -> None:
    small = parent_tca("S", "XYZ", Side.BUY, D(100), D("100"), [Fill(D(100), D("100.10"), "A", fee=D("0.30"))])
    big = parent_tca("B", "XYZ", Side.SELL, D(900), D("100"), [Fill(D(900), D("100.00"), "B", fee=D("-0.90"))])
    s = aggregate([small, big], small_fills := [Fill(D(100), D("100.10"), "A"), Fill(D(900), D("100"), "B")])
    # (100 x 0.10 + 900 x 0) / (1000 x 100) = 1 bp, not the 5 bp mean of the two parents.
    assert s.shortfall_bps == D("1.0000")
    assert s.parents == 2 and s.fill_rate == 1 and s.filled_qty == 1000
    assert (s.fees, s.rebates, s.net_fees) == (D("0.30"), D("0.90"), D("-0.60"))
    assert s.net_fees_bps == D("-0.0600") and s.all_in_bps == D("0.9400")
    assert s.venue_qty == {"A": D(100), "B": D(900)} and len(small_fills) == 2


def test_aggregate_implementation_shortfall_counts_unfilled() -> None:
    done = parent_tca("D", "XYZ", Side.BUY, D(100), D("100"), [Fill(D(100), D("100"), "A")], end_price=D("101"))
    half = parent_tca("H", "XYZ", Side.BUY, D(100), D("100"), [Fill(D(50), D("100"), "A")], end_price=D("101"))
    s = aggregate([done, half])
    assert s.shortfall_bps == 0
    assert s.implementation_shortfall_bps == D("25.0000")  # 50 x 1.00 over 200 x 100
    assert s.fill_rate == D("0.7500")


def test_order_tca_from_an_engine_order() -> None:
    profiles = {"A": VenueProfile("A", maker_rebate=D("0.002"), taker_fee=D("0.003"))}
    order = make_order(Side.BUY, 1000, "100.05")
    ioc = route_child(order, "A", 600, "100.02", OrdType.LIMIT, TimeInForce.IOC)
    rest = route_child(order, "A", 400, "99.99", OrdType.LIMIT, TimeInForce.DAY)
    order.apply(ev.ChildFilled(order.order_id, ioc, "A", "x1", order.next_exec_id(), D(600), D("100.02"), T0))
    order.apply(ev.ChildFilled(order.order_id, rest, "A", "x2", order.next_exec_id(), D(200), D("99.99"), T0))
    t = order_tca(order, D("100.00"), profiles, completed_at=T0 + timedelta(seconds=2))
    assert t.filled_qty == 800 and t.fill_rate == D("0.8")
    assert t.avg_price == (D(600) * D("100.02") + D(200) * D("99.99")) / 800
    assert t.fees == D("1.800") and t.rebates == D("0.400")  # IOC took, the resting child added
    assert t.time_to_fill is None
    assert child_fee(order.children[ioc], D(1), {}) == 0

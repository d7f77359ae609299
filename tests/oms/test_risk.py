"""Unit tests of the pre-trade risk module: each check at, just below and just above its limit."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from oms.enums import OrdRejReason, OrdType, Side
from oms.risk import OrderView, RiskConfig, RiskEngine, RiskLimits, Scope, TradingState
from oms.risk.checks import RESTRICTED_REASON
from oms.validation import Refusal

D = Decimal
ACC = "ACC-1"
REF = D(100)
LIMIT_EXCEEDED = OrdRejReason.ORDER_EXCEEDS_LIMIT


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_ids = iter(range(1, 10**9))


def view(oid: str | None = None, *, qty: str | int = 100, price: str | None = "100", side: Side = Side.BUY,
         ord_type: OrdType | None = None, symbol: str = "XYZ", account: str = ACC,
         session: str = "S1") -> OrderView:
    if ord_type is None:
        ord_type = OrdType.LIMIT if price is not None else OrdType.MARKET
    return OrderView(oid or f"O{next(_ids)}", session, account, symbol, side, ord_type, D(qty),
                     None if price is None else D(price))


def make(limits: RiskLimits | None = None, **config: object) -> tuple[RiskEngine, Clock]:
    clock = Clock()
    accounts = {ACC: limits} if limits is not None else {}
    return RiskEngine(RiskConfig(accounts=accounts, **config), clock=clock), clock  # type: ignore[arg-type]


def accept(risk: RiskEngine, *, qty: str | int = 100, price: str = "100", side: Side = Side.BUY,
           symbol: str = "XYZ", account: str = ACC) -> OrderView:
    v = view(qty=qty, price=price, side=side, symbol=symbol, account=account)
    risk.on_accepted(v)
    return v


def hold(risk: RiskEngine, qty: str | int, *, side: Side = Side.BUY, symbol: str = "XYZ",
         price: str = "100") -> OrderView:
    """A filled position of `qty` in `symbol`."""
    v = accept(risk, qty=qty, price=price, side=side, symbol=symbol)
    risk.on_fill(v, D(qty), D(price))
    return v


def refused(result: Refusal | None, reason: OrdRejReason, text: str) -> None:
    assert result is not None, f"expected a refusal {text!r}"
    assert (result.reason, result.text) == (reason, text)


# --- max order quantity / notional ---------------------------------------------------------------
@pytest.mark.parametrize("qty", [99_999, 100_000])
def test_max_order_qty_at_and_below_limit_passes(qty: int) -> None:
    risk, _ = make()
    assert risk.check_new(view(qty=qty, price="1"), D(1)) is None


@pytest.mark.parametrize("qty", [100_001, 150_000])
def test_max_order_qty_above_limit_refused(qty: int) -> None:
    risk, _ = make()
    refused(risk.check_new(view(qty=qty, price="1"), D(1)), LIMIT_EXCEEDED,
            f"max order quantity 100000 exceeded: OrderQty {qty}")


@pytest.mark.parametrize("qty,price", [(9_999, "100"), (10_000, "100")])
def test_max_order_notional_at_and_below_limit_passes(qty: int, price: str) -> None:
    risk, _ = make()
    assert risk.check_new(view(qty=qty, price=price), REF) is None


def test_max_order_notional_above_limit_refused() -> None:
    risk, _ = make()
    refused(risk.check_new(view(qty=10_000, price="100.01"), REF), LIMIT_EXCEEDED,
            "max order notional 1000000 exceeded: notional 1000100 (OrderQty 10000 x price 100.01)")


def test_market_order_notional_is_valued_at_the_reference() -> None:
    risk, _ = make()
    assert risk.check_new(view(qty=10_000, price=None), REF) is None
    refused(risk.check_new(view(qty=10_001, price=None), REF), LIMIT_EXCEEDED,
            "max order notional 1000000 exceeded: notional 1000100 (OrderQty 10001 x price 100)")


def test_size_limits_can_be_unlimited() -> None:
    risk, _ = make(RiskLimits(max_order_qty=None, max_order_notional=None))
    assert risk.check_new(view(qty=10**9, price="100"), REF) is None


# --- price collar ----------------------------------------------------------------------------------
@pytest.mark.parametrize("price", ["90", "90.01", "100", "109.99", "110"])
def test_collar_at_and_inside_passes(price: str) -> None:
    risk, _ = make()
    assert risk.check_new(view(price=price), REF) is None


def test_collar_just_above_refused() -> None:
    risk, _ = make()
    refused(risk.check_new(view(price="110.01"), REF), LIMIT_EXCEEDED,
            "price collar 10% exceeded: Price 110.01 is 10.01% from reference 100")


def test_collar_just_below_refused() -> None:
    risk, _ = make()
    refused(risk.check_new(view(price="89.99", side=Side.SELL), REF), LIMIT_EXCEEDED,
            "price collar 10% exceeded: Price 89.99 is 10.01% from reference 100")


def test_collar_text_for_a_price_beyond_decimal_precision() -> None:
    # 43 digits: quantizing the percentage raised InvalidOperation and the order went unanswered
    risk, _ = make(RiskLimits(max_order_notional=None))
    refusal = risk.check_new(view(price="9" * 43, side=Side.SELL), REF)
    assert refusal is not None and refusal.reason == LIMIT_EXCEEDED
    assert refusal.text.startswith("price collar 10% exceeded: Price ") and "e+43% from reference 100" in refusal.text


def test_collar_without_reference_passes_limit_refuses_market() -> None:
    risk, _ = make()
    assert risk.check_new(view(price="1000"), None) is None
    refused(risk.check_new(view(price=None), None), LIMIT_EXCEEDED, "no reference price for market order")
    refused(risk.check_new(view(price=None, ord_type=OrdType.STOP), None), LIMIT_EXCEEDED,
            "no reference price for stop order")
    assert risk.check_new(view(price=None), REF) is None


def test_collar_configured_per_account() -> None:
    risk, _ = make(RiskLimits(price_collar=D("0.05")))
    assert risk.check_new(view(price="105"), REF) is None
    refused(risk.check_new(view(price="105.5"), REF), LIMIT_EXCEEDED,
            "price collar 5% exceeded: Price 105.5 is 5.5% from reference 100")
    assert risk.check_new(view(price="105.5", account="OTHER"), REF) is None


def test_collar_off_still_needs_a_reference_for_market() -> None:
    risk, _ = make(RiskLimits(price_collar=None))
    assert risk.check_new(view(price="500"), REF) is None
    refused(risk.check_new(view(price=None), None), LIMIT_EXCEEDED, "no reference price for market order")


# --- market orders allowed / min and max price -----------------------------------------------------
def test_market_orders_disallowed_per_account() -> None:
    risk, _ = make(RiskLimits(market_orders_allowed=False))
    text = "market orders not allowed for account ACC-1 (market_orders_allowed false): OrdType {}"
    refused(risk.check_new(view(price=None), REF), LIMIT_EXCEEDED, text.format("MARKET"))
    refused(risk.check_new(view(price=None, ord_type=OrdType.STOP), REF), LIMIT_EXCEEDED, text.format("STOP"))
    assert risk.check_new(view(price="100"), REF) is None
    assert risk.check_new(view(price=None, account="OTHER"), REF) is None


@pytest.mark.parametrize("price", ["10", "10.01", "199.99", "200"])
def test_price_bounds_at_and_inside_pass(price: str) -> None:
    risk, _ = make(RiskLimits(min_price=D(10), max_price=D(200)))
    assert risk.check_new(view(price=price, qty=10), None) is None


def test_price_bounds_outside_refused() -> None:
    risk, _ = make(RiskLimits(min_price=D(10), max_price=D(200)))
    refused(risk.check_new(view(price="9.99", qty=10), None), LIMIT_EXCEEDED, "min price 10 not met: Price 9.99")
    refused(risk.check_new(view(price="200.01", qty=10), None), LIMIT_EXCEEDED,
            "max price 200 exceeded: Price 200.01")


def test_price_bounds_do_not_apply_to_market_orders() -> None:
    risk, _ = make(RiskLimits(min_price=D(200)))
    assert risk.check_new(view(price=None, qty=10), REF) is None


# --- duplicate content ------------------------------------------------------------------------------
def test_duplicate_within_window_refused_at_window_passes() -> None:
    risk, clock = make()
    first = view("FIRST")
    assert risk.check_new(first, REF) is None
    clock.now += 0.999
    refused(risk.check_new(view(), REF), OrdRejReason.DUPLICATE_ORDER,
            "duplicate order within 1s: same session, account, symbol, side, qty, price and type as order "
            "FIRST 0.999s ago")
    clock.now += 0.001  # exactly 1 s after the first
    assert risk.check_new(view(), REF) is None
    clock.now += 1.001
    assert risk.check_new(view(), REF) is None


@pytest.mark.parametrize("change", [
    {"qty": 101}, {"price": "100.5"}, {"side": Side.SELL}, {"symbol": "ABC"}, {"account": "ACC-2"},
    {"session": "S2"}, {"ord_type": OrdType.STOP_LIMIT},
])
def test_duplicate_needs_every_field_equal(change: dict[str, object]) -> None:
    risk, _ = make()
    assert risk.check_new(view(), REF) is None
    assert risk.check_new(view(**change), REF) is None  # type: ignore[arg-type]


def test_duplicate_window_counts_only_orders_that_passed() -> None:
    risk, clock = make(RiskLimits(credit_limit=D(5000)))
    text = "credit limit 5000 exceeded: account ACC-1 open 0 + filled today 0 + order 10000 = 10000"
    refused(risk.check_new(view(), REF), LIMIT_EXCEEDED, text)
    clock.now += 0.1
    refused(risk.check_new(view(), REF), LIMIT_EXCEEDED, text)  # a retry, not a duplicate


def test_duplicate_check_off_with_zero_window() -> None:
    risk, _ = make(duplicate_window=0.0)
    assert risk.check_new(view(), REF) is None
    assert risk.check_new(view(), REF) is None


# --- order rate ---------------------------------------------------------------------------------------
def _distinct(i: int, session: str = "S1") -> OrderView:
    return view(qty=1 + i, session=session)


def test_submit_rate_default_100_per_second() -> None:
    risk, clock = make()
    for i in range(99):
        assert risk.check_new(_distinct(i), REF) is None
    assert risk.check_new(_distinct(99), REF) is None  # the 100th: at the limit
    refused(risk.check_new(_distinct(100), REF), LIMIT_EXCEEDED,
            "max submit rate 100/s exceeded: session S1 sent 101 in the last 1s")
    assert risk.check_new(_distinct(101, session="S2"), REF) is None
    clock.now += 1.0
    assert risk.check_new(_distinct(102), REF) is None


def test_submit_rate_is_a_sliding_window() -> None:
    risk, clock = make(session_submit_rate=2)
    assert risk.check_new(_distinct(0), REF) is None
    clock.now += 0.5
    assert risk.check_new(_distinct(1), REF) is None
    clock.now += 0.4
    refused(risk.check_new(_distinct(2), REF), LIMIT_EXCEEDED,
            "max submit rate 2/s exceeded: session S1 sent 3 in the last 1s")
    clock.now += 0.1  # the first has left the window; the refused attempt still counts
    refused(risk.check_new(_distinct(3), REF), LIMIT_EXCEEDED,
            "max submit rate 2/s exceeded: session S1 sent 3 in the last 1s")


def test_submit_rate_counts_attempts_refused_by_earlier_checks() -> None:
    risk, _ = make(session_submit_rate=2, restricted=frozenset({"BAD"}))
    for _ in range(2):
        refused(risk.check_new(view(symbol="BAD"), REF), RESTRICTED_REASON, "restricted symbol BAD (firm list)")
    refused(risk.check_new(view(), REF), LIMIT_EXCEEDED,
            "max submit rate 2/s exceeded: session S1 sent 3 in the last 1s")


def test_modify_rate_separate_from_submits() -> None:
    risk, _ = make(session_submit_rate=1, session_modify_rate=2)
    current = accept(risk)
    assert risk.check_new(view(qty=1), REF) is None
    for qty in (90, 80):
        assert risk.check_replace(current, D(0), view(current.order_id, qty=qty), REF) is None
    refused(risk.check_replace(current, D(0), view(current.order_id, qty=70), REF), LIMIT_EXCEEDED,
            "max modify rate 2/s exceeded: session S1 sent 3 in the last 1s")


def test_rate_unlimited() -> None:
    risk, _ = make(session_submit_rate=None)
    for i in range(300):
        assert risk.check_new(_distinct(i), REF) is None


# --- open orders per account and symbol ------------------------------------------------------------------
@pytest.mark.parametrize("open_count,ok", [(998, True), (999, True), (1000, False)])
def test_open_orders_default_1000(open_count: int, ok: bool) -> None:
    risk, _ = make()
    for _ in range(open_count):
        accept(risk, qty=1)
    result = risk.check_new(view(qty=2), REF)
    if ok:
        assert result is None
    else:
        refused(result, LIMIT_EXCEEDED, "max open orders 1000 reached: account ACC-1 has 1000 open in XYZ")


def test_open_orders_per_symbol_and_released_by_done_and_fill() -> None:
    risk, _ = make(RiskLimits(max_open_orders=2))
    first = accept(risk)
    second = accept(risk)
    refused(risk.check_new(view(qty=5), REF), LIMIT_EXCEEDED,
            "max open orders 2 reached: account ACC-1 has 2 open in XYZ")
    assert risk.check_new(view(qty=5, symbol="ABC"), REF) is None
    risk.on_done(first, D(100))
    assert risk.check_new(view(qty=6), REF) is None
    risk.on_fill(second, D(100), D(100))  # fully filled: no longer open
    assert risk.exposure.symbol(ACC, "XYZ").open_orders == 0


# --- position -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("qty,ok", [(99, True), (100, True), (101, False)])
def test_net_position_long(qty: int, ok: bool) -> None:
    risk, _ = make(RiskLimits(max_position=D(1000)))
    hold(risk, 600)
    accept(risk, qty=300)
    accept(risk, qty=500, side=Side.SELL)  # open sells do not offset the long worst case
    result = risk.check_new(view(qty=qty), REF)
    if ok:
        assert result is None
    else:
        refused(result, LIMIT_EXCEEDED,
                "max position 1000 exceeded: account ACC-1 XYZ long 1001 (position 600 + open buys 300 + order 101)")


@pytest.mark.parametrize("qty,ok", [(999, True), (1000, True), (1001, False)])
def test_net_position_short_from_flat(qty: int, ok: bool) -> None:
    risk, _ = make(RiskLimits(max_position=D(1000)))
    result = risk.check_new(view(qty=qty, side=Side.SELL_SHORT), REF)
    if ok:
        assert result is None
    else:
        refused(result, LIMIT_EXCEEDED,
                "max position 1000 exceeded: account ACC-1 XYZ short 1001 (open sells 0 + order 1001 - position 0)")


def test_net_position_reducing_order_passes_over_limit() -> None:
    risk, _ = make(RiskLimits(max_position=D(1000)))
    hold(risk, 1500)  # e.g. the limit was cut after the position was built
    assert risk.check_new(view(qty=1500, side=Side.SELL), REF) is None
    assert risk.check_new(view(qty=2500, side=Side.SELL), REF) is None  # ends short 1000: at the limit
    refused(risk.check_new(view(qty=1, price="99"), REF), LIMIT_EXCEEDED,
            "max position 1000 exceeded: account ACC-1 XYZ long 1501 (position 1500 + open buys 0 + order 1)")


@pytest.mark.parametrize("qty,ok", [(399, True), (400, True), (401, False)])
def test_gross_position_across_symbols(qty: int, ok: bool) -> None:
    risk, _ = make(RiskLimits(max_gross_position=D(1000)))
    hold(risk, 600, symbol="XYZ")
    result = risk.check_new(view(qty=qty, symbol="ABC", side=Side.SELL), REF)
    if ok:
        assert result is None
    else:
        refused(result, LIMIT_EXCEEDED,
                "max gross position 1000 exceeded: account ACC-1 gross 1001 (ABC worst case 0 -> 401)")


def test_gross_position_ignores_orders_that_do_not_raise_the_worst_case() -> None:
    risk, _ = make(RiskLimits(max_gross_position=D(500)))
    hold(risk, 600)  # already over
    assert risk.check_new(view(qty=600, side=Side.SELL), REF) is None
    assert risk.check_new(view(qty=1200, side=Side.SELL, price="99"), REF) is None  # worst case stays 600
    refused(risk.check_new(view(qty=1, price="101"), REF), LIMIT_EXCEEDED,
            "max gross position 500 exceeded: account ACC-1 gross 601 (XYZ worst case 600 -> 601)")


# --- credit --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("qty,ok", [(2999, True), (3000, True), (3001, False)])
def test_credit_open_plus_filled_plus_order(qty: int, ok: bool) -> None:
    risk, _ = make(RiskLimits(credit_limit=D(1_000_000)))
    accept(risk, qty=4000)  # open 400,000
    hold(risk, 3000, side=Side.SELL)  # filled 300,000: sells use credit too
    result = risk.check_new(view(qty=qty), REF)
    if ok:
        assert result is None
    else:
        refused(result, LIMIT_EXCEEDED, "credit limit 1000000 exceeded: account ACC-1 open 400000 + filled "
                                         "today 300000 + order 300100 = 1000100")


def test_credit_market_order_at_reference_and_day_reset() -> None:
    risk, _ = make(RiskLimits(credit_limit=D(100_000)))
    hold(risk, 900)
    refused(risk.check_new(view(qty=101, price=None), REF), LIMIT_EXCEEDED,
            "credit limit 100000 exceeded: account ACC-1 open 0 + filled today 90000 + order 10100 = 100100")
    assert risk.check_new(view(qty=100, price=None), REF) is None
    risk.reset_day()
    assert risk.check_new(view(qty=1000, price=None), REF) is None
    assert risk.exposure.symbol(ACC, "XYZ").position == 900  # positions carry over the day


def test_credit_unlimited_by_default() -> None:
    risk, _ = make()
    for _ in range(50):
        accept(risk, qty=10_000)
    assert risk.check_new(view(qty=10_000), REF) is None


# --- restricted symbols -------------------------------------------------------------------------------------
def test_restricted_firm_and_account_lists() -> None:
    risk, _ = make(RiskLimits(restricted=frozenset({"ACCX"})), restricted=frozenset({"FIRMX"}))
    # The design's table gives OrdRejReason 2 for a restricted symbol.
    assert RESTRICTED_REASON == 1
    refused(risk.check_new(view(symbol="FIRMX"), REF), RESTRICTED_REASON, "restricted symbol FIRMX (firm list)")
    refused(risk.check_new(view(symbol="FIRMX", account="OTHER"), REF), RESTRICTED_REASON,
            "restricted symbol FIRMX (firm list)")
    refused(risk.check_new(view(symbol="ACCX"), REF), RESTRICTED_REASON,
            "restricted symbol ACCX (account ACC-1 list)")
    assert risk.check_new(view(symbol="ACCX", account="OTHER"), REF) is None
    assert risk.check_new(view(symbol="XYZ"), REF) is None


# --- trading states ------------------------------------------------------------------------------------------
SCOPES = [Scope("firm"), Scope("account", ACC), Scope("session", "S1")]


@pytest.mark.parametrize("scope", SCOPES, ids=str)
def test_halted_refuses_new_orders_at_each_scope(scope: Scope) -> None:
    risk, _ = make()
    hold(risk, 500)
    assert risk.set_state(scope, TradingState.HALTED, "ops", "test") == (TradingState.ACTIVE,
                                                                          TradingState.HALTED)
    held = " the session is held by an operator:" if scope.kind == "session" else ""
    text = f"trading state HALTED ({scope}):{held} orders that add risk are refused"
    refused(risk.check_new(view(), REF), OrdRejReason.OTHER, text)
    refused(risk.check_new(view(side=Side.SELL, qty=10), REF), OrdRejReason.OTHER, text)  # even reducing
    others = {"firm": [], "account": [view(account="ACC-2")], "session": [view(session="S2")]}[scope.kind]
    for other in others:
        assert risk.check_new(other, REF) is None
    risk.set_state(scope, TradingState.ACTIVE, "ops", "over")
    assert risk.check_new(view(qty=3), REF) is None


@pytest.mark.parametrize("scope", SCOPES, ids=str)
def test_reducing_allows_only_position_reducing_orders_at_each_scope(scope: Scope) -> None:
    risk, _ = make()
    hold(risk, 500)
    accept(risk, qty=200, side=Side.SELL)
    risk.set_state(scope, TradingState.REDUCING, "ops", "test")
    assert risk.check_new(view(side=Side.SELL, qty=299), REF) is None
    assert risk.check_new(view(side=Side.SELL, qty=300), REF) is None  # exactly to flat
    refused(risk.check_new(view(side=Side.SELL, qty=301), REF), OrdRejReason.OTHER,
            f"trading state REDUCING ({scope}) allows only position-reducing orders: position 500, "
            "open sells 200, order sell 301")
    refused(risk.check_new(view(qty=1), REF), OrdRejReason.OTHER,
            f"trading state REDUCING ({scope}) allows only position-reducing orders: position 500, "
            "open buys 0, order buy 1")


def test_reducing_when_short_allows_buys_up_to_flat() -> None:
    risk, _ = make()
    hold(risk, 300, side=Side.SELL_SHORT)
    risk.set_state(Scope.parse("account:ACC-1"), TradingState.REDUCING, "ops", "margin call")
    assert risk.check_new(view(qty=300), REF) is None
    refused(risk.check_new(view(qty=301), REF), OrdRejReason.OTHER,
            "trading state REDUCING (account:ACC-1) allows only position-reducing orders: position -300, "
            "open buys 0, order buy 301")
    refused(risk.check_new(view(qty=1, side=Side.SELL), REF), OrdRejReason.OTHER,
            "trading state REDUCING (account:ACC-1) allows only position-reducing orders: position -300, "
            "open sells 0, order sell 1")


def test_reducing_when_flat_refuses_everything() -> None:
    risk, _ = make()
    risk.set_state(Scope("firm"), TradingState.REDUCING, "ops", "eod")
    for side in (Side.BUY, Side.SELL):
        assert risk.check_new(view(side=side), REF) is not None


def test_most_restrictive_state_applies() -> None:
    risk, _ = make()
    hold(risk, 500)
    risk.set_state(Scope("firm"), TradingState.REDUCING, "ops", "a")
    risk.set_state(Scope("session", "S1"), TradingState.HALTED, "ops", "b")
    refused(risk.check_new(view(side=Side.SELL), REF), OrdRejReason.OTHER,
            "trading state HALTED (session:S1): the session is held by an operator: orders that add risk are "
            "refused")
    # Firm REDUCING still applies to another session of the same account, even with the account ACTIVE.
    assert risk.check_new(view(side=Side.SELL, session="S2"), REF) is None
    refused(risk.check_new(view(session="S2", qty=1), REF), OrdRejReason.OTHER,
            "trading state REDUCING (firm) allows only position-reducing orders: position 500, open buys 0, "
            "order buy 1")
    assert risk.state_of(Scope("account", ACC)) is TradingState.ACTIVE
    assert risk.state_of(Scope("firm")) is TradingState.REDUCING


def test_set_state_returns_before_and_after_and_is_shown() -> None:
    risk, _ = make()
    scope = Scope.parse("session:FIX.4.4:CLIENT->BROKER")
    assert scope == Scope("session", "FIX.4.4:CLIENT->BROKER")
    assert risk.set_state(scope, TradingState.REDUCING, "alice", "x") == (TradingState.ACTIVE,
                                                                           TradingState.REDUCING)
    assert risk.set_state(scope, TradingState.HALTED, "bob", "kill") == (TradingState.REDUCING,
                                                                          TradingState.HALTED)
    assert risk.state_of(scope) is TradingState.HALTED
    states = risk.snapshot()["states"]
    assert states == [{"scope": "session:FIX.4.4:CLIENT->BROKER", "state": "HALTED", "who": "bob",
                       "reason": "kill", "at": 1000.0}]


def test_scope_parse() -> None:
    assert Scope.parse("firm") == Scope("firm")
    assert Scope.parse("account:ACC-1") == Scope("account", "ACC-1")
    assert str(Scope.parse("account:ACC-1")) == "account:ACC-1"
    for bad in ("desk:X", "account", "account:", "firm:x"):
        with pytest.raises(ValueError):
            Scope.parse(bad)


# --- replaces: checked on their increment ------------------------------------------------------------------------
def test_replace_quantity_increase_checked_on_increment() -> None:
    risk, _ = make(RiskLimits(max_position=D(1000)))
    current = accept(risk, qty=800)
    assert risk.check_replace(current, D(0), view(current.order_id, qty=1000), REF) is None
    refused(risk.check_replace(current, D(0), view(current.order_id, qty=1001), REF), LIMIT_EXCEEDED,
            "max position 1000 exceeded: account ACC-1 XYZ long 1001 (position 0 + open buys 800 + order 201)")


def test_replace_increment_counts_cum_qty() -> None:
    risk, _ = make(RiskLimits(max_position=D(1000)))
    current = accept(risk, qty=800)
    risk.on_fill(current, D(300), D(100))  # position 300, open buys 500
    assert risk.check_replace(current, D(300), view(current.order_id, qty=1000), REF) is None
    refused(risk.check_replace(current, D(300), view(current.order_id, qty=1001), REF), LIMIT_EXCEEDED,
            "max position 1000 exceeded: account ACC-1 XYZ long 1001 (position 300 + open buys 500 + order 201)")


def test_replace_decrease_passes_even_over_limits() -> None:
    risk, _ = make(RiskLimits(max_position=D(1000), credit_limit=D(1000)))
    current = accept(risk, qty=5000)
    risk.set_limit(ACC, "max_order_qty", "100")
    assert risk.check_replace(current, D(0), view(current.order_id, qty=4000), REF) is None


def test_replace_max_qty_and_notional_only_when_growing() -> None:
    risk, _ = make()
    current = accept(risk, qty=5000)
    refused(risk.check_replace(current, D(0), view(current.order_id, qty=10_001), REF), LIMIT_EXCEEDED,
            "max order notional 1000000 exceeded: notional 1000100 (OrderQty 10001 x price 100)")
    assert risk.check_replace(current, D(0), view(current.order_id, qty=10_000), REF) is None
    cheap = accept(risk, qty=90_000, price="1")
    refused(risk.check_replace(cheap, D(0), view(cheap.order_id, qty=100_001, price="1"), D(1)), LIMIT_EXCEEDED,
            "max order quantity 100000 exceeded: OrderQty 100001")


def test_replace_price_change_checked_against_collar_and_bounds() -> None:
    risk, _ = make(RiskLimits(max_price=D(108)))
    current = accept(risk)
    assert risk.check_replace(current, D(0), view(current.order_id, price="95"), REF) is None
    refused(risk.check_replace(current, D(0), view(current.order_id, price="89"), REF), LIMIT_EXCEEDED,
            "price collar 10% exceeded: Price 89 is 11% from reference 100")
    refused(risk.check_replace(current, D(0), view(current.order_id, price="109"), REF), LIMIT_EXCEEDED,
            "max price 108 exceeded: Price 109")
    # Unchanged price: the collar is not re-run on a quantity change, even if the market moved away.
    assert risk.check_replace(current, D(0), view(current.order_id, qty=90), D(200)) is None


def test_replace_to_market_needs_reference_and_permission() -> None:
    risk, _ = make(RiskLimits(market_orders_allowed=False))
    current = accept(risk)
    refused(risk.check_replace(current, D(0), view(current.order_id, price=None), REF), LIMIT_EXCEEDED,
            "market orders not allowed for account ACC-1 (market_orders_allowed false): OrdType MARKET")
    risk.set_limit(ACC, "market_orders_allowed", "true")
    refused(risk.check_replace(current, D(0), view(current.order_id, price=None), None), LIMIT_EXCEEDED,
            "no reference price for market order")
    assert risk.check_replace(current, D(0), view(current.order_id, price=None), REF) is None


def test_replace_credit_on_notional_increment() -> None:
    risk, _ = make(RiskLimits(credit_limit=D(20_000)))
    current = accept(risk, qty=100)  # 10,000
    accept(risk, qty=50)  # 5,000
    assert risk.check_replace(current, D(0), view(current.order_id, qty=100, price="105"), REF) is None
    assert risk.check_replace(current, D(0), view(current.order_id, qty=150, price="100"), REF) is None
    refused(risk.check_replace(current, D(0), view(current.order_id, qty=150, price="100.01"), REF),
            LIMIT_EXCEEDED, "credit limit 20000 exceeded: account ACC-1 open 15000 + filled today 0 + order "
                            "5001.5 = 20001.5")


def test_replace_under_halt_only_if_it_does_not_add_risk() -> None:
    risk, _ = make()
    buy = accept(risk)
    sell = accept(risk, side=Side.SELL)
    risk.set_state(Scope("firm"), TradingState.HALTED, "ops", "kill")
    halted = "trading state HALTED (firm): orders that add risk are refused"
    assert risk.check_replace(buy, D(0), view(buy.order_id, qty=50), REF) is None
    assert risk.check_replace(buy, D(0), view(buy.order_id, price="99"), REF) is None
    assert risk.check_replace(sell, D(0), view(sell.order_id, side=Side.SELL, price="101"), REF) is None
    refused(risk.check_replace(buy, D(0), view(buy.order_id, qty=101), REF), OrdRejReason.OTHER, halted)
    refused(risk.check_replace(buy, D(0), view(buy.order_id, qty=50, price="100.5"), REF), OrdRejReason.OTHER,
            halted)
    refused(risk.check_replace(sell, D(0), view(sell.order_id, side=Side.SELL, price="99"), REF),
            OrdRejReason.OTHER, halted)
    refused(risk.check_replace(buy, D(0), view(buy.order_id, price=None), REF), OrdRejReason.OTHER, halted)


@pytest.mark.parametrize("scope", SCOPES, ids=str)
def test_replace_under_reducing(scope: Scope) -> None:
    risk, _ = make()
    hold(risk, 500)
    sell = accept(risk, qty=300, side=Side.SELL)
    risk.set_state(scope, TradingState.REDUCING, "ops", "test")
    assert risk.check_replace(sell, D(0), view(sell.order_id, qty=500, side=Side.SELL), REF) is None
    assert risk.check_replace(sell, D(0), view(sell.order_id, qty=300, side=Side.SELL, price="99"), REF) is None
    refused(risk.check_replace(sell, D(0), view(sell.order_id, qty=501, side=Side.SELL), REF), OrdRejReason.OTHER,
            f"trading state REDUCING ({scope}) allows only position-reducing orders: position 500, "
            "open sells 300, order sell 201")


# --- bookkeeping --------------------------------------------------------------------------------------------------
def test_exposure_follows_accept_fill_replace_done_and_bust() -> None:
    risk, _ = make()
    v = accept(risk, qty=1000, price="50")
    acct = risk.exposure.account(ACC)
    sx = risk.exposure.symbol(ACC, "XYZ")
    assert (acct.open_notional, sx.open_buy, sx.open_orders) == (50_000, 1000, 1)
    risk.on_fill(v, D(400), D("49.5"))
    assert (acct.open_notional, acct.filled_notional, sx.position, sx.open_buy) == (30_000, 19_800, 400, 600)
    new = view(v.order_id, qty=800, price="51")
    risk.on_replaced(v, new, D(400))
    assert (acct.open_notional, sx.open_buy) == (20_400, 400)
    risk.on_fill(new, D(-400), D("49.5"))  # bust: the quantity is open again
    assert (acct.open_notional, acct.filled_notional, sx.position, sx.open_buy) == (40_800, 0, 0, 800)
    risk.on_done(new, D(800))
    assert (acct.open_notional, sx.open_buy, sx.open_orders, acct.gross_position) == (0, 0, 0, 0)
    assert risk.exposure.recompute()[ACC] == acct


def test_replace_down_to_cum_qty_closes_the_order() -> None:
    risk, _ = make()
    v = accept(risk, qty=100)
    risk.on_fill(v, D(60), REF)
    risk.on_replaced(v, view(v.order_id, qty=50), D(60))
    sx = risk.exposure.symbol(ACC, "XYZ")
    assert (sx.open_orders, sx.open_buy, sx.position) == (0, 0, 60)


def test_market_order_open_notional_uses_checked_reference() -> None:
    risk, _ = make()
    v = view(qty=100, price=None)
    assert risk.check_new(v, D(42)) is None
    risk.on_accepted(v)
    assert risk.exposure.account(ACC).open_notional == 4200


def test_refused_order_changes_no_exposure() -> None:
    risk, _ = make(RiskLimits(credit_limit=D(1)))
    accept(risk)
    before = risk.snapshot()["accounts"]
    assert risk.check_new(view(qty=7), REF) is not None
    assert risk.snapshot()["accounts"] == before


# --- limits: set_limit and config ------------------------------------------------------------------------------------
def test_set_limit_returns_before_and_after() -> None:
    risk, _ = make()
    assert risk.set_limit(ACC, "max_order_qty", "5000") == ("100000", "5000")
    refused(risk.check_new(view(qty=5001, price="1"), D(1)), LIMIT_EXCEEDED,
            "max order quantity 5000 exceeded: OrderQty 5001")
    assert risk.check_new(view(qty=5001, price="1", account="OTHER"), D(1)) is None
    assert risk.set_limit(ACC, "credit_limit", "2500000.50") == ("none", "2500000.5")
    assert risk.set_limit(ACC, "credit_limit", "none") == ("2500000.5", "none")
    assert risk.set_limit(ACC, "price_collar", "0.05") == ("0.1", "0.05")
    assert risk.set_limit(ACC, "market_orders_allowed", "false") == ("true", "false")
    assert risk.set_limit(ACC, "max_open_orders", "10") == ("1000", "10")
    assert risk.set_limit(ACC, "restricted", "B,A") == ("none", "A,B")
    assert risk.set_limit(ACC, "restricted", "+C") == ("A,B", "A,B,C")
    assert risk.set_limit(ACC, "restricted", "-A") == ("A,B,C", "B,C")
    assert risk.limits_of(ACC).restricted == frozenset({"B", "C"})


def test_set_limit_firm_and_defaults() -> None:
    risk = RiskEngine(RiskConfig(accounts={ACC: RiskLimits(max_order_qty=D(10)), "FOLLOWS": RiskLimits()}),
                      clock=Clock())
    assert risk.set_limit("*", "max_order_qty", "50000") == ("100000", "50000")
    assert risk.limits_of("ANYONE").max_order_qty == 50_000
    assert risk.limits_of("FOLLOWS").max_order_qty == 50_000  # it had the default: it follows
    assert risk.limits_of(ACC).max_order_qty == 10  # its own value stays
    assert risk.set_limit("*", "restricted", "+XYZ") == ("none", "XYZ")
    assert risk.set_limit("*", "session_submit_rate", "200") == ("100", "200")
    assert risk.set_limit("*", "duplicate_window", "0.5") == ("1.0", "0.5")
    refused(risk.check_new(view(), REF), RESTRICTED_REASON, "restricted symbol XYZ (firm list)")


@pytest.mark.parametrize("account,name,value", [
    (ACC, "max_qty", "1"), (ACC, "max_order_qty", "lots"), (ACC, "max_order_qty", "-1"),
    (ACC, "max_open_orders", "1.5"), (ACC, "market_orders_allowed", "maybe"), (ACC, "session_submit_rate", "1"),
    ("", "max_order_qty", "1"), (ACC, "credit_limit", "NaN"), (ACC, "restricted", "+"),
])
def test_set_limit_rejects_unknown_names_and_bad_values(account: str, name: str, value: str) -> None:
    risk, _ = make()
    with pytest.raises(ValueError):
        risk.set_limit(account, name, value)
    assert risk.limits_of(ACC) == RiskLimits()


def test_config_from_dict() -> None:
    config = RiskConfig.from_dict({
        "defaults": {"max_order_qty": 50_000, "price_collar": 0.05, "credit_limit": "none"},
        "accounts": {"ACC-1": {"credit_limit": 2_000_000, "market_orders_allowed": False,
                               "restricted": ["ABC"], "max_position": "1000.5"}},
        "restricted": ["XYZ"],
        "session_submit_rate": 50,
        "duplicate_window": 0.5,
    })
    assert config.defaults == RiskLimits(max_order_qty=D(50_000), price_collar=D("0.05"))
    assert config.limits_for("ACC-1") == RiskLimits(
        max_order_qty=D(50_000), price_collar=D("0.05"), credit_limit=D(2_000_000), market_orders_allowed=False,
        restricted=frozenset({"ABC"}), max_position=D("1000.5"))
    assert config.limits_for("OTHER") is config.defaults
    assert (config.restricted, config.session_submit_rate, config.session_modify_rate, config.duplicate_window) \
        == (frozenset({"XYZ"}), 50, 100, 0.5)
    assert RiskConfig.from_dict({}) == RiskConfig()


@pytest.mark.parametrize("data,key", [
    ({"credit": 1}, "'credit'"),
    ({"defaults": {"max_qty": 1}}, "defaults.max_qty"),
    ({"accounts": {"ACC-1": {"colar": 0.1}}}, "accounts.ACC-1.colar"),
    ({"defaults": {"max_order_qty": True}}, "defaults.max_order_qty"),
    ({"accounts": {"ACC-1": {"max_open_orders": 2.5}}}, "accounts.ACC-1.max_open_orders"),
    ({"accounts": ["ACC-1"]}, "accounts"),
])
def test_config_from_dict_names_bad_keys(data: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        RiskConfig.from_dict(data)


def test_snapshot_is_json_and_lists_checks_in_order() -> None:
    risk, _ = make(RiskLimits(credit_limit=D(10**6)))
    hold(risk, 10)
    accept(risk, qty=5, side=Side.SELL, price="101.25")
    risk.check_new(view(), REF)
    snap = json.loads(json.dumps(risk.snapshot()))
    assert [c["name"] for c in snap["checks"]] == [
        "trading state", "restricted symbol", "market orders", "price bounds", "price collar",
        "max order quantity", "max order notional", "duplicate order", "submit rate", "modify rate",
        "max open orders", "max position", "max gross position", "credit limit",
    ]
    acc = snap["accounts"][ACC]
    assert acc["limits"]["credit_limit"] == "1000000"
    assert acc["exposure"]["open_notional"] == "506.25"
    assert acc["exposure"]["symbols"]["XYZ"] == {"position": "10", "open_buy": "0", "open_sell": "5",
                                                 "open_orders": 1, "worst_position": "10"}
    assert snap["sessions"]["S1"]["submits_last_second"] == 1
    assert snap["firm"]["state"] == "ACTIVE"

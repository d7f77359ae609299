"""Property tests of the risk module: exposure bookkeeping against an independent model, checks that
never move exposure, and limits that hold for every order the checks let through."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from oms.enums import OrdType, Side
from oms.risk import OrderView, RiskConfig, RiskEngine, RiskLimits, Scope, TradingState
from oms.risk.exposure import AccountExposure, Exposure

D = Decimal
ZERO = D(0)
ACCOUNTS = ("A1", "A2")
SYMBOLS = ("XYZ", "ABC")
SIDES = (Side.BUY, Side.SELL, Side.SELL_SHORT)

qtys = st.integers(1, 500).map(D)
prices = st.integers(50, 150).map(lambda cents: D(cents) / 4)  # quarter ticks: exact, and varied scales
maybe_prices = st.one_of(st.none(), prices)

# Nothing but the bookkeeping is under test here: no check may stand in the way.
OPEN_CONFIG = RiskConfig(
    defaults=RiskLimits(max_order_qty=None, max_order_notional=None, price_collar=None, max_open_orders=None),
    session_submit_rate=None, session_modify_rate=None, duplicate_window=0.0,
)


def _sell(side: Side) -> bool:
    return side is not Side.BUY


@dataclass
class ModelOrder:
    view: OrderView
    px: Decimal
    cum: Decimal = ZERO
    done: bool = False
    fills_today: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    fills_before: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    # Risk drops orders with nothing open at a day roll; a replace brings one back at today's reference.
    forgotten: bool = False

    @property
    def leaves(self) -> Decimal:
        return ZERO if self.done else max(self.view.qty - self.cum, ZERO)


class ExposureMachine(RuleBasedStateMachine):
    """Drives RiskEngine's on_* calls the way the engine does, and keeps its own simple account."""

    def __init__(self) -> None:
        super().__init__()
        self.risk = RiskEngine(OPEN_CONFIG, clock=lambda: 0.0)
        self.orders: dict[str, ModelOrder] = {}
        self.position: dict[tuple[str, str], Decimal] = {}
        self.reference: dict[str, Decimal] = {}
        self.seq = 0
        # A bust of a fill from before a day roll cannot be matched to its day by risk (it gets no fill
        # id): after one, only the model-free invariants are checked.
        self.exact = True

    def _open(self) -> list[ModelOrder]:
        return [o for o in self.orders.values() if o.leaves > 0]

    @rule(account=st.sampled_from(ACCOUNTS), symbol=st.sampled_from(SYMBOLS), side=st.sampled_from(SIDES),
          qty=qtys, price=maybe_prices, reference=prices)
    def accept(self, account: str, symbol: str, side: Side, qty: Decimal, price: Decimal | None,
               reference: Decimal) -> None:
        self.seq += 1
        ord_type = OrdType.LIMIT if price is not None else OrdType.MARKET
        v = OrderView(f"O{self.seq}", "S1", account, symbol, side, ord_type, qty, price)
        assert self.risk.check_new(v, reference) is None
        self.reference[symbol] = reference
        self.risk.on_accepted(v)
        self.orders[v.order_id] = ModelOrder(v, price if price is not None else reference)

    @precondition(lambda self: bool(self._open()))
    @rule(data=st.data(), px=prices)
    def fill(self, data: st.DataObject, px: Decimal) -> None:
        order = data.draw(st.sampled_from(self._open()))
        qty = data.draw(st.integers(1, int(order.leaves)).map(D))
        self.risk.on_fill(order.view, qty, px)
        order.cum += qty
        order.fills_today.append((qty, px))
        self._move(order.view, qty)

    @precondition(lambda self: any(o.fills_today for o in self.orders.values()))
    @rule(data=st.data())
    def bust(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from([o for o in self.orders.values() if o.fills_today]))
        qty, px = order.fills_today.pop(data.draw(st.integers(0, len(order.fills_today) - 1)))
        self.risk.on_fill(order.view, -qty, px)
        order.cum -= qty
        self._move(order.view, -qty)

    @precondition(lambda self: any(o.fills_before for o in self.orders.values()))
    @rule(data=st.data())
    def bust_from_an_earlier_day(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from([o for o in self.orders.values() if o.fills_before]))
        qty, px = order.fills_before.pop()
        self.risk.on_fill(order.view, -qty, px)
        order.cum -= qty
        self._move(order.view, -qty)
        self.exact = False

    @precondition(lambda self: any(not o.done for o in self.orders.values()))
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from([o for o in self.orders.values() if not o.done]))
        self.risk.on_done(order.view, order.leaves)
        order.done = True

    @precondition(lambda self: any(not o.done for o in self.orders.values()))
    @rule(data=st.data(), extra=st.integers(-500, 500), price=maybe_prices, reference=prices)
    def replace(self, data: st.DataObject, extra: int, price: Decimal | None, reference: Decimal) -> None:
        order = data.draw(st.sampled_from([o for o in self.orders.values() if not o.done]))
        old = order.view
        # The engine never lets OrderQty fall below CumQty (a replace down to it ends Filled).
        qty = max(old.qty + extra, order.cum, D(1))
        ord_type = OrdType.LIMIT if price is not None else OrdType.MARKET
        new = OrderView(old.order_id, old.session, old.account, old.symbol, old.side, ord_type, qty, price)
        self.risk.check_replace(old, order.cum, new, reference)
        self.reference[old.symbol] = reference
        self.risk.on_replaced(old, new, order.cum)
        if price is not None:
            order.px = price
        elif old.price is not None or order.forgotten:
            order.px = reference  # valued at the reference it was checked against
        order.view = new
        order.forgotten = False

    @rule()
    def reset_day(self) -> None:
        self.risk.reset_day()
        for order in self.orders.values():
            order.fills_before.extend(order.fills_today)
            order.fills_today.clear()
            order.forgotten = order.leaves == 0

    def _move(self, v: OrderView, qty: Decimal) -> None:
        key = (v.account, v.symbol)
        self.position[key] = self.position.get(key, ZERO) + (-qty if _sell(v.side) else qty)

    # --- invariants ------------------------------------------------------------------------------
    @invariant()
    def never_negative(self) -> None:
        for acct in self.risk.exposure.accounts.values():
            assert acct.open_notional >= 0 and acct.filled_notional >= 0 and acct.gross_position >= 0
            for sx in acct.symbols.values():
                assert sx.open_buy >= 0 and sx.open_sell >= 0 and sx.open_orders >= 0

    @invariant()
    def equals_recomputation_from_records(self) -> None:
        assert _flatten(self.risk.exposure.recompute()) == _flatten(self.risk.exposure.accounts)

    @invariant()
    def equals_the_model(self) -> None:
        if not self.exact:
            return
        expected: dict[str, object] = {}
        open_notional: dict[str, Decimal] = {}
        filled: dict[str, Decimal] = {}
        per_symbol: dict[tuple[str, str], list[Decimal]] = {}
        for (account, symbol), pos in self.position.items():
            per_symbol[(account, symbol)] = [pos, ZERO, ZERO, ZERO]
        for o in self.orders.values():
            v = o.view
            slot = per_symbol.setdefault((v.account, v.symbol), [ZERO, ZERO, ZERO, ZERO])
            slot[2 if _sell(v.side) else 1] += o.leaves
            slot[3] += o.leaves > 0
            open_notional[v.account] = open_notional.get(v.account, ZERO) + o.leaves * o.px
            filled[v.account] = filled.get(v.account, ZERO) + sum((q * p for q, p in o.fills_today), ZERO)
        gross: dict[str, Decimal] = {}
        for (account, symbol), (pos, ob, os_, count) in per_symbol.items():
            gross[account] = gross.get(account, ZERO) + max(pos + ob, os_ - pos, ZERO)
            for name, value in (("position", pos), ("open_buy", ob), ("open_sell", os_), ("open_orders", count)):
                if value:
                    expected[f"{account}/{symbol}/{name}"] = value
        for name, table in (("open_notional", open_notional), ("filled_notional", filled), ("gross", gross)):
            for account, value in table.items():
                if value:
                    expected[f"{account}/{name}"] = value
        assert _flatten(self.risk.exposure.accounts) == expected


def _flatten(accounts: dict[str, AccountExposure]) -> dict[str, object]:
    """Non-zero aggregates by path, so an empty entry and a missing one compare equal."""
    out: dict[str, object] = {}
    for account, acct in accounts.items():
        for name, value in (("open_notional", acct.open_notional), ("filled_notional", acct.filled_notional),
                            ("gross", acct.gross_position)):
            if value:
                out[f"{account}/{name}"] = value
        for symbol, sx in acct.symbols.items():
            for name in ("position", "open_buy", "open_sell", "open_orders"):
                value = getattr(sx, name)
                if value:
                    out[f"{account}/{symbol}/{name}"] = value
    return out


TestExposureBookkeeping = ExposureMachine.TestCase
TestExposureBookkeeping.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


# --- checks never move exposure; what passes respects the limits ---------------------------------------
@dataclass(frozen=True)
class StartingOrders:
    """A random starting point: orders accepted, some partly or fully filled."""

    orders: list[tuple[str, Side, Decimal, Decimal, Decimal]]  # symbol, side, qty, price, filled


books = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(SIDES), qtys, prices, st.integers(0, 100)).map(
        lambda t: (t[0], t[1], t[2], t[3], (t[2] * t[4] / 100).to_integral_value())),
    max_size=12,
).map(StartingOrders)

limit_sets = st.builds(
    RiskLimits,
    credit_limit=st.one_of(st.none(), st.integers(0, 200_000).map(D)),
    max_order_qty=st.one_of(st.none(), qtys),
    max_order_notional=st.one_of(st.none(), st.integers(0, 50_000).map(D)),
    price_collar=st.one_of(st.none(), st.sampled_from([D("0.05"), D("0.10"), D("0.5")])),
    market_orders_allowed=st.booleans(),
    min_price=st.one_of(st.none(), prices),
    max_price=st.one_of(st.none(), prices),
    max_open_orders=st.one_of(st.none(), st.integers(0, 8)),
    max_position=st.one_of(st.none(), st.integers(0, 2000).map(D)),
    max_gross_position=st.one_of(st.none(), st.integers(0, 3000).map(D)),
    restricted=st.sampled_from([frozenset(), frozenset({"ABC"})]),
)


def _build(book: StartingOrders, limits: RiskLimits) -> RiskEngine:
    risk = RiskEngine(RiskConfig(accounts={"A1": limits}), clock=lambda: 0.0)
    for i, (symbol, side, qty, price, filled) in enumerate(book.orders):
        v = OrderView(f"B{i}", "S0", "A1", symbol, side, OrdType.LIMIT, qty, price)
        risk.on_accepted(v)
        if filled:
            risk.on_fill(v, filled, price)
    return risk


def _exposure(risk: RiskEngine) -> dict[str, object]:
    return _flatten(risk.exposure.accounts)


new_orders = st.builds(
    lambda symbol, side, qty, price: OrderView("NEW", "S1", "A1", symbol, side,
                                               OrdType.LIMIT if price is not None else OrdType.MARKET, qty, price),
    st.sampled_from(SYMBOLS), st.sampled_from(SIDES), qtys, maybe_prices,
)
states = st.sampled_from(list(TradingState))


@settings(max_examples=300, deadline=None)
@given(book=books, limits=limit_sets, order=new_orders, reference=st.one_of(st.none(), prices), state=states)
def test_a_check_never_changes_exposure(book: StartingOrders, limits: RiskLimits, order: OrderView,
                                        reference: Decimal | None, state: TradingState) -> None:
    risk = _build(book, limits)
    risk.set_state(Scope("account", "A1"), state, "test", "")
    before = _exposure(risk)
    risk.check_new(order, reference)
    assert _exposure(risk) == before
    if book.orders:
        symbol, side, qty, price, filled = book.orders[0]
        current = OrderView("B0", "S0", "A1", symbol, side, OrdType.LIMIT, qty, price)
        new = OrderView("B0", "S0", "A1", symbol, side, order.ord_type, max(order.qty, filled), order.price)
        risk.check_replace(current, filled, new, reference)
        assert _exposure(risk) == before


@settings(max_examples=500, deadline=None)
@given(book=books, limits=limit_sets, order=new_orders, reference=st.one_of(st.none(), prices))
def test_an_order_that_passes_keeps_the_account_within_its_limits(book: StartingOrders, limits: RiskLimits,
                                                                  order: OrderView,
                                                                  reference: Decimal | None) -> None:
    risk = _build(book, limits)
    exposure = risk.exposure
    sx_before = exposure.symbol("A1", order.symbol)
    worst_before = sx_before.worst
    gross_before = exposure.account("A1").gross_position
    credit_before = exposure.account("A1").credit_used
    if risk.check_new(order, reference) is not None:
        return
    risk.on_accepted(order)
    acct, sx = exposure.account("A1"), exposure.symbol("A1", order.symbol)
    assert order.symbol not in limits.restricted
    assert limits.market_orders_allowed or order.price is not None
    assert order.price is not None or reference is not None
    if limits.max_order_qty is not None:
        assert order.qty <= limits.max_order_qty
    if limits.max_open_orders is not None:
        assert sx.open_orders <= limits.max_open_orders
    if limits.credit_limit is not None and credit_before <= limits.credit_limit:
        assert acct.credit_used <= limits.credit_limit
    if limits.max_position is not None:
        side_worst = sx.position + sx.open_buy if order.side is Side.BUY else sx.open_sell - sx.position
        assert side_worst <= limits.max_position
    if limits.max_gross_position is not None:
        if sx.worst > worst_before:
            assert acct.gross_position <= limits.max_gross_position
        else:
            assert acct.gross_position <= gross_before


@settings(max_examples=300, deadline=None)
@given(book=books, order=new_orders)
def test_reducing_lets_through_only_what_brings_the_position_towards_flat(book: StartingOrders, order: OrderView) -> None:
    risk = _build(book, RiskLimits(max_order_qty=None, max_order_notional=None, price_collar=None,
                                   max_open_orders=None))
    risk.set_state(Scope("firm"), TradingState.REDUCING, "test", "")
    position = risk.exposure.symbol("A1", order.symbol).position
    if risk.check_new(order, D(25)) is not None:
        return
    risk.on_accepted(order)
    sx = risk.exposure.symbol("A1", order.symbol)
    # Every open order on the order's side filling leaves the position between where it was and flat.
    after = sx.position + sx.open_buy if order.side is Side.BUY else sx.position - sx.open_sell
    assert abs(after) <= abs(position) and after * position >= 0


def test_exposure_module_alone_agrees_with_its_recomputation() -> None:
    exposure = Exposure()
    v = OrderView("X", "S", "A", "XYZ", Side.BUY, OrdType.LIMIT, D(10), D(5))
    exposure.accept(v, D(5))
    exposure.fill(v, D(4), D(5))
    exposure.reset_day()
    exposure.fill(v, D(-4), D(5))  # a bust across the day roll
    assert _flatten(exposure.recompute()) == _flatten(exposure.accounts)
    assert exposure.account("A").filled_notional == 0

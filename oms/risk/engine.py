"""RiskEngine: runs the pre-trade checks and keeps the exposure they read.

Order of the checks (the first refusal wins, so a client sees the most fundamental reason):

 1. trading state (firm / account / session; kill switch)          OrdRejReason 99
 2. restricted symbol (firm list, then the account's)              2
 3. market orders allowed, then min / max price                    3
 4. price collar vs reference (and "no reference" for market)     3
 5. max order quantity, then max order notional                    3
 6. duplicate content within the window (new orders only)          6
 7. order rate per session (submits; replaces count as modifies)  3
 8. open orders per account and symbol (new orders only)           3
 9. position: net per symbol, then gross per account               3
10. credit: open + filled-today notional of the account            3

What is recorded, and when:
- Every `check_new` / `check_replace` call counts towards its session's submit / modify rate before any
  check runs, whether the request passes or not: the broker throttles attempts, not acceptances.
- The duplicate-content window records an order only when it passed every check: re-sending an order
  risk refused is a retry, and must not be refused again as a duplicate of itself.
- Nothing else changes in a check: exposure moves only through the `on_*` calls, which the engine makes
  after the event is committed. So a refused order never changes exposure.

Replaces are checked on their increment. A replace *adds risk* when its leaves quantity grows or its
price becomes more aggressive (higher for a buy, lower for a sell, or limit to market). Then:
HALTED refuses it; REDUCING refuses it unless the order, with the other open orders on its side, still
only brings the position towards flat; the restricted list applies. Order-level limits (market allowed,
price bounds, collar) are checked when the type or price changes; max quantity / notional when that
value grows; position and credit with the extra leaves / notional only. Cancels are never checked.

Prices: an order without a limit price (market, stop, pegged) is valued at the reference passed to the
check; that valuation is kept for its open quantity (see `oms.risk.exposure`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from oms.enums import Side
from oms.risk.checks import (
    Check,
    CreditLimit,
    DuplicateOrder,
    GrossPosition,
    MarketOrders,
    MaxOrderNotional,
    MaxOrderQty,
    NetPosition,
    OpenOrders,
    OrderRate,
    PriceBounds,
    PriceCollar,
    RestrictedSymbol,
    TradingStateCheck,
)
from oms.risk.exposure import ZERO, Exposure
from oms.risk.limits import (
    FIRM_NAMES,
    LIMIT_NAMES,
    RiskConfig,
    RiskLimits,
    format_value,
    json_value,
    limits_json,
    parse_count,
    parse_limit,
    parse_seconds,
    parse_symbols,
)
from oms.risk.state import Scope, TradingState, TradingStates
from oms.risk.view import OrderView
from oms.validation import Refusal

FIRM_ACCOUNT = "*"


def _more_aggressive(side: Side, old: Decimal | None, new: Decimal | None) -> bool:
    if new is None:
        return old is not None
    if old is None:
        return False
    return new > old if side is Side.BUY else new < old


class RiskEngine:
    def __init__(self, config: RiskConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._config = config or RiskConfig()
        self.exposure = Exposure()
        self.states = TradingStates(clock)
        # Last reference seen per symbol: values an unpriced order when it is accepted or replaced.
        self._reference: dict[str, Decimal] = {}
        self.trading_state = TradingStateCheck()
        self.restricted = RestrictedSymbol()
        self.market_orders = MarketOrders()
        self.price_bounds = PriceBounds()
        self.collar = PriceCollar()
        self.max_qty = MaxOrderQty()
        self.max_notional = MaxOrderNotional()
        self.duplicate = DuplicateOrder()
        self.submit_rate = OrderRate("submit", "session_submit_rate")
        self.modify_rate = OrderRate("modify", "session_modify_rate")
        self.open_orders = OpenOrders()
        self.net_position = NetPosition()
        self.gross_position = GrossPosition()
        self.credit = CreditLimit()

    @property
    def config(self) -> RiskConfig:
        return self._config

    @property
    def checks(self) -> tuple[Check, ...]:
        """The checks in the order they run."""
        return (self.trading_state, self.restricted, self.market_orders, self.price_bounds, self.collar,
                self.max_qty, self.max_notional, self.duplicate, self.submit_rate, self.modify_rate,
                self.open_orders, self.net_position, self.gross_position, self.credit)

    def _reference_of(self, symbol: str, reference: Decimal | None) -> Decimal | None:
        # A reference that cannot value anything is no reference (a zero would refuse every collar).
        if reference is None or not reference.is_finite() or reference <= 0:
            return None
        self._reference[symbol] = reference
        return reference

    # --- checks ------------------------------------------------------------------------------
    def check_new(self, view: OrderView, reference: Decimal | None) -> Refusal | None:
        now = self._clock()
        config = self._config
        submits = self.submit_rate.record(view.session, now)
        reference = self._reference_of(view.symbol, reference)
        account, symbol, side, qty, price = view.account, view.symbol, view.side, view.qty, view.price
        limits = config.accounts.get(account, config.defaults)
        sx = self.exposure.symbol(account, symbol)

        state, where = self.states.effective(account, view.session)
        refusal = self.trading_state(state, where, side, qty, True, sx)
        if refusal is not None:
            return refusal
        refusal = self.restricted(symbol, config.restricted, limits.restricted, account)
        if refusal is not None:
            return refusal
        refusal = self.market_orders(limits.market_orders_allowed, account, view.ord_type)
        if refusal is not None:
            return refusal
        refusal = self.price_bounds(limits.min_price, limits.max_price, price)
        if refusal is not None:
            return refusal
        refusal = self.collar(limits.price_collar, view.ord_type, price, reference)
        if refusal is not None:
            return refusal
        # The collar refused an unpriced order without a reference, so one of the two is set here.
        px = price if price is not None else reference
        assert px is not None
        notional = qty * px
        refusal = self.max_qty(limits.max_order_qty, qty)
        if refusal is not None:
            return refusal
        refusal = self.max_notional(limits.max_order_notional, qty, px, notional)
        if refusal is not None:
            return refusal
        key = (view.session, account, symbol, side, qty, price, view.ord_type)
        refusal = self.duplicate(config.duplicate_window, key, now)
        if refusal is not None:
            return refusal
        refusal = self.submit_rate(config.session_submit_rate, view.session, submits)
        if refusal is not None:
            return refusal
        refusal = self.open_orders(limits.max_open_orders, account, symbol, sx.open_orders)
        if refusal is not None:
            return refusal
        refusal = self.net_position(limits.max_position, account, symbol, side, qty, sx)
        if refusal is not None:
            return refusal
        acct = self.exposure.account(account)
        refusal = self.gross_position(limits.max_gross_position, account, symbol, side, qty, sx,
                                      acct.gross_position)
        if refusal is not None:
            return refusal
        refusal = self.credit(limits.credit_limit, account, acct, notional)
        if refusal is not None:
            return refusal
        self.duplicate.record(config.duplicate_window, key, now, view.order_id)
        return None

    def check_replace(self, current: OrderView, cum_qty: Decimal, new: OrderView,
                      reference: Decimal | None) -> Refusal | None:
        now = self._clock()
        config = self._config
        modifies = self.modify_rate.record(new.session, now)
        reference = self._reference_of(new.symbol, reference)
        account, symbol, side = current.account, current.symbol, current.side
        limits = config.accounts.get(account, config.defaults)
        sx = self.exposure.symbol(account, symbol)
        rec = self.exposure.orders.get(current.order_id)

        old_leaves = max(current.qty - cum_qty, ZERO)
        new_leaves = max(new.qty - cum_qty, ZERO)
        extra_qty = new_leaves - old_leaves
        type_changed = new.ord_type is not current.ord_type
        price_changed = new.price != current.price
        adds_risk = extra_qty > 0 or _more_aggressive(side, current.price, new.price)
        # What the order is valued at now (as counted in exposure), and after the replace.
        if rec is not None:
            old_px = rec.px
        else:
            old_px = current.price if current.price is not None else (reference or ZERO)
        if new.price is not None:
            new_px = new.price
        elif current.price is None:
            new_px = old_px  # still unpriced: keeps the valuation it was accepted with
        else:
            new_px = reference if reference is not None else old_px

        state, where = self.states.effective(account, new.session)
        refusal = self.trading_state(state, where, side, extra_qty, adds_risk, sx)
        if refusal is not None:
            return refusal
        if adds_risk:
            refusal = self.restricted(symbol, config.restricted, limits.restricted, account)
            if refusal is not None:
                return refusal
        if type_changed:
            refusal = self.market_orders(limits.market_orders_allowed, account, new.ord_type)
            if refusal is not None:
                return refusal
        if price_changed:
            refusal = self.price_bounds(limits.min_price, limits.max_price, new.price)
            if refusal is not None:
                return refusal
        if price_changed or type_changed:
            refusal = self.collar(limits.price_collar, new.ord_type, new.price, reference)
            if refusal is not None:
                return refusal
        if new.qty > current.qty:
            refusal = self.max_qty(limits.max_order_qty, new.qty)
            if refusal is not None:
                return refusal
        notional = new.qty * new_px
        # Same valuation on both sides for an unpriced order: only its quantity can make it bigger.
        if notional > current.qty * (current.price if current.price is not None else new_px):
            refusal = self.max_notional(limits.max_order_notional, new.qty, new_px, notional)
            if refusal is not None:
                return refusal
        refusal = self.modify_rate(config.session_modify_rate, new.session, modifies)
        if refusal is not None:
            return refusal
        if extra_qty > 0:
            refusal = self.net_position(limits.max_position, account, symbol, side, extra_qty, sx)
            if refusal is not None:
                return refusal
            acct = self.exposure.account(account)
            refusal = self.gross_position(limits.max_gross_position, account, symbol, side, extra_qty, sx,
                                          acct.gross_position)
            if refusal is not None:
                return refusal
        extra_notional = new_leaves * new_px - old_leaves * old_px
        if extra_notional > 0:
            refusal = self.credit(limits.credit_limit, account, self.exposure.account(account), extra_notional)
            if refusal is not None:
                return refusal
        return None

    # --- exposure bookkeeping (after the engine committed the event) ---------------------------
    def _unit_px(self, view: OrderView) -> Decimal:
        if view.price is not None:
            return view.price
        return self._reference.get(view.symbol, ZERO)

    def on_accepted(self, view: OrderView) -> None:
        self.exposure.accept(view, self._unit_px(view))

    def on_fill(self, view: OrderView, last_qty: Decimal, last_px: Decimal) -> None:
        """A fill; a bust is the same call with a negative quantity (a correction is a bust then a fill)."""
        self.exposure.fill(view, last_qty, last_px)

    def on_done(self, view: OrderView, leaves_qty_released: Decimal = ZERO) -> None:
        """Canceled, expired or rejected: all the order's remaining open quantity stops counting.

        Risk releases what it counted for the order (its own leaves), so the argument is informational."""
        self.exposure.done(view)

    def on_replaced(self, old_view: OrderView, new_view: OrderView, cum_qty: Decimal) -> None:
        rec = self.exposure.orders.get(new_view.order_id)
        if new_view.price is None and old_view.price is None and rec is not None:
            px = rec.px  # still unpriced: keeps the valuation it was accepted with, as check_replace assumed
        else:
            px = self._unit_px(new_view)
        self.exposure.replace(new_view, cum_qty, px)

    def carry(self, account: str, symbol: str, side: Side, qty: Decimal, notional: Decimal) -> None:
        """After a restart: the fills of finished orders the engine did not load, summed (see Exposure)."""
        self.exposure.carry(account, symbol, side, qty, notional)

    def forget(self, order_ids: set[str]) -> None:
        """Orders that passed `check_new` but whose batch was never committed: a retry of the same order is
        not a duplicate of itself. (The rate windows keep the attempt: they count attempts.)"""
        self.duplicate.forget(order_ids)

    def restore(self, view: OrderView, qty: Decimal, notional: Decimal) -> None:
        """A finished order the engine read back from the journal: its fills get their own record."""
        self.exposure.restore(view, self._unit_px(view), qty, notional)

    def reset_exposure(self) -> None:
        """Forget all exposure before it is rebuilt from the journal (a rebuild must not count twice)."""
        self.exposure = Exposure()

    def reset_day(self) -> None:
        """Start of a trading day: filled-today notional restarts at zero; positions carry over."""
        self.exposure.reset_day()

    # --- operator controls --------------------------------------------------------------------
    def set_state(self, scope: Scope, state: TradingState, who: str, reason: str) -> tuple[TradingState,
                                                                                          TradingState]:
        return self.states.set(scope, state, who, reason)

    def state_of(self, scope: Scope) -> TradingState:
        return self.states.get(scope)

    def set_limit(self, account: str, name: str, value: str) -> tuple[str, str]:
        """Change one limit, returning (before, after) as text.

        `account` "*" means the firm: the firm-wide settings (restricted, session_submit_rate,
        session_modify_rate, duplicate_window) and otherwise the defaults. A default change also moves
        every account whose value was the old default, so accounts follow the defaults they never
        overrode. Symbol lists take "A,B", "none", or "+X" / "-X" to add or remove one symbol."""
        account = account.strip()
        if not account:
            raise ValueError("set_limit needs an account, or '*' for the firm")
        config = self._config
        if account == FIRM_ACCOUNT and name in FIRM_NAMES:
            before_value: Any = getattr(config, name)
            after_value: Any
            if name == "restricted":
                after_value = parse_symbols(name, value, config.restricted)
            elif name == "duplicate_window":
                after_value = parse_seconds(name, value)
            else:
                after_value = parse_count(name, value)
            self._config = replace(config, **{name: after_value})
            return format_value(before_value), format_value(after_value)
        if name in FIRM_NAMES and name not in LIMIT_NAMES:
            raise ValueError(f"risk limit {name!r} is firm-wide: set it for account '*'")
        if name not in LIMIT_NAMES:
            known = ", ".join((*LIMIT_NAMES, *FIRM_NAMES[1:]))
            raise ValueError(f"unknown risk limit {name!r} (known: {known})")
        current = config.defaults if account == FIRM_ACCOUNT else config.limits_for(account)
        before_value = getattr(current, name)
        if name == "restricted":
            after_value = parse_symbols(name, value, current.restricted)
        else:
            after_value = parse_limit(name, value)
        if account == FIRM_ACCOUNT:
            accounts = {
                acc: replace(lim, **{name: after_value}) if getattr(lim, name) == before_value else lim
                for acc, lim in config.accounts.items()
            }
            self._config = replace(config, defaults=replace(current, **{name: after_value}), accounts=accounts)
        else:
            self._config = replace(config, accounts={**config.accounts,
                                                     account: replace(current, **{name: after_value})})
        return format_value(before_value), format_value(after_value)

    def limits_of(self, account: str) -> RiskLimits:
        return self._config.limits_for(account)

    # --- reporting ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Limits, states and exposures (for `risk show`); JSON-serialisable, decimals as strings."""
        config = self._config
        now = self._clock()
        states: list[dict[str, Any]] = []
        for scope, state in self.states.non_active():
            change = self.states.last_change.get(scope)
            states.append({"scope": str(scope), "state": state.value,
                           "who": change.who if change else "", "reason": change.reason if change else "",
                           "at": change.at if change else None})
        accounts: dict[str, Any] = {}
        for name in sorted(set(config.accounts) | set(self.exposure.accounts)):
            acct = self.exposure.account(name)
            accounts[name] = {
                "limits": limits_json(config.limits_for(name)),
                "state": self.states.get(Scope("account", name)).value,
                "exposure": {
                    "open_notional": json_value(acct.open_notional),
                    "filled_notional": json_value(acct.filled_notional),
                    "credit_used": json_value(acct.credit_used),
                    "gross_position": json_value(acct.gross_position),
                    "symbols": {
                        symbol: {
                            "position": json_value(sx.position),
                            "open_buy": json_value(sx.open_buy),
                            "open_sell": json_value(sx.open_sell),
                            "open_orders": sx.open_orders,
                            "worst_position": json_value(sx.worst),
                        }
                        for symbol, sx in sorted(acct.symbols.items())
                    },
                },
            }
        sessions = sorted(set(self.submit_rate.sessions()) | set(self.modify_rate.sessions()))
        return {
            "checks": [check.describe() for check in self.checks],
            "firm": {
                "state": self.states.get(Scope("firm")).value,
                "restricted": sorted(config.restricted),
                "session_submit_rate": config.session_submit_rate,
                "session_modify_rate": config.session_modify_rate,
                "duplicate_window": config.duplicate_window,
            },
            "defaults": limits_json(config.defaults),
            "states": states,
            "accounts": accounts,
            "sessions": {
                s: {"state": self.states.get(Scope("session", s)).value,
                    "submits_last_second": self.submit_rate.count(s, now),
                    "modifies_last_second": self.modify_rate.count(s, now)}
                for s in sessions
            },
        }

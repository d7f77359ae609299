"""The engine's RiskGate port, implemented by the pure-Python RiskEngine (oms.risk).

Builds the OrderViews risk reasons about from the engine's Order aggregate and supplies the reference
price (last trade or quote the engine saw, else the configured reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from oms.commands import NewOrder, ReplaceOrder
from oms.enums import TERMINAL, OrdType, Side
from oms.model import Order
from oms.risk import OrderView, RiskEngine, Scope, TradingState
from oms.validation import Refusal


def view_of(order: Order) -> OrderView:
    return OrderView(order.order_id, order.session, order.account, order.symbol, order.side or Side.BUY,
                     order.ord_type or OrdType.LIMIT, order.order_qty, _priced(order.ord_type, order.price))


def _priced(ord_type: OrdType | None, price: Decimal | None) -> Decimal | None:
    return price if ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT) else None


class RiskGateAdapter:
    def __init__(self, risk: RiskEngine, reference: Callable[[str], Decimal | None]) -> None:
        self.risk = risk
        self.reference = reference

    def check_new(self, cmd: NewOrder, account: str, order_id: str) -> Refusal | None:
        view = OrderView(order_id, cmd.session, account, cmd.symbol, cmd.side, cmd.ord_type, cmd.order_qty,
                         _priced(cmd.ord_type, cmd.price))
        return self.risk.check_new(view, self.reference(cmd.symbol))

    def check_replace(self, order: Order, cmd: ReplaceOrder) -> Refusal | None:
        new = OrderView(order.order_id, order.session, order.account, order.symbol, cmd.side, cmd.ord_type,
                        cmd.order_qty, _priced(cmd.ord_type, cmd.price))
        return self.risk.check_replace(view_of(order), order.cum_qty, new, self.reference(order.symbol))

    def on_accepted(self, order: Order) -> None:
        self.risk.on_accepted(view_of(order))

    def on_fill(self, order: Order, qty: Decimal, px: Decimal) -> None:
        self.risk.on_fill(view_of(order), qty, px)

    def on_done(self, order: Order) -> None:
        self.risk.on_done(view_of(order))

    def on_replaced(self, before: Order, after: Order) -> None:
        self.risk.on_replaced(view_of(before), view_of(after), after.cum_qty)

    def set_state(self, scope: str, state: str, who: str, reason: str) -> tuple[str, str]:
        try:
            new_state = TradingState(state.upper())
        except ValueError:
            raise ValueError(f"unknown trading state {state!r} (ACTIVE, REDUCING, HALTED)") from None
        before, after = self.risk.set_state(Scope.parse(scope), new_state, who, reason)
        return before.value, after.value

    def set_limit(self, account: str, name: str, value: str) -> tuple[str, str]:
        return self.risk.set_limit(account, name, value)

    def rebuild(self, orders: Iterable[Order],
                finished: Mapping[tuple[str, str, Side], tuple[Decimal, Decimal]] | None = None) -> None:
        """After a restart (or a failed commit): exposure as the journal implies it. `orders` are replayed
        (accepted, filled, done); `finished` are the fills of the finished orders not among them, summed
        per (account, symbol, side) as (qty, CumQty x AvgPx), which is what replaying them would add."""
        self.risk.reset_exposure()
        for (account, symbol, side), (qty, notional) in (finished or {}).items():
            self.risk.carry(account, symbol, side, qty, notional)
        for order in orders:
            if order.side is None or order.ord_type is None or order.rej_reason is not None:
                continue
            self.risk.on_accepted(view_of(order))
            if order.cum_qty:
                self.risk.on_fill(view_of(order), order.cum_qty, order.avg_px)
            if order.status in TERMINAL:
                self.risk.on_done(view_of(order))

    def forget(self, order_ids: set[str]) -> None:
        self.risk.forget(order_ids)

    def restore(self, order: Order) -> None:
        """A finished order read back from the journal after `rebuild` carried its fills."""
        if order.side is None or order.ord_type is None or order.rej_reason is not None or not order.cum_qty:
            return
        self.risk.restore(view_of(order), order.cum_qty, order.cum_qty * order.avg_px)

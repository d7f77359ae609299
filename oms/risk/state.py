"""Trading states (the kill switch): ACTIVE, REDUCING or HALTED, set per firm, account and session.

The most restrictive of the firm's, the order's account's and the order's session's state applies. Only
scopes that are not ACTIVE are stored, so the common case (nothing set) costs one comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

ScopeKind = Literal["firm", "account", "session"]


class TradingState(str, Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def rank(self) -> int:
        """Higher is more restrictive."""
        return _RANK[self]


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("firm", "account", "session"):
            raise ValueError(f"unknown scope kind {self.kind!r} (firm, account:NAME or session:NAME)")
        if self.kind == "firm" and self.name:
            raise ValueError("the firm scope has no name")
        if self.kind != "firm" and not self.name:
            raise ValueError(f"scope {self.kind} needs a name ({self.kind}:NAME)")

    @classmethod
    def parse(cls, text: str) -> Scope:
        # Split once: FIX session ids contain colons ("FIX.4.4:CLIENT->BROKER").
        kind, _, name = text.strip().partition(":")
        kind = kind.strip().lower()
        if kind == "firm":
            return cls("firm", name)
        if kind == "account":
            return cls("account", name)
        if kind == "session":
            return cls("session", name)
        raise ValueError(f"unknown scope {text!r} (firm, account:NAME or session:NAME)")

    def __str__(self) -> str:
        return self.kind if self.kind == "firm" else f"{self.kind}:{self.name}"


FIRM = Scope("firm")


@dataclass(frozen=True, slots=True)
class StateChange:
    scope: Scope
    before: TradingState
    after: TradingState
    who: str
    reason: str
    at: float


class TradingStates:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._firm = TradingState.ACTIVE
        self._accounts: dict[str, TradingState] = {}
        self._sessions: dict[str, TradingState] = {}
        # Last change per scope, for `risk show` (who halted what, and why).
        self.last_change: dict[Scope, StateChange] = {}
        self.history: list[StateChange] = []

    def get(self, scope: Scope) -> TradingState:
        if scope.kind == "firm":
            return self._firm
        table = self._accounts if scope.kind == "account" else self._sessions
        return table.get(scope.name, TradingState.ACTIVE)

    def set(self, scope: Scope, state: TradingState, who: str, reason: str) -> tuple[TradingState, TradingState]:
        state = TradingState(state.upper())  # operators type "halted"
        before = self.get(scope)
        if scope.kind == "firm":
            self._firm = state
        else:
            table = self._accounts if scope.kind == "account" else self._sessions
            if state is TradingState.ACTIVE:
                table.pop(scope.name, None)
            else:
                table[scope.name] = state
        change = StateChange(scope, before, state, who, reason, self._clock())
        self.last_change[scope] = change
        self.history.append(change)
        return before, state

    def effective(self, account: str, session: str) -> tuple[TradingState, Scope]:
        """The most restrictive state for an order, and the scope it comes from (firm wins ties)."""
        if not self._accounts and not self._sessions:
            return self._firm, FIRM
        state, where = self._firm, FIRM
        acc = self._accounts.get(account)
        if acc is not None and acc.rank > state.rank:
            state, where = acc, Scope("account", account)
        ses = self._sessions.get(session)
        if ses is not None and ses.rank > state.rank:
            state, where = ses, Scope("session", session)
        return state, where

    def non_active(self) -> list[tuple[Scope, TradingState]]:
        out: list[tuple[Scope, TradingState]] = []
        if self._firm is not TradingState.ACTIVE:
            out.append((FIRM, self._firm))
        out.extend((Scope("account", name), s) for name, s in sorted(self._accounts.items()))
        out.extend((Scope("session", name), s) for name, s in sorted(self._sessions.items()))
        return out

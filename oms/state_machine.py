"""The FIX order state machine as data (FIX 4.4 Vol 4 Appendix D).

An order has a base status and, while a cancel or replace is outstanding, a pending overlay.
The status a client sees is the higher of the two by Appendix D precedence (`enums.reported_status`).
Fills move the base to PARTIALLY_FILLED; the aggregate promotes it to FILLED when nothing is left.
"""

from __future__ import annotations

from enum import Enum

from oms.enums import OrdStatus as S


class Transition(str, Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    FILL = "fill"
    CANCEL = "cancel"
    EXPIRE = "expire"
    DONE_FOR_DAY = "done_for_day"
    REPLACE = "replace"
    BUST = "bust"
    CORRECT = "correct"
    # A GT order (GTC/GTD) its venue ended for the day rests under a DoneForDay overlay (Order.done_for_day)
    # and is renewed at the next session start: the base status is unchanged by either.
    REST = "rest"
    RENEW = "renew"


class IllegalTransition(Exception):
    pass


# (base status, transition) -> new base status. Anything absent is illegal.
TRANSITIONS: dict[tuple[S, Transition], S] = {
    (S.PENDING_NEW, Transition.ACCEPT): S.NEW,
    (S.PENDING_NEW, Transition.REJECT): S.REJECTED,
    (S.PENDING_NEW, Transition.CANCEL): S.CANCELED,
    (S.NEW, Transition.FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, Transition.FILL): S.PARTIALLY_FILLED,
    (S.NEW, Transition.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, Transition.CANCEL): S.CANCELED,
    (S.NEW, Transition.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, Transition.EXPIRE): S.EXPIRED,
    (S.NEW, Transition.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PARTIALLY_FILLED, Transition.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.NEW, Transition.REPLACE): S.NEW,
    (S.PARTIALLY_FILLED, Transition.REPLACE): S.PARTIALLY_FILLED,
    # A bust or correction reopens a filled order; a canceled/expired one stays done with less CumQty.
    (S.NEW, Transition.CORRECT): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, Transition.BUST): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, Transition.CORRECT): S.PARTIALLY_FILLED,
    (S.FILLED, Transition.BUST): S.PARTIALLY_FILLED,
    (S.FILLED, Transition.CORRECT): S.PARTIALLY_FILLED,
    (S.CANCELED, Transition.BUST): S.CANCELED,
    (S.CANCELED, Transition.CORRECT): S.CANCELED,
    (S.EXPIRED, Transition.BUST): S.EXPIRED,
    (S.EXPIRED, Transition.CORRECT): S.EXPIRED,
    (S.DONE_FOR_DAY, Transition.BUST): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, Transition.CORRECT): S.DONE_FOR_DAY,
    (S.NEW, Transition.REST): S.NEW,
    (S.PARTIALLY_FILLED, Transition.REST): S.PARTIALLY_FILLED,
    (S.NEW, Transition.RENEW): S.NEW,
    (S.PARTIALLY_FILLED, Transition.RENEW): S.PARTIALLY_FILLED,
}

# Statuses whose value follows CumQty: after a fill, bust, correct or replace the aggregate settles
# them to NEW / PARTIALLY_FILLED / FILLED by quantity.
BY_QUANTITY: frozenset[S] = frozenset({S.NEW, S.PARTIALLY_FILLED, S.FILLED})

# Which base statuses accept a cancel or replace request (the pending overlay).
CANCELABLE: frozenset[S] = frozenset({S.PENDING_NEW, S.NEW, S.PARTIALLY_FILLED})


def next_status(current: S, transition: Transition) -> S:
    try:
        return TRANSITIONS[(current, transition)]
    except KeyError:
        raise IllegalTransition(f"{transition.value} is not allowed in status {current.name}") from None

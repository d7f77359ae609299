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


class ChildTransition(str, Enum):
    """What happens to a venue child. Children are never reported to clients with their own status; the
    machine keeps the engine from acting on a child in a state the venue could not have left it in."""

    ACK = "ack"
    FILL = "fill"  # a fill that leaves something open
    FILL_ALL = "fill_all"  # a fill that completes the child's quantity
    CANCELED = "canceled"
    REJECTED = "rejected"
    DONE_FOR_DAY = "done_for_day"
    IN_DOUBT = "in_doubt"
    CANCEL_REQUEST = "cancel_request"
    CANCEL_REFUSED = "cancel_refused"
    # A venue amend (OrderCancelReplaceRequest to the venue): PendingReplace until the venue answers.
    REPLACE_REQUEST = "replace_request"
    REPLACED = "replaced"
    REPLACE_REFUSED = "replace_refused"


# A child's status while its venue is away (oms.events.ChildInDoubt); see oms.model.IN_DOUBT.
CHILD_IN_DOUBT = S.SUSPENDED
_CHILD_WORKING = (S.PENDING_NEW, S.NEW, S.PARTIALLY_FILLED, S.PENDING_REPLACE)
_CHILD_ENDED = (S.FILLED, S.CANCELED, S.REJECTED, S.DONE_FOR_DAY, CHILD_IN_DOUBT)
# Statuses whose value follows the child's CumQty once a replace is answered (see Child.by_quantity).
CHILD_BY_QUANTITY = S.NEW

# (child status, transition) -> new status. Anything absent is illegal. A FILL of an ended or in-doubt
# child is a late fill: applied, but it does not revive the child. REPLACED / REPLACE_REFUSED land on NEW,
# which the aggregate settles by quantity (NEW, PARTIALLY_FILLED or FILLED).
CHILD_TRANSITIONS: dict[tuple[S, ChildTransition], S] = {
    (S.PENDING_NEW, ChildTransition.ACK): S.NEW,
    **{(s, ChildTransition.FILL): (S.PARTIALLY_FILLED if s in (S.PENDING_NEW, S.NEW) else s)
       for s in (*_CHILD_WORKING, *_CHILD_ENDED)},
    **{(s, ChildTransition.FILL_ALL): S.FILLED for s in (*_CHILD_WORKING, *_CHILD_ENDED)},
    **{(s, t): target for s in (*_CHILD_WORKING, CHILD_IN_DOUBT)
       for t, target in ((ChildTransition.CANCELED, S.CANCELED), (ChildTransition.REJECTED, S.REJECTED),
                         (ChildTransition.DONE_FOR_DAY, S.DONE_FOR_DAY))},
    **{(s, ChildTransition.IN_DOUBT): CHILD_IN_DOUBT for s in _CHILD_WORKING},
    **{(s, ChildTransition.CANCEL_REQUEST): s for s in (*_CHILD_WORKING, CHILD_IN_DOUBT)},
    **{(s, ChildTransition.CANCEL_REFUSED): s for s in _CHILD_WORKING},
    (S.NEW, ChildTransition.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, ChildTransition.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, ChildTransition.REPLACED): CHILD_BY_QUANTITY,
    (S.PENDING_REPLACE, ChildTransition.REPLACE_REFUSED): CHILD_BY_QUANTITY,
}


def next_child_status(current: S, transition: ChildTransition) -> S:
    try:
        return CHILD_TRANSITIONS[(current, transition)]
    except KeyError:
        raise IllegalTransition(f"child: {transition.value} is not allowed in status {current.name}") from None


def next_status(current: S, transition: Transition) -> S:
    try:
        return TRANSITIONS[(current, transition)]
    except KeyError:
        raise IllegalTransition(f"{transition.value} is not allowed in status {current.name}") from None

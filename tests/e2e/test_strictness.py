"""Session strictness (issue 16, item 6) over real QuickFIX sessions with the shipped sessions.cfg.

A raw-socket client (tests.fault.test_fuzz.RawSession) logs on as CLIENT1 (FIX 4.4) or CLIENT2 (FIX 4.2)
to the engine on loopback and sends what a QuickFIX client would refuse to build. Expected, as QuickFIX's
session acceptance scripts 14a (BadField) and 14c (TagNotDefinedForMsgType) expect:

- a tag no dictionary defines gets a session Reject (35=3) with RefTagID(371) = the tag and
  SessionRejectReason(373) 0 "invalid tag number" (QuickFIX's InvalidTagNumber: the tag is not in the
  dictionary's <fields>), both below 5000 (what AllowUnknownMsgFields=Y would let through) and at or
  above it (what ValidateUserDefinedFields=N would); a defined tag on a message that does not carry it
  gets 373=2 "tag not defined for this message type";
- the rejected message is not processed (no order, no ExecutionReport) and the session stays logged on;
- what we document is accepted: RoutingStrategy(20847) with each of our strategies' names, and every
  standard TargetStrategy(847) value, on FIX 4.4 and FIX 4.2 alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count

import pytest

from fix_engine import codec
from sor.strategies import STRATEGIES
from tests.conftest import Stack, run_stack
from tests.fault.test_fuzz import Msg, RawSession, logged_on_session, utc

INVALID_TAG_NUMBER, TAG_NOT_DEFINED_FOR_MESSAGE = "0", "2"
UNDEFINED_STANDARD, UNDEFINED_USER = 4999, 9999  # in no FIX 4.2/4.4 dictionary, ours included
VERSIONS = ("FIX.4.4", "FIX.4.2")
ids = count(1)


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("strict")
    yield from run_stack(tmp, f"sqlite:///{tmp / 'journal.db'}")


def first(s: RawSession, match: Callable[[Msg], bool], timeout: float) -> Msg:
    """The first message that matches within `timeout` (others are skipped), or {}."""
    return next((m for m in s.read_until(match, timeout) if match(m)), {})


def log_on(port: int, begin: str) -> RawSession:
    """CLIENT1 (FIX 4.4, Username/Password) or CLIENT2 (FIX 4.2, by CompID and address)."""
    if begin == "FIX.4.4":
        return logged_on_session(port)
    session = RawSession(port, "CLIENT2", "FIX.4.2")
    session.send("A", [(98, "0"), (108, "30"), (141, "Y")])
    answer = first(session, lambda m: m.get(35) in ("A", "5"), 20)
    assert answer.get(35) == "A", f"CLIENT2 not logged on: {answer}"
    return session


@pytest.fixture(params=VERSIONS)
def session(request: pytest.FixtureRequest, strict_stack: Stack) -> Iterator[RawSession]:
    s = log_on(strict_stack.acceptor_port, request.param)
    try:
        yield s
    finally:
        s.close()


def answer_to(s: RawSession, seq: int, cl_ord_id: str = "", timeout: float = 10.0) -> Msg:
    """The session Reject or BusinessMessageReject of our message `seq`, or the ExecutionReport for
    `cl_ord_id`, whichever comes first; a Logout fails the test (the session must stay up)."""
    def done(m: Msg) -> bool:
        assert m.get(35) != "5", f"logged out: {m}"
        return (m.get(35) in ("3", "j") and m.get(45) == str(seq)) or (
            m.get(35) == "8" and bool(cl_ord_id) and m.get(11) == cl_ord_id)

    answer = first(s, done, timeout)
    if not answer:
        raise TimeoutError(f"no answer to seq {seq} ({cl_ord_id or 'no order'}) in {timeout}s")
    return answer


def assert_logged_on(s: RawSession) -> None:
    """A TestRequest is answered with its TestReqID: the session is up and reading."""
    want = f"up-{next(ids)}"
    s.send("1", [(112, want)])
    beat = first(s, lambda m: m.get(35) == "5" or (m.get(35) == "0" and m.get(112) == want), 10)
    assert beat.get(35) == "0" and beat.get(112) == want, f"no Heartbeat to TestRequest {want}: {beat}"


def assert_reject(msg: Msg, seq: int, tag: int, reason: str) -> None:
    assert msg.get(35) == "3", f"expected a session Reject of seq {seq}, got {msg}"
    assert (msg.get(45), msg.get(371), msg.get(373)) == (str(seq), str(tag), reason), msg


def order(s: RawSession, extra: list[tuple[int, str | bytes]]) -> tuple[str, int]:
    """A resting IBM buy (below the market: it only has to be acknowledged) with `extra` fields; each
    one a different quantity, or the engine would refuse it as a duplicate of the one before."""
    n = next(ids)
    cl = f"S{n}-{s.begin[-1]}"
    body: list[tuple[int, str | bytes]] = [(11, cl), (21, "1"), (55, "IBM"), (54, "1"), (60, utc()),
                                           (38, str(100 + n)), (40, "2"), (44, "140.00"), (59, "0")]
    return cl, s.send("D", body + extra)


def acknowledged(s: RawSession, extra: list[tuple[int, str | bytes]]) -> Msg:
    cl, seq = order(s, extra)
    return answer_to(s, seq, cl)


# --- (a) a Heartbeat with a tag the dictionary lacks ---------------------------------------------
@pytest.mark.parametrize(("tag", "reason"), [(UNDEFINED_USER, INVALID_TAG_NUMBER),
                                             (UNDEFINED_STANDARD, INVALID_TAG_NUMBER),
                                             (codec.SYMBOL, TAG_NOT_DEFINED_FOR_MESSAGE)])
def test_heartbeat_with_an_undefined_tag_gets_a_reject_and_the_session_stays_up(
        session: RawSession, tag: int, reason: str) -> None:
    seq = session.send("0", [(tag, "x")])
    assert_reject(answer_to(session, seq), seq, tag, reason)
    assert_logged_on(session)


# --- (b, c) what we document is accepted ---------------------------------------------------------
def test_routing_strategy_20847_is_accepted_for_each_strategy(session: RawSession) -> None:
    answers = {name: acknowledged(session, [(codec.ROUTING_STRATEGY, name)]) for name in sorted(STRATEGIES)}
    refused = {name: m for name, m in answers.items() if (m.get(35), m.get(150)) != ("8", "0")}
    assert not refused, f"not acknowledged New: {refused}"
    assert_logged_on(session)


def test_each_target_strategy_value_is_accepted(session: RawSession) -> None:
    # 2 Participate and 3 Minimize market impact pick our strategies, 1 VWAP routes by default
    # (docs/rules-of-engagement.md); all three are orders we take, on FIX 4.2 as on FIX 4.4.
    values = ("1", *sorted(codec.TARGET_STRATEGIES))
    answers = {v: acknowledged(session, [(codec.TARGET_STRATEGY, v)]) for v in values}
    refused = {v: m for v, m in answers.items() if (m.get(35), m.get(150)) != ("8", "0")}
    assert not refused, f"not acknowledged New: {refused}"


def test_target_strategy_outside_the_dictionary_gets_a_reject(session: RawSession) -> None:
    cl, seq = order(session, [(codec.TARGET_STRATEGY, "7")])
    assert_reject(answer_to(session, seq, cl), seq, codec.TARGET_STRATEGY, "5")  # 5: value is incorrect


# --- (d) an order with a tag the dictionary lacks is refused, not silently taken --------------------
@pytest.mark.parametrize(("tag", "reason"), [(UNDEFINED_USER, INVALID_TAG_NUMBER),
                                             (UNDEFINED_STANDARD, INVALID_TAG_NUMBER),
                                             (codec.LAST_PX, TAG_NOT_DEFINED_FOR_MESSAGE)])
def test_order_with_an_undefined_tag_gets_a_reject_not_an_order(
        session: RawSession, strict_stack: Stack, tag: int, reason: str) -> None:
    cl, seq = order(session, [(tag, "1")])
    assert_reject(answer_to(session, seq, cl), seq, tag, reason)
    # The engine answers in arrival order: had the rejected order reached it, its report would come
    # before this one's.
    later = acknowledged(session, [])
    assert later.get(150) == "0", later.get(58)
    assert all(m.get(11) != cl for m in session.read_until(lambda m: False, 0.3))
    assert cl not in {row["cl_ord_id"] for row in strict_stack.orders()}


def test_routing_strategy_on_a_cancel_is_not_defined(session: RawSession) -> None:
    # 20847 belongs to NewOrderSingle only: the codec reads it nowhere else.
    seq = session.send("F", [(41, "nothing"), (11, f"X{next(ids)}"), (55, "IBM"), (54, "1"), (60, utc()),
                             (38, "100"), (codec.ROUTING_STRATEGY, "sweep")])
    assert_reject(answer_to(session, seq), seq, codec.ROUTING_STRATEGY, TAG_NOT_DEFINED_FOR_MESSAGE)
    assert_logged_on(session)

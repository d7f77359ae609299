"""Positions, average cost, realized/unrealized P&L and settlement dates (oms.positions, pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms.positions import Fill, SettlementCalendar, compute, fmt_money

D = Decimal
T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


def fill(n: int, side: str, qty: int | str, px: str, *, account: str = "ACC-1", symbol: str = "IBM",
         status: str = "ok", ts: datetime | None = None) -> Fill:
    return Fill(f"E{n}", account, symbol, side, D(qty), D(px), ts or T0 + timedelta(minutes=n), status)


def test_partial_fills_of_a_buy_then_a_partial_sell() -> None:
    book = compute([
        fill(1, "1", 100, "10.00"),   # first partial fill of a 400 buy
        fill(2, "1", 300, "12.00"),   # the rest
        fill(3, "2", 100, "13.00"),   # a sell order partially filled
    ])
    (pos,) = book.positions
    assert (pos.qty, pos.avg_cost, pos.realized) == (D(300), D("11.5"), D("150"))
    assert pos.mark == D("13.00")  # no mark given: the symbol's last fill
    assert pos.unrealized == D("450")  # (13 - 11.5) x 300
    assert (pos.bought, pos.sold, pos.fills) == (D(400), D(100), 3)
    d = pos.as_dict()
    assert (d["qty"], d["avg_cost"], d["realized"], d["unrealized"], d["total"]) == ("300", "11.5", "150.00",
                                                                                    "450.00", "600.00")


def test_short_side_realizes_when_bought_back_and_marks_against_a_given_price() -> None:
    book = compute([
        fill(1, "2", 200, "50.00"),
        fill(2, "5", 200, "48.00"),   # sell short counts as a sell
        fill(3, "1", 100, "45.00"),   # buy back a part: (45 - 49) x 100 x -1 = +400
    ], marks={"IBM": D("46")})
    (pos,) = book.positions
    assert (pos.qty, pos.avg_cost, pos.realized) == (D(-300), D(49), D(400))
    assert pos.unrealized == D(900)  # (46 - 49) x -300
    assert pos.total == D(1300)


def test_going_through_flat_opens_the_rest_at_the_fill_price() -> None:
    book = compute([fill(1, "1", 100, "10"), fill(2, "2", 150, "12")])
    (pos,) = book.positions
    assert (pos.qty, pos.avg_cost, pos.realized) == (D(-50), D(12), D(200))
    book = compute([fill(1, "1", 100, "10"), fill(2, "2", 100, "12")])
    assert (book.positions[0].qty, book.positions[0].avg_cost, book.positions[0].unrealized) == (0, 0, 0)


def test_a_busted_fill_does_not_count_and_a_corrected_one_counts_as_corrected() -> None:
    fills = [
        fill(1, "1", 400, "150.00"),
        fill(2, "1", 600, "150.00", status="busted"),     # the venue canceled this trade
        fill(3, "1", 300, "148.50", status="corrected"),  # was 400 @ 150.00 before the correction
        fill(4, "2", 200, "151.00"),
    ]
    book = compute(fills)
    (pos,) = book.positions
    # bought 400 @ 150 + 300 @ 148.5 = 104,550 for 700: avg 149.357142...
    assert pos.qty == D(500)
    assert pos.bought == D(700) and pos.fills == 3
    assert fmt_money(pos.realized) == "328.57"  # (151 - 149.3571428...) x 200
    assert [t.exec_id for t in book.trades] == ["E1", "E3", "E4"]
    # without the bust the position would be 1,100 long
    assert compute([*fills[:1], fill(2, "1", 600, "150.00"), *fills[2:]]).positions[0].qty == D(1100)


def test_positions_are_per_account_and_symbol() -> None:
    book = compute([
        fill(1, "1", 100, "10", account="A"),
        fill(2, "2", 100, "11", account="B"),
        fill(3, "1", 50, "20", account="A", symbol="MSFT"),
    ])
    assert [(p.account, p.symbol, p.qty) for p in book.positions] == [
        ("A", "IBM", D(100)), ("A", "MSFT", D(50)), ("B", "IBM", D(-100))]
    assert book.marks == {"IBM": D(11), "MSFT": D(20)}
    assert book.position("A", "IBM") is not None and book.position("A", "IBM").unrealized == D(100)  # type: ignore[union-attr]


def test_fills_are_applied_in_time_order_whatever_the_input_order() -> None:
    a = [fill(1, "1", 100, "10"), fill(2, "2", 50, "12"), fill(3, "1", 10, "9")]
    assert compute(a).positions[0].realized == compute(list(reversed(a))).positions[0].realized == D(100)


# --- settlement ------------------------------------------------------------------------------------------
def test_t_plus_one_skips_weekends_and_holidays() -> None:
    cal = SettlementCalendar()
    assert cal.settlement_date(date(2024, 3, 4)) == date(2024, 3, 5)   # Mon -> Tue
    assert cal.settlement_date(date(2024, 3, 8)) == date(2024, 3, 11)  # Fri -> Mon
    assert cal.settlement_date(date(2024, 3, 9)) == date(2024, 3, 11)  # Sat -> Mon
    holidays = SettlementCalendar(1, frozenset({date(2024, 3, 11)}))
    assert holidays.settlement_date(date(2024, 3, 8)) == date(2024, 3, 12)  # Fri -> (Mon holiday) -> Tue
    assert SettlementCalendar(2).settlement_date(date(2024, 3, 7)) == date(2024, 3, 11)  # Thu T+2 -> Mon
    assert SettlementCalendar(0).settlement_date(date(2024, 3, 9)) == date(2024, 3, 11)


def test_trade_date_is_taken_in_the_configured_time_zone() -> None:
    # 01:30 UTC on Friday 8 March is 20:30 on Thursday 7 March in New York
    late = fill(1, "1", 100, "10", ts=datetime(2024, 3, 8, 1, 30, tzinfo=UTC))
    ny = compute([late], tz=ZoneInfo("America/New_York")).trades[0]
    assert (ny.trade_date, ny.settle_date) == (date(2024, 3, 7), date(2024, 3, 8))
    utc = compute([late]).trades[0]
    assert (utc.trade_date, utc.settle_date) == (date(2024, 3, 8), date(2024, 3, 11))


def test_unsettled_quantity_as_of_a_date() -> None:
    fills = [fill(1, "1", 100, "10"), fill(2, "2", 30, "11", ts=T0 + timedelta(days=1))]  # Mon, Tue
    assert compute(fills, as_of=date(2024, 3, 4)).positions[0].unsettled == D(70)
    assert compute(fills, as_of=date(2024, 3, 5)).positions[0].unsettled == D(-30)  # Monday's settled
    assert compute(fills, as_of=date(2024, 3, 6)).positions[0].unsettled == D(0)


def test_settlement_config() -> None:
    cal = SettlementCalendar.from_config({"cycle_days": 2, "holidays": ["2024-12-25", date(2024, 12, 26)]})
    assert cal == SettlementCalendar(2, frozenset({date(2024, 12, 25), date(2024, 12, 26)}))
    for bad, words in [({"cycle_days": "1"}, "integer"), ({"holidays": ["25/12/2024"]}, "not a date"),
                       ({"holidays": "2024-12-25"}, "list"), ({"cycle": 1}, "unknown keys"),
                       ({"cycle_days": -1}, ">= 0")]:
        with pytest.raises(ValueError, match=words):
            SettlementCalendar.from_config(bad)


def test_unknown_side_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown side"):
        compute([fill(1, "X", 1, "1")])


# --- property: average cost conserves money ---------------------------------------------------------
@given(st.lists(st.tuples(st.sampled_from(["1", "2"]), st.integers(1, 1000), st.integers(1, 100_000)),
                min_size=1, max_size=40),
       st.integers(1, 100_000))
def test_realized_plus_unrealized_equals_cash_flow_plus_marked_position(
        trades: list[tuple[str, int, int]], mark_cents: int) -> None:
    fills = [fill(i, side, qty, str(D(px) / 100)) for i, (side, qty, px) in enumerate(trades)]
    mark = D(mark_cents) / 100
    (pos,) = compute(fills, marks={"IBM": mark}).positions
    cash = pos.sell_notional - pos.buy_notional + pos.qty * mark
    assert abs(pos.total - cash) < D("1e-12")
    assert pos.qty == pos.bought - pos.sold

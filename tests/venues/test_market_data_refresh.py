"""VenueApplication drops a full refresh that repeats the venue's last one (venues/fix_venue.py): the
engine gets every book that changed, every trade, and every book again after an incremental or a
reconnect. Real QuickFIX application object, messages as QuickFIX hands them over (header included)."""

from __future__ import annotations

from decimal import Decimal

from fix_engine import codec
from oms import commands as c
from venues.fix_venue import VenueApplication

D = Decimal
_seq = iter(range(1, 10_000))


def _as_received(raw: str, venue: str = "VENUE-A") -> str:
    """A message we encoded, with the header fields a venue's QuickFIX adds (a new number each time)."""
    head, rest = raw.split(f"{codec.SOH}35=W{codec.SOH}" if "35=W" in raw else f"{codec.SOH}35=X{codec.SOH}", 1)
    msg_type = "W" if "35=W" in raw else "X"
    n = next(_seq)
    header = f"35={msg_type}\x0134={n}\x0149={venue}\x0152=20261206-23:00:00.{n:03d}\x0156=FIXOMS\x01"
    return f"{head}\x01{header}{rest}"


def _refresh(bids: list[tuple[str, str]], asks: list[tuple[str, str]], symbol: str = "XYZ",
             trade: tuple[str, str] | None = None) -> str:
    raw = codec.encode_md_snapshot("md-1", symbol, [(D(p), D(q)) for p, q in bids],
                                   [(D(p), D(q)) for p, q in asks], codec.FIX44)
    if trade is not None:
        n = len(bids) + len(asks)
        raw = raw.replace(f"268={n}\x01", f"268={n + 1}\x01").replace(
            "\x0110=", f"\x01269=2\x01270={trade[0]}\x01271={trade[1]}\x0110=")
    return _as_received(raw)


def _app() -> tuple[VenueApplication, list[c.Command]]:
    got: list[c.Command] = []
    return VenueApplication(submit=got.append), got


def _books(got: list[c.Command]) -> list[c.MarketData]:
    return [cmd for cmd in got if isinstance(cmd, c.MarketData)]


def test_a_refresh_that_repeats_the_last_one_reaches_nobody() -> None:
    app, got = _app()
    book = ([("99.5", "100")], [("100.5", "200")])
    app.on_from_app(_refresh(*book), "VENUE-A")
    app.on_from_app(_refresh(*book), "VENUE-A")  # new MsgSeqNum and SendingTime, same entries
    app.on_from_app(_refresh(*book), "VENUE-A")
    assert [(m.venue, m.symbol, m.bids, m.asks) for m in _books(got)] == [
        ("VENUE-A", "XYZ", ((D("99.5"), D(100)),), ((D("100.5"), D(200)),))]


def test_a_changed_book_another_symbol_or_another_venue_gets_through() -> None:
    app, got = _app()
    app.on_from_app(_refresh([("99.5", "100")], [("100.5", "200")]), "VENUE-A")
    app.on_from_app(_refresh([("99.5", "100")], [("100.5", "150")]), "VENUE-A")
    app.on_from_app(_refresh([("99.5", "100")], [("100.5", "150")], symbol="ABC"), "VENUE-A")
    app.on_from_app(_refresh([("99.5", "100")], [("100.5", "150")]), "VENUE-B")
    app.on_from_app(_refresh([("99.5", "100")], [("100.5", "200")]), "VENUE-A")  # back to the first
    assert [(m.venue, m.symbol, m.asks[0][1]) for m in _books(got)] == [
        ("VENUE-A", "XYZ", D(200)), ("VENUE-A", "XYZ", D(150)), ("VENUE-A", "ABC", D(150)),
        ("VENUE-B", "XYZ", D(150)), ("VENUE-A", "XYZ", D(200))]


def test_a_refresh_with_a_trade_always_gets_through() -> None:
    app, got = _app()
    for _ in range(2):
        app.on_from_app(_refresh([("99.5", "100")], [("100.5", "200")], trade=("100.5", "10")), "VENUE-A")
    assert [m.trades for m in _books(got)] == [((D("100.5"), D(10)),)] * 2


def test_after_an_incremental_or_a_reconnect_the_same_refresh_is_news_again() -> None:
    app, got = _app()
    book = ([("99.5", "100")], [("100.5", "200")])
    app.on_from_app(_refresh(*book), "VENUE-A")
    incremental = codec.encode_md_incremental("md-1", [("2", codec.MD_OFFER, "XYZ", D("100.5"), D(0))], codec.FIX44)
    app.on_from_app(_as_received(incremental), "VENUE-A")
    assert _books(got)[-1].asks == ()  # the incremental took the offer away
    app.on_from_app(_refresh(*book), "VENUE-A")  # puts it back: must not be taken for a repeat
    assert _books(got)[-1].asks == ((D("100.5"), D(200)),)
    app.on_logout("VENUE-A")
    app.on_from_app(_refresh(*book), "VENUE-A")  # the engine dropped the venue's book at the logout
    assert isinstance(got[-2], c.VenueSessionDown)
    assert _books(got)[-1].asks == ((D("100.5"), D(200)),)
    assert len(_books(got)) == 4

"""Venues reached over FIX: one QuickFIX initiator application for all venue sessions, one
`FixVenue` connector (the `oms.ports.VenueConnector` port) per venue. The venue's name is its
TargetCompID in sessions.cfg."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from fix_engine import codec
from fix_engine.application import GuardedApplication
from oms import commands as c
from oms.reports import VenueCancel, VenueNewOrder, VenueReplace, VenueStatusRequest

log = logging.getLogger(__name__)


class VenueApplication(GuardedApplication):
    """Also subscribes to each venue's market data on logon and keeps its L2 book per symbol, handing
    the engine a snapshot of the changed side(s) after each W/X message.

    A full refresh (W) whose entries are byte for byte those of the venue's last one for the symbol, with
    no trade among them, changes nothing and is dropped unparsed: a venue that republishes its book after
    every order, or on a timer, costs one string comparison a message instead of a decode, a book
    rebuild and a pass through the engine. (bench/e2e.py's simulators are not such venues: their
    snapshots change with every resting order.)"""

    def __init__(self, submit: Callable[[c.Command], None], symbols: list[str] | None = None,
                 depth: int = 5) -> None:
        super().__init__()
        self.submit = submit
        self.symbols = list(symbols or [])
        self.depth = depth
        self.books: dict[tuple[str, str], tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self._md_seq = 0
        # (venue, symbol) -> the entries of its last full refresh, as received (see the class doc). Only
        # while they are what `books` holds: an incremental or a logout forgets the venue's.
        self._last_refresh: dict[tuple[str, str], str] = {}

    def on_logon(self, key: str) -> None:
        self.submit(c.VenueSessionUp(key))
        if self.symbols:
            self._md_seq += 1
            raw = codec.encode_md_request(f"{key}-md-{self._md_seq}", self.symbols, self.depth,
                                          self.begin_strings.get(key, codec.FIX44))
            self.send_raw(key, raw, groups=True)

    def on_logout(self, key: str) -> None:
        for book_key in [k for k in self.books if k[0] == key]:
            del self.books[book_key]
        self._forget_refreshes(key)
        self.submit(c.VenueSessionDown(key))

    def _forget_refreshes(self, venue: str) -> None:
        for refresh_key in [k for k in self._last_refresh if k[0] == venue]:
            del self._last_refresh[refresh_key]

    def on_from_app(self, raw: str, key: str) -> None:
        msg_type = codec.field(raw, codec.MSG_TYPE)  # the header's, before any body field
        if msg_type == codec.MD_SNAPSHOT:
            if not self._unchanged_refresh(key, raw):
                self._market_data(key, raw)
            return
        if msg_type == codec.MD_INCREMENTAL:
            self._forget_refreshes(key)  # the books move away from the last refreshes
            self._market_data(key, raw)
            return
        if msg_type == codec.SECURITY_STATUS:
            status = codec.decode_security_status(raw, key)
            if status is not None:
                self.submit(status)
            return
        command = codec.decode_venue(raw, key)
        if command is not None:
            self.submit(command)

    def _unchanged_refresh(self, venue: str, raw: str) -> bool:
        """Whether this full refresh repeats the venue's last one for its symbol (remembering it if not).
        The entries run from NoMDEntries(268) to the trailer; the header before them (sequence number,
        sending time) differs every time, the symbol is in it."""
        start = raw.find(f"{codec.SOH}{codec.NO_MD_ENTRIES}=")
        end = raw.rfind(f"{codec.SOH}10=")
        symbol = codec.field(raw[:start], codec.SYMBOL) if start >= 0 else ""
        if end < start or not symbol:
            return False  # not the shape we know: decode it
        entries = raw[start:end]
        if f"{codec.SOH}{codec.MD_ENTRY_TYPE}={codec.MD_TRADE}{codec.SOH}" in entries:
            return False  # a trade is news even if the book is not
        key = (venue, symbol)
        if self._last_refresh.get(key) == entries:
            return True
        self._last_refresh[key] = entries
        return False

    def _market_data(self, venue: str, raw: str) -> None:
        msg_type, snap_symbol, entries = codec.decode_md(raw)
        touched: dict[str, list[tuple[Decimal, Decimal]]] = {}
        if msg_type == codec.MD_SNAPSHOT:
            self.books[(venue, snap_symbol)] = ({}, {})
            touched[snap_symbol] = []
        for e in entries:
            symbol = e.get(codec.SYMBOL, snap_symbol)
            px, qty = Decimal(e.get(codec.MD_ENTRY_PX, "0")), Decimal(e.get(codec.MD_ENTRY_SIZE, "0"))
            trades = touched.setdefault(symbol, [])
            kind = e.get(codec.MD_ENTRY_TYPE)
            if kind == codec.MD_TRADE:
                trades.append((px, qty))
                continue
            bids, asks = self.books.setdefault((venue, symbol), ({}, {}))
            side = bids if kind == codec.MD_BID else asks
            if e.get(codec.MD_UPDATE_ACTION) == "2" or qty <= 0:
                side.pop(px, None)
            else:
                side[px] = qty
        for symbol, trades in touched.items():
            bids, asks = self.books.get((venue, symbol), ({}, {}))
            self.submit(c.MarketData(
                venue, symbol,
                tuple(sorted(bids.items(), reverse=True)[: self.depth]),
                tuple(sorted(asks.items())[: self.depth]),
                tuple(trades),
            ))

    def connector(self, name: str) -> FixVenue:
        return FixVenue(name, self)


class FixVenue:
    """Sends child orders to one venue. Non-blocking: QuickFIX queues the bytes on the socket."""

    def __init__(self, name: str, app: VenueApplication) -> None:
        self.name = name
        self.app = app

    @property
    def up(self) -> bool:
        return self.name in self.app.logged_on

    def _begin(self) -> str:
        return self.app.begin_strings.get(self.name, codec.FIX44)

    def send_new(self, msg: VenueNewOrder) -> None:
        self.app.post(self.name, codec.encode_venue_new(msg, self._begin()))
        if not self.up:
            log.warning("venue %s: order %s not sent (session down); stored for resend", self.name, msg.child_id)

    def send_cancel(self, msg: VenueCancel) -> None:
        self.app.post(self.name, codec.encode_venue_cancel(msg, self._begin()))
        if not self.up:
            log.warning("venue %s: cancel %s not sent (session down)", self.name, msg.cancel_id)

    def send_replace(self, msg: VenueReplace) -> None:
        self.app.post(self.name, codec.encode_venue_replace(msg, self._begin()))
        if not self.up:
            log.warning("venue %s: amend %s not sent (session down)", self.name, msg.amend_id)

    def send_status_request(self, msg: VenueStatusRequest) -> None:
        self.app.post(self.name, codec.encode_venue_status(msg, self._begin()))
        if not self.up:
            log.warning("venue %s: status request for %s not sent (session down)", self.name, msg.child_id)

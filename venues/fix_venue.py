"""Venues reached over FIX: one QuickFIX initiator application for all venue sessions, one
`FixVenue` connector (the `oms.ports.VenueConnector` port) per venue. The venue's name is its
TargetCompID in sessions.cfg."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fix_engine import codec
from fix_engine.application import GuardedApplication, session_key
from oms import commands as c
from oms.reports import VenueCancel, VenueNewOrder, VenueStatusRequest

log = logging.getLogger(__name__)


class VenueApplication(GuardedApplication):
    def __init__(self, submit: Callable[[c.Command], None]) -> None:
        super().__init__()
        self.submit = submit

    def on_logon(self, key: str) -> None:
        self.submit(c.VenueSessionUp(key))

    def on_logout(self, key: str) -> None:
        self.submit(c.VenueSessionDown(key))

    def on_from_app(self, raw: str, sid: Any) -> None:
        command = codec.decode_venue(raw, session_key(sid))
        if command is not None:
            self.submit(command)

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
        if not self.app.send_raw(self.name, codec.encode_venue_new(msg, self._begin())):
            log.warning("venue %s: order %s not sent (session down); stored for resend", self.name, msg.child_id)

    def send_cancel(self, msg: VenueCancel) -> None:
        if not self.app.send_raw(self.name, codec.encode_venue_cancel(msg, self._begin())):
            log.warning("venue %s: cancel %s not sent (session down)", self.name, msg.cancel_id)

    def send_status_request(self, msg: VenueStatusRequest) -> None:
        if not self.app.send_raw(self.name, codec.encode_venue_status(msg, self._begin())):
            log.warning("venue %s: status request for %s not sent (session down)", self.name, msg.child_id)

"""What the admin server and the modules that extend it (fixoms.admin_sessions, fixoms.ha) share: the error
an operator's request ends in, and how a session's state is shown before and after a change. Its own
module, so that those modules need not import the server, which imports them."""

from __future__ import annotations

from typing import Any


class AdminError(Exception):
    """A request the engine refused or could not do (one line, shown to the operator)."""


def brief_session(session: dict[str, Any]) -> dict[str, Any]:
    """The fields of a session that a change shows before and after."""
    return {k: session[k] for k in ("enabled", "state", "next_sender_seq", "next_target_seq")}


def state_name(value: Any) -> str:
    """A trading state (an enum or its value) as operators see it."""
    return str(getattr(value, "value", value))

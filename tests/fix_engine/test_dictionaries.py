"""The project's FIX data dictionaries (fix_engine/spec): generated, resolved first, and strict sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fix_engine import codec, settings
from fix_engine.quickfix_import import fix
from fix_engine.spec import generate
from tests.conftest import ROOT
from venues.simulator import simulator_settings

RELAXING = {"AllowUnknownMsgFields": "Y", "ValidateUserDefinedFields": "N"}


def test_committed_dictionaries_are_what_the_script_writes(tmp_path: Path) -> None:
    # A hand edit, a change to the script's additions without running it, or another QuickFIX's files.
    for path in generate.write(tmp_path):
        committed = settings.project_dictionary_dir() / path.name
        assert committed.read_bytes() == path.read_bytes(), \
            f"{committed} differs from what fix_engine/spec/generate.py writes: run it and commit the result"


def test_bare_names_resolve_to_ours_then_quickfix_and_paths_stay_as_given() -> None:
    ours, quickfix = settings.project_dictionary_dir(), settings.dictionary_dir()
    assert settings.resolve_dictionary("FIX44.xml") == str(ours / "FIX44.xml")
    assert settings.resolve_dictionary("FIX42.xml") == str(ours / "FIX42.xml")
    assert settings.resolve_dictionary("FIX43.xml") == str(quickfix / "FIX43.xml")  # we ship no 4.3
    assert settings.resolve_dictionary(str(quickfix / "FIX44.xml")) == str(quickfix / "FIX44.xml")
    with pytest.raises(FileNotFoundError, match="FIX99.xml"):
        settings.resolve_dictionary("FIX99.xml")


@pytest.mark.parametrize("version", generate.VERSIONS)
def test_our_dictionaries_take_the_strategy_fields_on_new_orders(version: str) -> None:
    dd = fix.DataDictionary(settings.resolve_dictionary(f"{version}.xml"))
    assert dd.isMsgField(codec.NEW_ORDER_SINGLE, codec.TARGET_STRATEGY)
    assert dd.isMsgField(codec.NEW_ORDER_SINGLE, codec.ROUTING_STRATEGY)
    assert all(dd.isFieldValue(codec.TARGET_STRATEGY, v) for v in codec.TARGET_STRATEGIES)
    # the codec reads 20847 on a NewOrderSingle only: anywhere else it is refused, not ignored
    assert not any(dd.isMsgField(t, codec.ROUTING_STRATEGY) for t in (codec.REPLACE_REQUEST, codec.CANCEL_REQUEST))


def relaxed(session_settings: Any) -> list[str]:
    """`[DEFAULT]` and the sessions of a quickfix.SessionSettings that switch a check off."""
    dicts = [("DEFAULT", session_settings.get())]
    dicts += [(str(sid), session_settings.get(sid)) for sid in session_settings.getSessions()]
    return [f"{name}: {key}={value}" for name, d in dicts for key, value in RELAXING.items()
            if d.has(key) and d.getString(key) == value]


def test_no_shipped_session_is_relaxed(tmp_path: Path) -> None:
    assert relaxed(fix.SessionSettings(str(ROOT / "sessions.cfg"))) == []
    assert relaxed(simulator_settings("VENUE-A", 9881, tmp_path)) == []

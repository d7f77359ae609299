"""The events table's JSON text written directly (oms.sqlprep.payload_json) is json.dumps of the event's
payload, character for character, for every event class and any field values the classes' types allow:
the text the column stored before, and what readers (ev.from_payload) parse back."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms import events as ev
from oms.sqlprep import payload, payload_json

# Values of every kind an event field holds, odd ones included (non-ASCII and control characters,
# decimals with exponents, NaN).
st.register_type_strategy(Decimal, st.decimals(allow_nan=True, allow_infinity=True, places=None))
st.register_type_strategy(datetime, st.datetimes(timezones=st.just(UTC)))
# A field typed Any (TCA figures: a JSON object) gets JSON values; it goes through json.dumps whole.
_JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats(allow_nan=False))
_FIELDS: dict[str, dict[str, st.SearchStrategy[object]]] = {
    "TcaRecorded": {"figures": st.dictionaries(st.text(), _JSON_VALUES, max_size=5)},
}


@pytest.mark.parametrize("cls", [ev.EVENT_TYPES[name] for name in sorted(ev.EVENT_TYPES)], ids=sorted(ev.EVENT_TYPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_text_is_json_dumps_of_the_payload(cls: type, data: st.DataObject) -> None:
    event = data.draw(st.builds(cls, **_FIELDS.get(cls.__name__, {})))
    text = payload_json(event)
    assert text == json.dumps(payload(event))
    values = [getattr(event, f.name) for f in dataclasses.fields(event)]
    if not any(isinstance(v, Decimal) and v.is_nan() for v in values):  # NaN is not equal to itself
        assert ev.from_payload(cls.__name__, json.loads(text)) == event


def test_a_value_the_generated_code_does_not_know_goes_through_json_dumps() -> None:
    """A float (a field typed otherwise that holds one) is written as json.dumps writes it."""
    event = ev.ChildAcked("O-1", "O-1.1", 1.5)  # type: ignore[arg-type]
    assert payload_json(event) == json.dumps(payload(event)) == '{"order_id": "O-1", "child_id": "O-1.1", ' \
        '"venue_order_id": 1.5}'

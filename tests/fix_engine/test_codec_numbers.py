"""The codec checks each number's text once and formats each value once (fix_engine.codec _dec/_fmt):
what comes out must be what the uncached path made, refusals included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fix_engine import codec

D = Decimal


def test_a_number_seen_before_decodes_to_the_same_value_and_a_bad_one_is_still_refused() -> None:
    for _ in range(3):
        assert codec._dec({44: "150.25"}, 44, "Price") == D("150.25")
        assert codec._dec({44: "150.250"}, 44, "Price") == D("150.250")
        with pytest.raises(codec.DecodeError, match="not a number"):
            codec._dec({44: "15O.25"}, 44, "Price")
        with pytest.raises(codec.DecodeError, match="out of range"):
            codec._dec({38: "1e16"}, 38, "OrderQty")
    assert codec._dec({44: ""}, 44, "Price") is None


def test_formatting_is_the_same_cached_as_not_for_equal_values_of_other_exponents_and_signed_zeros() -> None:
    values = [D("150.00"), D("150.0"), D("150"), D("1E+2"), D("100"), D("-0"), D("0"), D("0.000"), D("-1.50"),
              D("0.0001"), D("123456.789")]
    for _ in range(2):
        assert [codec._fmt(v) for v in values] == [format(v.normalize(), "f") for v in values]
    assert codec._fmt(None) == ""

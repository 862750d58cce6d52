"""Spec section 3: record values to Ortto values (Ortto's field types)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from target_ortto.convert import (
    MAX_DEPTH,
    ConversionError,
    phone_converter,
    phone_region,
    to_boolean,
    to_date,
    to_datetime,
    to_decimal,
    to_email,
    to_geo,
    to_integer,
    to_long_text,
    to_object,
    to_string,
    to_string_list,
)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


UTC = dt.timezone.utc
SYDNEY = dt.timezone(dt.timedelta(hours=10))

DECIMALS = "12.3456=12346 0.0005=0 0.0015=2 0.0025=2 -12.3456=-12346 -0.0015=-2 1E+3=1000000"
DECIMALS += " 9007199254740.993=9007199254740993"
MAY_1 = {"year": 2024, "month": 5, "day": 1, "timezone": "UTC"}
AT_1345Z = "2024-05-01T13:45:00Z"
AU_MOBILE = {"c": "61", "n": "401234567"}
CONVERTED = [
    (to_integer, 42, 42),
    (to_integer, Decimal("42"), 42),
    (to_boolean, True, True),
    (to_boolean, False, False),
    (to_date, dt.date(2024, 5, 1), MAY_1),
    (to_date, dt.datetime(2024, 5, 1, 13, 45), MAY_1),
    (to_date, "2024-05-01", MAY_1),
    (to_date, "2024-05-01T13:45:00Z", MAY_1),
    (to_datetime, dt.datetime(2024, 5, 1, 23, 45, tzinfo=SYDNEY), AT_1345Z),
    (to_datetime, dt.datetime(2024, 5, 1, 13, 45, tzinfo=UTC), AT_1345Z),
    (to_datetime, dt.datetime(2024, 5, 1, 13, 45), AT_1345Z),
    (to_datetime, "2024-05-01T13:45:00Z", AT_1345Z),
    (to_datetime, "2024-05-01T23:45:00+10:00", AT_1345Z),
    (to_datetime, "2024-05-01T13:45:00.123456Z", AT_1345Z),
    (phone_converter(None), "+61 401 234 567", AU_MOBILE),
    (phone_converter(None), "+1 650-253-0000", {"c": "1", "n": "6502530000"}),
    (phone_converter(None), "+39 06 1234 5678", {"c": "39", "n": "0612345678"}),
    (
        to_date,
        dt.datetime(1990, 1, 5, 0, 30, tzinfo=SYDNEY),
        {**MAY_1, "year": 1990, "month": 1, "day": 5},
    ),
    (phone_converter("AU"), "0401 234 567", AU_MOBILE),
    (phone_converter("US"), "+61 401 234 567", AU_MOBILE),
    (to_geo, "Sydney", {"name": "Sydney"}),
    (to_string, "x" * 255, "x" * 255),
    (to_long_text, "x" * 4000, "x" * 4000),
    (to_email, "Ann.Lee+crm@mail.example.co.uk", "Ann.Lee+crm@mail.example.co.uk"),
    (to_string_list, ["a", "b"], ["a", "b"]),
    # JSON-encoded, as the SDK's flattening writes lists
    (to_string_list, '["vip", "beta"]', ["vip", "beta"]),
    (to_string_list, "[]", []),
    (to_string, dt.time(13, 45), "13:45:00"),
    (to_string, dt.date(2024, 5, 1), "2024-05-01"),
    (to_string, dt.datetime(2024, 5, 1, 23, 45, tzinfo=SYDNEY), "2024-05-01T23:45:00+10:00"),
    (to_long_text, dt.datetime(2024, 5, 1, 13, 45), "2024-05-01T13:45:00"),
    (to_decimal, Decimal("1E-999999999"), 0),
    (to_email, "Zoë.Łukasz@exämple.com", "Zoë.Łukasz@exämple.com"),
    (to_object, {"a": [{"b": 1}]}, {"a": [{"b": 1}]}),
    (to_object, _nested(MAX_DEPTH), _nested(MAX_DEPTH)),
]
INVISIBLE = [*"\u200b\ufeff\u00ad\u200e\u200f\u202e\u2066\u2060\u180e\u3164", *"\x00\x07\x1b\x7f"]
HUGE = [Decimal("1E+999999999"), Decimal("-1E+999999999")]
REJECTED = {
    to_decimal: [
        *(Decimal("NaN"), Decimal("Infinity"), float("-inf"), float("nan"), True, "x"),
        *(Decimal("9223372036854775.808"), Decimal("-9223372036854775.809")),
        *HUGE,
        "1e999999999",
    ],
    to_integer: [
        *(True, False, Decimal("1.5"), 1.5, "abc", Decimal("NaN"), 2**63, -(2**63) - 1),
        *(*HUGE, "1e999999999"),
    ],
    to_boolean: ["maybe", 2, ""],
    to_date: ["01/05/2024", "2024-13-01", "soon", 20240501],
    to_datetime: [
        *("yesterday", "2024-05-01T25:00:00Z", 1714571100),
        "9999-12-31T23:00:00-05:00",
        dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(1, 1, 1, tzinfo=SYDNEY),
    ],
    to_string: [True, {"a": 1}, ["a"], "x" * 256],
    to_long_text: ["x" * 4001],
    to_email: ["", "ann", "ann@", "@example.com", "ann@example", "a b@x.com", "a@b@c.com"]
    + [f"ann{c}@example.com" for c in INVISIBLE]
    + [f"{c}ann@example.com" for c in INVISIBLE]
    + ["ann@example.com\u200b"],
    to_object: [_nested(MAX_DEPTH + 1), {"a": _nested(MAX_DEPTH)}],
    to_string_list: ["a", ["a", 1], [None], {"a": "b"}, '["a", 1]', '{"a": "b"}', '"a"', "[x"],
    phone_converter("AU"): ["call me", "+61 1", "12", "+999 123 456"],
}


def case_id(convert, value):
    return f"{convert.__name__}-{value!r:.30}"


class TestValues:
    @pytest.mark.parametrize(
        ("value", "sent"),
        [(Decimal(v), int(s)) for v, s in (pair.split("=") for pair in DECIMALS.split())]
        + [(12.3456, 12346), (0.1, 100), (5, 5000), (0, 0)],
    )
    def test_decimal_is_value_times_1000_exact_and_half_even(self, value, sent):
        assert to_decimal(value) == sent

    @pytest.mark.parametrize(
        ("convert", "value", "sent"),
        [pytest.param(*row, id=case_id(*row[:2])) for row in CONVERTED],
    )
    def test_converted_to_the_ortto_type(self, convert, value, sent):
        assert convert(value) == sent

    @pytest.mark.parametrize(
        ("convert", "value"),
        [pytest.param(c, v, id=case_id(c, v)) for c, values in REJECTED.items() for v in values],
    )
    def test_a_value_that_cannot_be_converted_is_a_conversion_error(self, convert, value):
        with pytest.raises(ConversionError):
            convert(value)

    @pytest.mark.parametrize(
        ("country", "region"),
        [
            ("AU", "AU"),
            ("au", "AU"),
            (" Australia ", "AU"),
            ("United States", "US"),
            ("united states of america", "US"),
            ("UK", "GB"),
            ("New Zealand", "NZ"),
            ("Côte d'Ivoire", "CI"),
            ("Atlantis", None),
            ("", None),
            (None, None),
            (61, None),
        ],
    )
    def test_a_row_s_country_names_its_phone_region(self, country, region):
        assert phone_region(country) == region

    def test_a_local_number_is_read_in_the_row_s_country_before_the_default(self):
        to_phone = phone_converter("US")
        assert to_phone("0401 234 567", "AU") == AU_MOBILE
        assert to_phone("(650) 253-0000") == {"c": "1", "n": "6502530000"}
        assert to_phone("+61 401 234 567", "GB") == AU_MOBILE  # +country wins

    def test_phone_without_country_code_is_invalid_without_a_default_country(self):
        with pytest.raises(ConversionError, match="default_phone_country"):
            phone_converter(None)("0401 234 567")


def test_integers_and_decimals_x1000_fill_exactly_the_int64_range():
    assert to_integer(2**63 - 1) == 2**63 - 1
    assert to_integer(Decimal(-(2**63))) == -(2**63)
    assert to_decimal(Decimal("9223372036854775.807")) == 2**63 - 1
    assert to_decimal(Decimal("-9223372036854775.808")) == -(2**63)

"""Record values -> Ortto values: one pure converter per Ortto field type.

A converter takes a value as singer-sdk hands it over (str, int, Decimal, date, datetime,
list) and returns what Ortto's API takes, or raises `ConversionError` with a reason a
person can act on. Formats follow Ortto's field types (../shared/reference/ortto-api.md,
"Field types").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import phonenumbers

STRING_MAX = 255  # Ortto text fields
LONG_TEXT_MAX = 4000  # Ortto large text fields
_ORTTO_ID = re.compile(r"^[0-9a-f]{24}$")  # Ortto IDs: 24 hex characters (API reference)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_THOUSAND = Decimal(1000)
# Ortto's integers are int64 (person-merge reference; ../shared/reference/ortto-api.md,
# "Limits"): decimals are stored x1000 in the same range.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

Converter = Callable[[Any], Any]


class ConversionError(ValueError):
    """A value that cannot become the Ortto field's type; the message is the reason."""


def to_string(value: Any, limit: int = STRING_MAX) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, float)):
        raise ConversionError(f"expected text, got {type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise ConversionError(f"text of {len(text)} characters is longer than Ortto's {limit}")
    return text


def to_long_text(value: Any) -> str:
    return to_string(value, LONG_TEXT_MAX)


def to_email(value: Any) -> str:
    text = to_string(value).strip()
    if not _EMAIL.match(text):
        raise ConversionError(f"{text!r} is not a valid email address")
    return text


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConversionError(f"expected a number, got {value!r}")
    try:
        number = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value))
    except InvalidOperation:
        raise ConversionError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ConversionError(f"{value!r} is not a finite number")
    return number


def _int64(number: int, value: Any, what: str) -> int:
    if not INT64_MIN <= number <= INT64_MAX:
        raise ConversionError(f"{value} is outside the range of an Ortto {what} (int64)")
    return number


def to_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _int64(value, value, "integer")
    number = _decimal(value)
    if number != number.to_integral_value():
        raise ConversionError(f"{value} is not a whole number")
    return _int64(int(number), value, "integer")


def to_decimal(value: Any) -> int:
    """Ortto stores decimals as integers x1000; exact, rounded half-even."""
    number = _decimal(value) * _THOUSAND
    try:
        thousandths = int(number.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except InvalidOperation:
        raise ConversionError(f"{value} is outside the range of an Ortto decimal") from None
    return _int64(thousandths, value, "decimal (x1000)")


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConversionError(f"{value!r} is not true or false")


def _date(value: Any) -> dt.date:
    if isinstance(value, str):
        try:
            value = (
                dt.date.fromisoformat(value)
                if len(value) == 10
                else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            )
        except ValueError:
            raise ConversionError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, dt.date):  # a date-time keeps its own calendar day
        return value if type(value) is dt.date else value.date()
    raise ConversionError(f"{value!r} is not a date (YYYY-MM-DD)")


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def to_date(value: Any) -> dict[str, Any]:
    day = _date(value)
    return {"year": day.year, "month": day.month, "day": day.day, "timezone": "UTC"}


def to_datetime(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConversionError(f"{value!r} is not an ISO 8601 date-time") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), dt.timezone.utc)
    if not isinstance(value, dt.datetime):
        raise ConversionError(f"{value!r} is not a date-time")
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_ortto_id(value: Any) -> str:
    """An Ortto person or account ID; anything else is refused rather than misread."""
    text = to_string(value).strip().lower()
    if not _ORTTO_ID.match(text):
        raise ConversionError(f"{value!r} is not an Ortto ID (24 hex characters)")
    return text


def to_geo(value: Any) -> dict[str, str]:
    return {"name": to_string(value)}


def to_string_list(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConversionError(f"expected a list of strings, got {value!r}")
    return list(value)


def phone_converter(default_country: str | None) -> Converter:
    """Parse with libphonenumber; without a `+country` prefix only with a default country."""

    def to_phone(value: Any) -> dict[str, str]:
        text = to_string(value)
        try:
            number = phonenumbers.parse(text, default_country)
        except phonenumbers.NumberParseException:
            local = not text.lstrip().startswith("+") and not default_country
            hint = " (no +country code; set default_phone_country)" if local else ""
            raise ConversionError(f"{text!r} is not a phone number{hint}") from None
        if not phonenumbers.is_valid_number(number):
            raise ConversionError(f"{text!r} is not a valid phone number")
        # The national significant number keeps a leading zero where it is part of the
        # number (Italy), and drops the trunk prefix elsewhere.
        national = phonenumbers.national_significant_number(number)
        return {"c": str(number.country_code), "n": national}

    return to_phone


def passthrough(value: Any) -> Any:
    return value

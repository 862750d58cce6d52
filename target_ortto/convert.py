"""Record values -> Ortto values: one pure converter per Ortto field type.

A converter takes a value as singer-sdk hands it over (str, int, Decimal, date, datetime,
list) and returns what Ortto's API takes, or raises `ConversionError` with a reason a
person can act on. Formats follow Ortto's field types (../shared/reference/ortto-api.md,
"Field types").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Any

import phonenumbers

STRING_MAX = 255  # Ortto text fields
LONG_TEXT_MAX = 4000  # Ortto large text fields
_ORTTO_ID = re.compile(r"^[0-9a-f]{24}$")  # Ortto IDs: 24 hex characters (API reference)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_THOUSAND = Decimal(1000)
# Nesting an `obj` value may have: far below the ~1000 levels at which Python's JSON
# encoders (ours, the request log's, a proxy's) give up with a RecursionError.
MAX_DEPTH = 64
# Ortto's integers are int64 (person-merge reference; ../shared/reference/ortto-api.md,
# "Limits"): decimals are stored x1000 in the same range.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT64_DIGITS = 19  # so a number with more integer digits is out of range, however written
# Characters nobody sees, or that are not text, in an address: Ortto would store them, and
# the person could never be matched by the address they type. Control (Cc), format (Cf:
# zero-width, BOM, soft hyphen, bidi marks), private (Co), surrogate (Cs), unassigned (Cn),
# separators (Z*), and the Hangul fillers that render as blanks.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zs", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

Converter = Callable[[Any], Any]


class ConversionError(ValueError):
    """A value that cannot become the Ortto field's type; the message is the reason."""


def to_string(value: Any, limit: int = STRING_MAX) -> str:
    """Text as is; numbers as written; dates and times (which the SDK parses from `format`
    date, date-time and time columns) back in ISO 8601."""
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
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
    hidden = next((c for c in text if _invisible(c)), None)
    if hidden is not None:
        raise ConversionError(
            f"{text!r} is not a valid email address: it contains the invisible or control "
            f"character U+{ord(hidden):04X} ({unicodedata.name(hidden, 'unnamed')})"
        )
    return text


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _BLANK_LETTERS


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


def _out_of_range(value: Any, what: str) -> ConversionError:
    return ConversionError(f"{value} is outside the range of an Ortto {what} (int64)")


def _int64(number: int, value: Any, what: str) -> int:
    if not INT64_MIN <= number <= INT64_MAX:
        raise _out_of_range(value, what)
    return number


def to_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _int64(value, value, "integer")
    number = _decimal(value)
    if number.adjusted() >= INT64_DIGITS:  # before `int()`, which 1E+999999999 would hang
        raise _out_of_range(value, "integer")
    if number != number.to_integral_value():
        raise ConversionError(f"{value} is not a whole number")
    return _int64(int(number), value, "integer")


def to_decimal(value: Any) -> int:
    """Ortto stores decimals as integers x1000; exact, rounded half-even."""
    number = _decimal(value)
    # Checked first: x1000 of 1E+999999999 overflows Decimal's context, of 1E+30 its precision.
    if number.adjusted() + 3 >= INT64_DIGITS:
        raise _out_of_range(value, "decimal (x1000)")
    thousandths = int((number * _THOUSAND).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
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
    try:
        return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is in year 10000 in UTC
        raise ConversionError(
            f"{value.isoformat()} is outside the years 1 to 9999 once converted to UTC"
        ) from None


def days_or_date(value: Any) -> float | dt.date:
    """A number of days (as a float), or a date (YYYY-MM-DD)."""
    try:
        days = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise ConversionError(
                f"a date (YYYY-MM-DD) or a number of days, got {value!r}"
            ) from None
    if not 0 <= days < 100_000:  # also refuses NaN
        raise ConversionError(f"a number of days from 0, or a date, got {value!r}")
    return days


def to_ortto_id(value: Any) -> str:
    """An Ortto person or account ID; anything else is refused rather than misread."""
    text = to_string(value).strip().lower()
    if not _ORTTO_ID.match(text):
        raise ConversionError(f"{value!r} is not an Ortto ID (24 hex characters)")
    return text


def to_geo(value: Any) -> dict[str, str]:
    return {"name": to_string(value)}


def to_string_list(value: Any) -> list[str]:
    """A list of strings; or a JSON-encoded one, as the SDK's flattening writes lists."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            value = decoded
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConversionError(
            f"expected a list of strings (or one JSON-encoded), got {_preview(value)}"
        )
    return list(value)


def _preview(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


# Country names people write that are not phonenumbers' English names.
_COUNTRY_ALIASES = {
    "usa": "US",
    "us of a": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "korea": "KR",
    "republic of korea": "KR",
    "czechia": "CZ",
    "ivory coast": "CI",
    "cote divoire": "CI",
    "north macedonia": "MK",
    "holland": "NL",
    "the netherlands": "NL",
    "uae": "AE",
    "russian federation": "RU",
    "viet nam": "VN",
    "turkiye": "TR",
    "burma": "MM",
}


def _country_key(name: str) -> str:
    """`Côte d'Ivoire`, `cote d ivoire ` -> `cote divoire`: case, accents, punctuation off."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z ]", "", ascii_name.lower().replace("&", " and ")).split()
    return " ".join(words)


@cache
def _country_names() -> dict[str, str]:
    from phonenumbers.geodata.locale import LOCALE_DATA

    names = {
        _country_key(str(locales["aa"])): region
        for region, locales in LOCALE_DATA.items()
        if region in phonenumbers.SUPPORTED_REGIONS and "aa" in locales
    }
    return {**names, **{_country_key(k): v for k, v in _COUNTRY_ALIASES.items()}}


def phone_region(country: Any) -> str | None:
    """A record's country (`AU`, `au`, `Australia`, `United States`) -> the phone region
    code phonenumbers takes, or None when it names no country with phone numbers."""
    if not isinstance(country, str):
        return None
    text = country.strip()
    if len(text) == 2 and text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text.upper()
    return _country_names().get(_country_key(text))


def phone_converter(default_country: str | None) -> Callable[..., dict[str, str]]:
    """Parse with libphonenumber. A number without a `+country` prefix is read in `region`
    (the row's own country, when the record has one), else in `default_country`."""

    def to_phone(value: Any, region: str | None = None) -> dict[str, str]:
        text = to_string(value)
        country = region or default_country
        try:
            number = phonenumbers.parse(text, country)
        except phonenumbers.NumberParseException:
            local = not text.lstrip().startswith("+") and not country
            hint = (
                " (no +country code, and no country for the row: set default_phone_country "
                "or add a country column)"
                if local
                else ""
            )
            raise ConversionError(f"{text!r} is not a phone number{hint}") from None
        if not phonenumbers.is_valid_number(number):
            where = f" in {country}" if country and not text.lstrip().startswith("+") else ""
            raise ConversionError(f"{text!r} is not a valid phone number{where}")
        # The national significant number keeps a leading zero where it is part of the
        # number (Italy), and drops the trunk prefix elsewhere.
        national = phonenumbers.national_significant_number(number)
        return {"c": str(number.country_code), "n": national}

    return to_phone


def to_object(value: Any) -> Any:
    """An `obj` field's value as is, unless nested deeper than `MAX_DEPTH`."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise ConversionError(f"the value is nested more than {MAX_DEPTH} levels deep")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return value

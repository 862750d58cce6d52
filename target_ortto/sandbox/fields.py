"""Fields: what people and accounts are made of, and which values Ortto accepts for each type.

People and accounts differ only in the data held by a `Kind`, so one code path serves both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

EMAIL = "str::email"
EXTERNAL_ID = "str::ei"


@dataclass(frozen=True)
class Kind:
    """The few names in which people and accounts differ."""

    table: str
    body_key: str
    result_id_key: str
    id_prefix: str
    id_field: str
    custom_ns: str
    liquid_prefix: str
    wrapped_fields: bool
    read_key: str
    meta_total_key: str
    no_valid_message: str
    default_merge_by: tuple[str, ...] | None
    identity_fields: tuple[str, ...]
    builtins: frozenset[str]
    bulk_keys: dict[str, tuple[str, str]]
    max_merge_by: int  # people: three (today's person-merge page); accounts: two
    find_strategies: tuple[int, ...]  # accounts document 0 and 1 only
    defaults_on_create: tuple[tuple[str, Any], ...]  # what Ortto sets on a new record


PERSON = Kind(
    table="person",
    body_key="people",
    result_id_key="person_id",
    id_prefix="00",
    id_field="str::person_id",
    custom_ns="cm",
    liquid_prefix="people.custom.",
    wrapped_fields=True,
    read_key="contacts",
    meta_total_key="total_contacts",
    no_valid_message="No valid contacts provided",
    default_merge_by=(EMAIL,),
    identity_fields=(EMAIL, EXTERNAL_ID),
    builtins=frozenset(
        [
            "str::first",
            "str::last",
            "str::name",
            "str::email",
            "str::person_id",
            "phn::phone",
            "geo::city",
            "geo::country",
            "geo::region",
            "str::postal",
            "dtz::b",
            "str::ei",
            "bol::gdpr",
            "bol::p",
            "bol::sp",
            "str::u-ctx",
            "str::s-ctx",
            "str::soi-ctx",
            "str::soo-ctx",
            "str::language",
            "str::fcm_ios_token",  # push tokens (person-merge reference)
            "str::apn_ios_token",
            "str::android_token",
        ]
    ),
    bulk_keys={
        "archive": ("scheduled_contacts", "archived_contacts"),
        "restore": ("scheduled_contacts", "archived_contacts"),
        "delete": ("scheduled_contacts", "deleted_contacts"),
    },
    max_merge_by=3,
    find_strategies=(0, 1, 2),
    # A person created without an email permission is subscribed (person-merge reference:
    # "assumed to be true by default"), and so enters the built-in Subscribers audience.
    defaults_on_create=(("bol::p", True),),
)
ACCOUNT = Kind(
    table="account",
    body_key="accounts",
    result_id_key="account_id",
    id_prefix="10",
    id_field="str:o:account_id",
    custom_ns="oc",
    liquid_prefix="account.custom.",
    wrapped_fields=False,
    read_key="accounts",
    meta_total_key="total_organizations",
    no_valid_message="No valid accounts provided",
    default_merge_by=None,
    identity_fields=(),
    builtins=frozenset(
        [
            "str:o:name",
            "str:o:account_id",
            "int:o:employees",
            "str:o:industry",
            "str:o:website",
            "geo:o:city",
            "str:o:address",
            "geo:o:region",
            "geo:o:country",
            "str:o:postal",
            "str:o:source",
        ]
    ),
    bulk_keys={
        "archive": ("scheduled_organizations", "archived_organizations"),
        "restore": ("scheduled_organizations", "restored_organizations"),
        "delete": ("scheduled_accounts", "deleted_accounts"),
    },
    max_merge_by=2,
    find_strategies=(0, 1),
    defaults_on_create=(),
)
# The legacy /v1/organizations/merge path: account records under older key names.
ORGANIZATION = replace(ACCOUNT, body_key="organizations", result_id_key="organization_id")
KINDS = {"person": PERSON, "account": ACCOUNT, "organization": ORGANIZATION}

_ID_RE = re.compile(r"[0-9a-f]{24}")  # Ortto IDs
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DIGITS_RE = re.compile(r"\d{1,15}")
_E164_RE = re.compile(r"\+\d{4,15}")


def is_int(value: Any) -> bool:
    """An integer that is not a bool (JSON true is not a number)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(limit: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and len(value) <= limit


def _is_date(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("timezone"), str):
        return False
    parts = [value.get(key) for key in ("year", "month", "day")]
    if not all(is_int(part) for part in parts):
        return False
    try:
        date(*parts)
    except ValueError:
        return False
    return True


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:  # Python 3.10's fromisoformat does not read a "Z" suffix
        datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return False
    return True


def _is_phone(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if value.get("parse_with_country_code") is True:
        return isinstance(value.get("phone"), str) and bool(_E164_RE.fullmatch(value["phone"]))
    return all(
        isinstance(value.get(key), str) and bool(_DIGITS_RE.fullmatch(value[key]))
        for key in ("c", "n")
    )


def _is_int64(value: Any) -> bool:
    """Ortto's integers are int64 (person-merge reference)."""
    return is_int(value) and -(2**63) <= value < 2**63


# Field ID prefix -> (check, what the value must be).
VALUE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (_is_text(255), "a string of at most 255 characters"),
    "txt": (_is_text(4000), "a string of at most 4000 characters"),
    "int": (_is_int64, "a 64-bit integer"),
    "bol": (lambda v: isinstance(v, bool), "a boolean"),
    "dtz": (_is_date, "a date object with integer year, month, day and a string timezone"),
    "tme": (_is_datetime, "an ISO 8601 date-time string"),
    "phn": (_is_phone, 'a phone object {"c", "n"} or {"phone", "parse_with_country_code"}'),
    "geo": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str), 'a {"name": …}'),
    "sst": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a string list"),
    "obj": (lambda v: isinstance(v, dict), "an object"),
}
_ORTTO_ID = (lambda v: isinstance(v, str) and bool(_ID_RE.fullmatch(v)), "24 hex characters")
_FIELD_CHECKS = {
    EMAIL: (lambda v: isinstance(v, str) and bool(_EMAIL_RE.fullmatch(v)), "an email address"),
    "str::person_id": _ORTTO_ID,
    "str:o:account_id": _ORTTO_ID,
}


def value_error(field_id: str, value: Any) -> str | None:
    """Why Ortto refuses `value` for this field, or None if it accepts it (None clears)."""
    check, expected = _FIELD_CHECKS.get(field_id) or VALUE_TYPES[field_id.split(":")[0]]
    return None if value is None or check(value) else f"value must be {expected}"


def kebab(name: str) -> str:
    """Ortto's custom field slug: the name in lower kebab-case."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def slug(field_id: str) -> str:
    """The name part of a field ID (`int:cm:score` -> `score`)."""
    return field_id.split(":", 2)[-1]

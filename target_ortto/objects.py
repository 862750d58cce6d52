"""The Ortto objects a stream can become, described as data.

People and accounts differ only in the values below, so one sink serves both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# mode -> (merge_strategy, skip_non_existing)
_MODES = MappingProxyType(
    {
        "upsert": (2, False),
        "update": (2, True),
        "insert": (3, False),
        "append": (1, False),
    }
)

FIND_STRATEGIES = MappingProxyType({"any": 0, "next_if_empty": 1, "all": 2})

# Fields that identify a person or account well enough to merge by (besides Ortto's IDs,
# which must merge alone): suggested as a second merge_by key when the first is empty.
IDENTITY_FIELDS = MappingProxyType(
    {
        "person": ("str::email", "str::ei", "phn::phone"),
        "account": ("str:o:name", "str:o:website"),
    }
)

# Email and SMS permission (spec section 3, "Consent"): set only by an explicit mapping,
# and never cleared by a null (that would erase an opt-out).
CONSENT_FIELDS = frozenset({"bol::p", "bol::sp"})

# Ortto's own IDs. Only `ortto_person_id` / `ortto_account_id` columns (or a field ID or
# field_map) reach them: a warehouse's `person_id` or `id` is its own key, not Ortto's.
ORTTO_ID_FIELDS = frozenset({"str::person_id", "str:o:account_id"})

# People linked to accounts (spec section 4b): the account fields a person's link column
# can name the account by, and the columns that link by default (each one's field).
LINK_FIELDS = ("str:o:name", "str:o:website", "str:o:account_id")
LINK_COLUMNS = MappingProxyType(
    {
        "ortto_account_id": "str:o:account_id",
        "account_name": "str:o:name",
        "company": "str:o:name",
        "company_name": "str:o:name",
        "organization": "str:o:name",
        "organization_name": "str:o:name",
        "account_website": "str:o:website",
        "company_website": "str:o:website",
        "company_domain": "str:o:website",
    }
)

FIELD_ID = re.compile(r"^(str|txt|int|bol|dtz|tme|phn|geo|sst|obj):[a-z]*:[a-z0-9_-]+$")


@dataclass(frozen=True)
class OrttoObject:
    """What Ortto calls the object, where it is merged and how its fields are named."""

    name: str
    api_segment: str  # /v1/<segment>/merge, /archive, /get ...
    get_key: str  # the list in a /get answer
    body_key: str
    result_keys: tuple[str, ...]
    id_key: str
    id_field: str
    custom_namespace: str
    builtin_fields: frozenset[str]
    aliases: Mapping[str, str]
    default_merge_by: tuple[str, ...]
    modes: Mapping[str, tuple[int, bool]]
    skips_non_existing: bool  # Ortto documents `skip_non_existing` for people only
    max_merge_by: int  # people: three (today's person-merge page); accounts: one or two
    find_strategies: Mapping[str, int]  # accounts document `any` and `next_if_empty` only
    stream_names: frozenset[str] = field(default_factory=frozenset)

    def path(self, action: str) -> str:
        """`merge`, `archive`, `custom-field/get` ... -> the endpoint's path."""
        return f"/v1/{self.api_segment}/{action}"

    def custom_field_id(self, ortto_type: str, name: str) -> str:
        return f"{ortto_type}:{self.custom_namespace}:{name}"

    def is_custom_field(self, field_id: str) -> bool:
        return field_id.split(":")[1:2] == [self.custom_namespace]


PERSON = OrttoObject(
    name="person",
    api_segment="person",
    get_key="contacts",
    body_key="people",
    result_keys=("people",),
    id_key="person_id",
    id_field="str::person_id",
    custom_namespace="cm",
    builtin_fields=frozenset(
        {
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
            # push-notification tokens (person-merge reference)
            "str::fcm_ios_token",
            "str::apn_ios_token",
            "str::android_token",
        }
    ),
    aliases=MappingProxyType(
        {
            "email": "str::email",
            "first_name": "str::first",
            "firstname": "str::first",
            "last_name": "str::last",
            "lastname": "str::last",
            "surname": "str::last",
            "name": "str::name",
            "full_name": "str::name",
            "phone": "phn::phone",
            "phone_number": "phn::phone",
            "mobile": "phn::phone",
            "city": "geo::city",
            "country": "geo::country",
            "region": "geo::region",
            "state": "geo::region",
            "postal": "str::postal",
            "postal_code": "str::postal",
            "postcode": "str::postal",
            "zip": "str::postal",
            "birthday": "dtz::b",
            "birth_date": "dtz::b",
            "date_of_birth": "dtz::b",
            "external_id": "str::ei",
            "ortto_person_id": "str::person_id",
            "gdpr": "bol::gdpr",
            "language": "str::language",
        }
    ),
    default_merge_by=("str::email",),
    modes=_MODES,
    skips_non_existing=True,
    max_merge_by=3,
    find_strategies=FIND_STRATEGIES,
    stream_names=frozenset(
        {"people", "person", "persons", "contacts", "contact", "users", "customers"}
    ),
)

ACCOUNT = OrttoObject(
    name="account",
    api_segment="accounts",
    get_key="accounts",
    body_key="accounts",
    result_keys=("accounts", "organizations"),
    id_key="account_id",
    id_field="str:o:account_id",
    custom_namespace="oc",
    builtin_fields=frozenset(
        {
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
        }
    ),
    aliases=MappingProxyType(
        {
            "name": "str:o:name",
            "website": "str:o:website",
            "domain": "str:o:website",
            "url": "str:o:website",
            "employees": "int:o:employees",
            "employee_count": "int:o:employees",
            "industry": "str:o:industry",
            "address": "str:o:address",
            "city": "geo:o:city",
            "region": "geo:o:region",
            "state": "geo:o:region",
            "country": "geo:o:country",
            "postal": "str:o:postal",
            "postal_code": "str:o:postal",
            "zip": "str:o:postal",
            "source": "str:o:source",
            "ortto_account_id": "str:o:account_id",
        }
    ),
    default_merge_by=("str:o:name",),
    modes=MappingProxyType({k: v for k, v in _MODES.items() if k != "update"}),
    skips_non_existing=False,
    max_merge_by=2,
    find_strategies=MappingProxyType({k: v for k, v in FIND_STRATEGIES.items() if k != "all"}),
    stream_names=frozenset(
        {"accounts", "account", "organizations", "organization", "orgs", "companies", "company"}
    ),
)

AUDIENCE_STREAM_NAMES = frozenset({"audience", "audiences", "audience_members"})

MERGE_OBJECTS: Mapping[str, OrttoObject] = MappingProxyType(
    {PERSON.name: PERSON, ACCOUNT.name: ACCOUNT}
)
OBJECT_NAMES = ("person", "account", "audience", "activity")
# Activity streams (events on a person's timeline): these names, or a name starting
# with `activity_` or `event_`.
ACTIVITY_STREAM_NAMES = frozenset({"activities", "activity", "events", "event"})


def infer_object(stream_name: str) -> str | None:
    """The object a stream name implies, ignoring case and a schema prefix (`public-`)."""
    name = stream_name.lower().rsplit("-", 1)[-1].rsplit(".", 1)[-1]
    for obj in MERGE_OBJECTS.values():
        if name in obj.stream_names:
            return obj.name
    if name in AUDIENCE_STREAM_NAMES or name.startswith("audience_"):
        return "audience"
    if name in ACTIVITY_STREAM_NAMES or name.startswith(("activity_", "event_")):
        return "activity"
    return None

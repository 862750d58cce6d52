"""In-memory model of an Ortto CDP: the rules the sandbox server answers with.

No HTTP here. Each API method takes the parsed JSON body of an Ortto request and returns the
JSON body Ortto answers with, or raises `ApiError` when Ortto refuses the whole request.
People and accounts differ only in the data held by a `Kind`, so one code path serves both.
One re-entrant lock guards all state, which makes every public method thread-safe.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar

MAX_BATCH = 100
MAX_AUDIENCE_PAGE = 40
MAX_READ_PAGE = 500
EMAIL = "str::email"
EXTERNAL_ID = "str::ei"
APPEND, OVERWRITE, IGNORE = 1, 2, 3
ANY, NEXT_IF_EMPTY, ALL = 0, 1, 2
NO_ID = "0" * 24

# Custom field type (as named in /custom-field/create) -> field ID prefix.
CUSTOM_FIELD_TYPES = {
    "text": "str",
    "large_text": "txt",
    "integer": "int",
    "decimal": "int",
    "currency": "int",
    "price": "int",
    "date": "dtz",
    "time": "tme",
    "bool": "bol",
    "phone": "phn",
    "single_select": "str",
    "multi_select": "sst",
    "link": "str",
    "object": "obj",
}


class ApiError(Exception):
    """A request Ortto refuses as a whole (HTTP 4xx), with Ortto's message."""

    def __init__(
        self, message: str, status: int = 400, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


class _Invalid(Exception):
    """One record Ortto rejects; the rest of its request still goes through."""


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
        ]
    ),
    bulk_keys={
        "archive": ("scheduled_contacts", "archived_contacts"),
        "restore": ("scheduled_contacts", "archived_contacts"),
        "delete": ("scheduled_contacts", "deleted_contacts"),
    },
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
)
# The legacy /v1/organizations/merge path: account records under older key names.
ORGANIZATION = replace(ACCOUNT, body_key="organizations", result_id_key="organization_id")
KINDS = {"person": PERSON, "account": ACCOUNT, "organization": ORGANIZATION}

# Bulk action -> (archived state a record must have to be affected, state after; None = gone).
_ACTIONS: dict[str, tuple[bool, bool | None]] = {
    "archive": (False, True),
    "restore": (True, False),
    "delete": (True, None),
}

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DIGITS_RE = re.compile(r"\d{1,15}")
_E164_RE = re.compile(r"\+\d{4,15}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(limit: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and len(value) <= limit


def _is_date(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("timezone"), str):
        return False
    parts = [value.get(key) for key in ("year", "month", "day")]
    if not all(_is_int(part) for part in parts):
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


# Field ID prefix -> (check, what the value must be).
_VALUE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (_is_text(255), "a string of at most 255 characters"),
    "txt": (_is_text(4000), "a string of at most 4000 characters"),
    "int": (_is_int, "an integer"),
    "bol": (lambda v: isinstance(v, bool), "a boolean"),
    "dtz": (_is_date, "a date object with integer year, month, day and a string timezone"),
    "tme": (_is_datetime, "an ISO 8601 date-time string"),
    "phn": (_is_phone, 'a phone object {"c", "n"} or {"phone", "parse_with_country_code"}'),
    "geo": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str), 'a {"name": …}'),
    "sst": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a string list"),
    "obj": (lambda v: isinstance(v, dict), "an object"),
}
_FIELD_CHECKS = {
    EMAIL: (lambda v: isinstance(v, str) and bool(_EMAIL_RE.fullmatch(v)), "an email address")
}

# How an audience subscription entry names its person: key, field ID, person_status.
_PERSON_REFS = (
    ("person_id", PERSON.id_field, "by-id"),
    ("email", EMAIL, "merged"),
    ("external_id", EXTERNAL_ID, "merged"),
)

# Every key of an audience in /v1/audiences/get, as recorded; the rest are filled per audience.
_AUDIENCE_TEMPLATE: dict[str, Any] = {
    "id": None,
    "instance_id": "sandbox",
    "folder_id": None,
    "data_source_id": NO_ID,
    "icon_id": "audiences-illustration-icon",
    "type": "permanent",
    "building": False,
    "ready": True,
    "is_public": False,
    "sms_is_public": False,
    "sms_public_name": "",
    "sms_public_description": "",
    "filter": None,
    "filter_sha": "",
    "last_built_at": None,
    "new_filter": None,
    "new_filter_sha": "",
    "last_used": None,
    "created": None,
    "created_by_id": "",
    "created_by_name": "",
    "edited_at": None,
    "name": None,
    "public_name": "",
    "public_description": "",
    "template_id": NO_ID,
    "exit_selection": "",
    "new_exit_criteria_filter": None,
    "ds_destinations": None,
    "sms_opted_in": 0,
    "subscribers": 0,
    "members": 0,
    "added_last_30_days": 0,
    "engagement": 0,
    "revenue": 0,
    "is_cold": False,
}


def kebab(name: str) -> str:
    """Ortto's custom field slug: the name in lower kebab-case."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _slug(field_id: str) -> str:
    return field_id.split(":", 2)[-1]


def _index_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int_option(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if not _is_int(value) or not low <= value <= high:
        raise ApiError(f"{key} must be an integer from {low} to {high}")
    return value


def _choice(body: dict[str, Any], key: str, allowed: tuple[int, ...], default: int) -> int:
    value = body.get(key, default)
    if not _is_int(value) or value not in allowed:
        raise ApiError(f"{key} must be one of {', '.join(map(str, allowed))}")
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(f"{key} must be a boolean")
    return value


def _batch(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(f"{key} must be an array of 1 to {MAX_BATCH} items")
    return items


@dataclass
class Record:
    """One person or account as the CDP holds it."""

    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    location: dict[str, Any] | None = None
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "id": self.id,
                "fields": self.fields,
                "tags": sorted(self.tags),
                "location": self.location,
                "archived": self.archived,
            }
        )


@dataclass
class CustomField:
    """A custom field in the instance's schema; merges may only use registered ones."""

    id: str
    name: str
    display_type: str
    tracked: bool = True
    values: list[str] | None = None


@dataclass
class Subscription:
    """One person's subscription state in one audience."""

    subscribed: bool
    sms_opted_in: bool = False


@dataclass
class Audience:
    """An audience; `member_emails` None means every non-archived person is a member."""

    id: str
    name: str
    created: str
    member_emails: frozenset[str] | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def has_member(self, person: Record) -> bool:
        if person.archived:
            return False
        email = person.fields.get(EMAIL)
        return self.member_emails is None or (
            isinstance(email, str) and email.lower() in self.member_emails
        )


@dataclass(frozen=True)
class _MergeOptions:
    merge_by: tuple[str, ...]
    strategy: int
    find: int
    skip_non_existing: bool
    is_async: bool
    by_id: bool


@dataclass
class _Table:
    """The records of one kind, their custom field schema and a value index for look-ups."""

    kind: Kind
    field_limit: int
    records: dict[str, Record] = field(default_factory=dict)
    custom: dict[str, CustomField] = field(default_factory=dict)
    index: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def knows(self, field_id: str) -> bool:
        return field_id in self.kind.builtins or field_id in self.custom

    def check_field(self, field_id: str, value: Any) -> None:
        if not self.knows(field_id):
            raise _Invalid(
                f"failed to validate field {field_id} in schema: {field_id}: Object not found"
            )
        check, expected = _FIELD_CHECKS.get(field_id) or _VALUE_TYPES[field_id.split(":")[0]]
        if value is not None and not check(value):
            raise _Invalid(f"failed to validate field {field_id}: value must be {expected}")

    def value(self, record: Record, field_id: str) -> Any:
        return record.id if field_id == self.kind.id_field else record.fields.get(field_id)

    def lookup(self, field_id: str, value: Any) -> Record | None:
        """The oldest non-archived record holding `value` in `field_id`."""
        if field_id == self.kind.id_field:
            ids: Iterable[str] = [value] if isinstance(value, str) else []
        else:
            ids = self.index.get(field_id, {}).get(_index_key(value), ())
        live = [self.records[i] for i in ids if i in self.records and not self.records[i].archived]
        return min(live, key=lambda record: record.id, default=None)

    def set_field(self, record: Record, field_id: str, value: Any) -> None:
        """Set (or with None clear) a field, keeping the index in step."""
        if field_id in record.fields:
            by_value = self.index[field_id]
            key = _index_key(record.fields.pop(field_id))
            by_value[key].discard(record.id)
            if not by_value[key]:
                del by_value[key]
        if value is not None:
            record.fields[field_id] = value
            self.index.setdefault(field_id, {}).setdefault(_index_key(value), set()).add(record.id)

    def remove(self, record: Record) -> None:
        for field_id in list(record.fields):
            self.set_field(record, field_id, None)
        del self.records[record.id]

    def live(self) -> list[Record]:
        return [record for record in self.records.values() if not record.archived]


P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], R]:
    """Run a Store method under the store's single lock."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Store:
    """The CDP state and Ortto's rules for changing and reading it."""

    def __init__(self, *, person_field_limit: int = 100, account_field_limit: int = 25) -> None:
        self._lock = threading.RLock()
        self._limits = {PERSON.table: person_field_limit, ACCOUNT.table: account_field_limit}
        self._ids = itertools.count(1)
        self.reset()

    @_locked
    def reset(self) -> None:
        """Forget everything: records, custom fields, audiences, suppressions."""
        self._tables = {
            kind.table: _Table(kind, self._limits[kind.table]) for kind in (PERSON, ACCOUNT)
        }
        self._audiences: dict[str, Audience] = {}
        self._suppressed: set[str] = set()

    def _table(self, kind: str) -> _Table:
        return self._tables[KINDS[kind].table]

    def _new_id(self, kind: Kind) -> str:
        return f"{kind.id_prefix}{int(time.time()):08x}{next(self._ids):012x}00"

    # ----- readable state for tests and tools (copies, safe to keep) -----

    @property
    @_locked
    def people(self) -> dict[str, Record]:
        """Every person by ID, archived ones included (see `Record.archived`)."""
        return copy.deepcopy(self._tables[PERSON.table].records)

    @property
    @_locked
    def accounts(self) -> dict[str, Record]:
        """Every account by ID, archived ones included."""
        return copy.deepcopy(self._tables[ACCOUNT.table].records)

    @property
    @_locked
    def audiences(self) -> list[Audience]:
        return copy.deepcopy(list(self._audiences.values()))

    @_locked
    def find(self, kind: str, field_id: str, value: Any) -> Record | None:
        """The non-archived record a merge by `field_id` would match, as a copy."""
        return copy.deepcopy(self._table(kind).lookup(field_id, value))

    def find_person(self, email: str) -> Record | None:
        return self.find("person", EMAIL, email)

    def find_account(self, name: str) -> Record | None:
        return self.find("account", "str:o:name", name)

    @_locked
    def custom_fields(self, kind: str) -> list[CustomField]:
        return copy.deepcopy(list(self._table(kind).custom.values()))

    @_locked
    def subscriptions(self, audience_id: str) -> dict[str, Subscription]:
        """Subscription state in one audience, by person ID."""
        return copy.deepcopy(self._audiences[audience_id].subscriptions)

    @_locked
    def snapshot(self) -> dict[str, Any]:
        """Everything the store holds, as JSON (for /_sandbox/state)."""
        people = self._tables[PERSON.table]
        return {
            "people": [record.to_json() for record in people.records.values()],
            "accounts": [
                record.to_json() for record in self._tables[ACCOUNT.table].records.values()
            ],
            "custom_fields": {
                table.kind.table: [asdict(custom) for custom in table.custom.values()]
                for table in self._tables.values()
            },
            "audiences": [
                {
                    "id": audience.id,
                    "name": audience.name,
                    "member_emails": None
                    if audience.member_emails is None
                    else sorted(audience.member_emails),
                    "members": sum(audience.has_member(p) for p in people.records.values()),
                    "subscriptions": [
                        {
                            "person_id": person_id,
                            "email": people.records[person_id].fields.get(EMAIL),
                            **asdict(subscription),
                        }
                        for person_id, subscription in audience.subscriptions.items()
                    ],
                }
                for audience in self._audiences.values()
            ],
            "suppressed": sorted(self._suppressed),
        }

    # ----- seeding -----

    @_locked
    def suppress(self, email: str) -> None:
        """Put an email on the suppression list: new people with it are refused."""
        self._suppressed.add(email.lower())

    @_locked
    def add_custom_field(
        self,
        kind: str,
        field_id: str,
        name: str,
        display_type: str = "text",
        *,
        tracked: bool = True,
        values: list[str] | None = None,
    ) -> CustomField:
        """Register a custom field (no limit check: seeding may exceed the plan)."""
        table = self._table(kind)
        parts = field_id.split(":")
        if len(parts) != 3 or parts[0] not in _VALUE_TYPES or parts[1] != table.kind.custom_ns:
            expected = f"<type>:{table.kind.custom_ns}:<name>"
            raise ApiError(f"invalid custom field ID {field_id}: expected {expected}")
        if any(
            _slug(f.id) == parts[2] or f.name.lower() == name.lower() for f in table.custom.values()
        ):
            raise ApiError(f"custom field already exists: {name}")
        custom = CustomField(field_id, name, display_type, tracked, values)
        table.custom[field_id] = custom
        return copy.deepcopy(custom)

    @_locked
    def add_audience(self, name: str, member_emails: Iterable[str] | None = None) -> str:
        """Create an audience and return its ID; members: everyone, or just these emails."""
        if not isinstance(name, str) or not name:
            raise ApiError("audience name is required")
        members = None if member_emails is None else frozenset(e.lower() for e in member_emails)
        audience = Audience(uuid.uuid4().hex[:24], name, _now(), members)
        self._audiences[audience.id] = audience
        return audience.id

    # ----- the API -----

    @_locked
    def merge(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/person/merge, /v1/accounts/merge, /v1/organizations/merge."""
        merge_kind = KINDS[kind]
        table = self._table(kind)
        items = copy.deepcopy(_batch(body, merge_kind.body_key))  # stored values own no input
        options = self._merge_options(table, merge_kind, body)
        results = [self._merge_one(table, merge_kind, item, options) for item in items]
        failures = [result for result in results if "error" in result]
        if len(failures) == len(results):
            message = f"{merge_kind.no_valid_message} ({failures[0]['error']})"
            raise ApiError(message, details=failures)
        if options.is_async:
            results = [r if "error" in r else {"status": "queued"} for r in results]
        return {merge_kind.body_key: results}

    @staticmethod
    def _merge_options(table: _Table, kind: Kind, body: dict[str, Any]) -> _MergeOptions:
        merge_by = body.get("merge_by", kind.default_merge_by)
        if merge_by is None:
            raise ApiError("merge_by is required")
        if (
            not isinstance(merge_by, list | tuple)
            or not 1 <= len(merge_by) <= 2
            or not all(isinstance(f, str) for f in merge_by)
        ):
            raise ApiError("merge_by must be an array of 1 or 2 field IDs")
        for field_id in merge_by:
            if not table.knows(field_id):
                raise ApiError(f"merge_by field {field_id} not found")
        if kind.id_field in merge_by and len(merge_by) > 1:
            raise ApiError(f"{kind.id_field} must be the only merge_by field")
        return _MergeOptions(
            merge_by=tuple(merge_by),
            strategy=_choice(body, "merge_strategy", (APPEND, OVERWRITE, IGNORE), OVERWRITE),
            find=_choice(body, "find_strategy", (ANY, NEXT_IF_EMPTY, ALL), ANY),
            skip_non_existing=_flag(body, "skip_non_existing"),
            is_async=_flag(body, "async"),
            by_id=list(merge_by) == [kind.id_field],
        )

    def _merge_one(
        self, table: _Table, kind: Kind, item: Any, options: _MergeOptions
    ) -> dict[str, Any]:
        try:
            fields = self._valid_fields(table, item, options)
            existing = self._find(table, fields, options)
        except _Invalid as invalid:
            return {"status": "invalid", "error": str(invalid)}
        if existing is not None:
            if options.strategy == IGNORE:
                return {kind.result_id_key: existing.id, "status": "ignored"}
            self._apply(table, existing, item, options.strategy)
            return {kind.result_id_key: existing.id, "status": "merged"}
        if options.skip_non_existing:
            return {"status": "ignored"}
        email = fields.get(EMAIL)
        if isinstance(email, str) and email.lower() in self._suppressed:
            return {"status": "suppressed", "error": "Email is suppressed"}
        record = Record(self._new_id(table.kind))
        table.records[record.id] = record
        self._apply(table, record, item, OVERWRITE)
        return {kind.result_id_key: record.id, "status": "created"}

    @staticmethod
    def _valid_fields(table: _Table, item: Any, options: _MergeOptions) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("fields"), dict):
            raise _Invalid("fields must be an object")
        for key in ("tags", "unset_tags"):
            tags = item.get(key, [])
            if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
                raise _Invalid(f"{key} must be an array of strings")
        if not isinstance(item.get("location", {}), dict | None):
            raise _Invalid("location must be an object")
        fields: dict[str, Any] = item["fields"]
        for field_id, value in fields.items():
            table.check_field(field_id, value)
        identity = table.kind.identity_fields
        required = options.merge_by if options.by_id or not identity else identity
        if all(fields.get(field_id) is None for field_id in required):
            raise _Invalid(f"a value for {' or '.join(required)} is required")
        return fields

    @staticmethod
    def _find(table: _Table, fields: dict[str, Any], options: _MergeOptions) -> Record | None:
        if options.by_id:
            found = table.lookup(table.kind.id_field, fields[table.kind.id_field])
            if found is None:
                raise _Invalid(f"{table.kind.table} not found: {fields[table.kind.id_field]}")
            return found
        keys = [(f, fields[f]) for f in options.merge_by if fields.get(f) is not None]
        if options.find == NEXT_IF_EMPTY:
            keys = keys[:1]
        matches = [table.lookup(field_id, value) for field_id, value in keys]
        if options.find == ALL:
            same = bool(matches) and all(m is not None and m is matches[0] for m in matches)
            return matches[0] if same else None
        return next((match for match in matches if match is not None), None)

    @staticmethod
    def _apply(table: _Table, record: Record, item: dict[str, Any], strategy: int) -> None:
        """Write a validated item into a record: overwrite (2) or fill empty fields (1)."""
        for field_id, value in item["fields"].items():
            if field_id == table.kind.id_field:
                continue
            if strategy == OVERWRITE or (value is not None and field_id not in record.fields):
                table.set_field(record, field_id, value)
        record.tags.update(item.get("tags", []))
        record.tags.difference_update(item.get("unset_tags", []))
        location = item.get("location")
        if location is not None and (strategy == OVERWRITE or record.location is None):
            record.location = location

    @_locked
    def get_custom_fields(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/{person,accounts}/custom-field/get: person entries wrapped, account flat."""
        table = self._table(kind)
        return {"fields": [self._custom_field_json(table.kind, f) for f in table.custom.values()]}

    @staticmethod
    def _custom_field_json(kind: Kind, custom: CustomField) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": custom.id,
            "name": custom.name,
            "display_type": custom.display_type,
            "liquid_name": kind.liquid_prefix + _slug(custom.id),
        }
        if custom.values is not None:
            data["dic_items"] = list(custom.values)
        return {"field": data, "tracked_value": custom.tracked} if kind.wrapped_fields else data

    @_locked
    def create_custom_field(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/{person,accounts}/custom-field/create."""
        table = self._table(kind)
        name, field_type, values = body.get("name"), body.get("type"), body.get("values")
        if not isinstance(name, str) or not kebab(name):
            raise ApiError("name is required")
        if field_type not in CUSTOM_FIELD_TYPES:
            raise ApiError(f"unknown field type: {field_type}")
        if values is not None and (
            not isinstance(values, list) or not all(isinstance(v, str) for v in values)
        ):
            raise ApiError("values must be an array of strings")
        if field_type == "multi_select" and not values:
            raise ApiError("multi_select fields need values")
        if len(table.custom) >= table.field_limit:
            raise ApiError(
                f"custom field limit reached: this plan allows {table.field_limit} "
                f"{table.kind.table} custom fields"
            )
        select_values = values if field_type.endswith("_select") else None
        custom = self.add_custom_field(
            kind,
            f"{CUSTOM_FIELD_TYPES[field_type]}:{table.kind.custom_ns}:{kebab(name)}",
            name,
            field_type,
            tracked=body.get("track_changes") is True,
            values=select_values,
        )
        answer = {"name": custom.name, "field_id": custom.id, "display_type": custom.display_type}
        return answer if select_values is None else {**answer, "values": select_values}

    @_locked
    def get_audiences(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        """POST /v1/audiences/get: a bare array, or null when nothing matches."""
        term = body.get("search_term") or ""
        if not isinstance(term, str):
            raise ApiError("search_term must be a string")
        limit = min(_int_option(body, "limit", MAX_AUDIENCE_PAGE, 1, 10**6), MAX_AUDIENCE_PAGE)
        offset = _int_option(body, "offset", 0, 0, 10**9)
        found = [a for a in self._audiences.values() if term.lower() in a.name.lower()]
        return [self._audience_json(a) for a in found[offset : offset + limit]] or None

    def _audience_json(self, audience: Audience) -> dict[str, Any]:
        members = [p for p in self._tables[PERSON.table].records.values() if audience.has_member(p)]
        states = [audience.subscriptions.get(p.id) for p in members]
        return {
            **_AUDIENCE_TEMPLATE,
            "id": audience.id,
            "name": audience.name,
            **dict.fromkeys(
                ("created", "last_built_at", "last_used", "edited_at"), audience.created
            ),
            "members": len(members),
            "subscribers": sum(bool(s and s.subscribed) for s in states),
            "sms_opted_in": sum(bool(s and s.sms_opted_in) for s in states),
        }

    @_locked
    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /v1/audience/subscribe: only existing members' subscriptions change."""
        audience_id = body.get("audience_id")
        audience = self._audiences.get(audience_id) if isinstance(audience_id, str) else None
        if audience is None:
            raise ApiError("audience not found")
        entries = _batch(body, "people")
        results = [self._subscribe_one(audience, entry) for entry in entries]
        if _flag(body, "async"):
            queued = {"person_status": "queued", "status": "queued"}
            results = [r if r["status"] == "invalid" else queued for r in results]
        return {"audience_id": audience.id, "people": results}

    def _subscribe_one(self, audience: Audience, entry: Any) -> dict[str, Any]:
        ref = next((r for r in _PERSON_REFS if isinstance(entry, dict) and entry.get(r[0])), None)
        subscribed = entry.get("subscribed", True) if isinstance(entry, dict) else None
        sms = entry.get("sms_opted_in") if isinstance(entry, dict) else None
        if ref is None or not isinstance(subscribed, bool) or not isinstance(sms, bool | None):
            error = "each person needs email, person_id or external_id; flags must be booleans"
            return {"person_status": "invalid", "status": "invalid", "error": error}
        key, field_id, person_status = ref
        person = self._tables[PERSON.table].lookup(field_id, entry[key])
        if person is None:
            return {"person_status": "not-found", "status": "not-found"}
        found_id = {} if key == "person_id" else {"person_id": person.id}
        if not audience.has_member(person):
            return {"person_status": person_status, "status": "not-a-member", **found_id}
        state = audience.subscriptions.setdefault(person.id, Subscription(subscribed))
        state.subscribed = subscribed
        if sms is not None:
            state.sms_opted_in = sms
        status = "subscribed" if subscribed else "unsubscribed"
        return {"person_status": person_status, "status": status, **found_id}

    @_locked
    def bulk(self, kind: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT archive / PUT restore / DELETE delete with inclusion_ids (delete: archived only)."""
        table = self._table(kind)
        ids = _batch(body, "inclusion_ids")
        if not all(isinstance(i, str) for i in ids):
            raise ApiError("inclusion_ids must be an array of record IDs")
        wanted, after = _ACTIONS[action]
        chosen = [
            table.records[i]
            for i in dict.fromkeys(ids)
            if i in table.records and table.records[i].archived == wanted
        ]
        for record in chosen:
            if after is None:
                table.remove(record)
                for audience in self._audiences.values():
                    audience.subscriptions.pop(record.id, None)
            else:
                record.archived = after
        scheduled_key, count_key = table.kind.bulk_keys[action]
        return {scheduled_key: 0, count_key: len(chosen)}

    @_locked
    def get_records(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/person/get, /v1/accounts/get: non-archived records, requested fields only."""
        table = self._table(kind)
        limit = _int_option(body, "limit", 100, 1, MAX_READ_PAGE)
        offset = _int_option(body, "offset", 0, 0, 10**9)
        wanted = body.get("fields", [])
        if not isinstance(wanted, list) or not all(isinstance(f, str) for f in wanted):
            raise ApiError("fields must be an array of field IDs")
        matches = self._filter(table, body.get("filter"))
        live = table.live()
        hits = [record for record in live if matches(record)]
        page = hits[offset : offset + limit]
        rows = [
            {
                "id": record.id,
                "fields": {f: v for f in wanted if (v := table.value(record, f)) is not None},
            }
            for record in page
        ]
        totals = {
            "total_contacts": 0,
            "total_organizations": 0,
            table.kind.meta_total_key: len(live),
        }
        return {
            table.kind.read_key: rows or None,
            "meta": {
                **totals,
                "total_matches": len(hits),
                "total_subscribers": sum(r.fields.get("bol::p") is True for r in live),
            },
            "offset": offset,
            "next_offset": offset + len(page),
            "cursor_id": page[-1].id if page else NO_ID,
            "has_more": offset + len(page) < len(hits),
        }

    @staticmethod
    def _filter(table: _Table, spec: Any) -> Callable[[Record], bool]:
        if spec is None:
            return lambda record: True
        condition = spec.get("$str::is") if isinstance(spec, dict) and len(spec) == 1 else None
        if not isinstance(condition, dict) or not isinstance(condition.get("field_id"), str):
            raise ApiError('unsupported filter: the sandbox implements {"$str::is": {...}} only')
        field_id, value = condition["field_id"], condition.get("value")
        return lambda record: table.value(record, field_id) == value

"""In-memory model of an Ortto CDP: the rules the sandbox server answers with.

No HTTP here. Each API method takes the parsed JSON body of an Ortto request and returns the
JSON body Ortto answers with, or raises `ApiError` when Ortto refuses the whole request.
`Store` only ties the concept modules (records, custom fields, audiences) into one instance
and routes by kind. One re-entrant lock guards all state, which makes every public method
thread-safe; state it hands out is copied.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, Concatenate, ParamSpec, TypeVar

from . import links
from .activities import Activities
from .audiences import Audience, Audiences, Subscription
from .body import ApiError
from .custom_fields import CustomField, CustomFields
from .fields import ACCOUNT, EMAIL, KINDS, PERSON
from .records import Record, Table

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
            kind.table: Table(kind, CustomFields(kind, self._limits[kind.table]), self._ids)
            for kind in (PERSON, ACCOUNT)
        }
        self._audiences = Audiences(self._tables[PERSON.table])
        people = self._tables[PERSON.table]
        self._activities = Activities(
            people.custom,
            merge_person=self._activity_person,
            person_exists=lambda person_id: people.lookup(PERSON.id_field, person_id) is not None,
        )
        self._suppressed: set[str] = set()
        # Ortto may only schedule an archive (`scheduled_contacts`); the sandbox does so
        # while this is set, until `archive_scheduled()`.
        self.schedule_archives = False

    def _table(self, kind: str) -> Table:
        return self._tables[KINDS[kind].table]

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
        return copy.deepcopy(list(self._audiences.by_id.values()))

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
        return copy.deepcopy(list(self._table(kind).custom.by_id.values()))

    @_locked
    def subscriptions(self, audience_id: str) -> dict[str, Subscription]:
        """Subscription state in one audience, by person ID."""
        return copy.deepcopy(self._audiences.by_id[audience_id].subscriptions)

    @_locked
    def snapshot(self) -> dict[str, Any]:
        """Everything the store holds, as JSON (for /_sandbox/state)."""
        return {
            "people": [record.to_json() for record in self._tables[PERSON.table].records.values()],
            "accounts": [
                record.to_json() for record in self._tables[ACCOUNT.table].records.values()
            ],
            "custom_fields": {
                table.kind.table: [asdict(custom) for custom in table.custom.by_id.values()]
                for table in self._tables.values()
            },
            "audiences": self._audiences.to_json(),
            # Ortto's built-in Subscribers audience: everyone with email permission.
            "subscribers": sorted(
                str(p.fields.get(EMAIL))
                for p in self._tables[PERSON.table].live()
                if p.fields.get("bol::p") is True
            ),
            "suppressed": sorted(self._suppressed),
            **self._activities.to_json(),
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
        custom = self._table(kind).custom.add(
            field_id, name, display_type, tracked=tracked, values=values
        )
        return copy.deepcopy(custom)

    @_locked
    def add_audience(self, name: str, member_emails: Iterable[str] | None = None) -> str:
        """Create an audience and return its ID; members: everyone, or just these emails."""
        return self._audiences.add(name, member_emails)

    # ----- the API -----

    @_locked
    def merge(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/person/merge, /v1/accounts/merge, /v1/organizations/merge."""
        return self._table(kind).merge(KINDS[kind], body, self._suppressed)

    @_locked
    def get_custom_fields(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/{person,accounts}/custom-field/get."""
        return self._table(kind).custom.get()

    @_locked
    def create_custom_field(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/{person,accounts}/custom-field/create."""
        return self._table(kind).custom.create(body)

    @_locked
    def get_audiences(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        """POST /v1/audiences/get."""
        return self._audiences.get(body)

    @_locked
    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /v1/audience/subscribe."""
        return self._audiences.subscribe(body)

    @_locked
    def archive_scheduled(self) -> None:
        """Carry out every archive that was only scheduled."""
        for table in self._tables.values():
            table.archive_scheduled()

    @_locked
    def bulk(self, kind: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT archive / PUT restore / DELETE delete; a deleted person leaves every audience."""
        answer, deleted = self._table(kind).bulk(action, body, self.schedule_archives)
        for record_id in deleted:
            self._audiences.forget(record_id)
        links.unlink_gone(self._tables[PERSON.table], self._tables[ACCOUNT.table])
        return answer

    @_locked
    def contacts(self, keys: tuple[str, ...], action: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /v1/accounts/contacts/add|remove, /v1/organizations/contacts/add|remove."""
        people, accounts = self._tables[PERSON.table], self._tables[ACCOUNT.table]
        return links.contacts(people, accounts, keys, action, body)

    @_locked
    def account_of(self, person_id: str) -> str | None:
        """The ID of the account a person is linked to (`idt::o`), if any."""
        person = self._tables[PERSON.table].records.get(person_id)
        return None if person is None else person.fields.get(links.ACCOUNT_FIELD)

    @_locked
    def get_records(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/person/get, /v1/accounts/get."""
        return self._table(kind).get(body)

    # ----- activities (activities.py) -----

    def _activity_person(self, fields: dict[str, Any], merge_by: list[str]) -> str | None:
        """An activity's person by `fields` + `merge_by`: merged, or created with Ortto's
        defaults (subscribed); no suppression check (undocumented for activities)."""
        body = {"people": [{"fields": fields}], "merge_by": merge_by}
        try:
            answer = self._tables[PERSON.table].merge(PERSON, body, ())
        except ApiError:
            return None
        return answer["people"][0].get("person_id")

    @_locked
    def add_activity_definition(self, name: str, attributes: dict[str, str]) -> str:
        """Seed a custom activity (attribute name -> display type); returns its ID."""
        return self._activities.add_definition(name, attributes).id

    @_locked
    def set_activity_limit(self, limit: int) -> None:
        """How many custom activities the plan lets the API create."""
        self._activities.limit = limit

    @_locked
    def activities_of(self, person_id: str) -> list[dict[str, Any]]:
        """A person's activities, oldest first (copies)."""
        return copy.deepcopy(self._activities.of(person_id))

    @property
    @_locked
    def activity_definitions(self) -> dict[str, dict[str, Any]]:
        return {d.id: d.to_json() for d in self._activities.definitions.values()}

    @property
    @_locked
    def dropped_activities(self) -> list[tuple[str, Any]]:
        """Activities answered `queued` and then not kept, with why (tests only)."""
        return copy.deepcopy(self._activities.dropped)

    @_locked
    def instance_schema(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/instance-schema/get."""
        return self._activities.schema(body)

    @_locked
    def create_activity_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/definitions/activity/create."""
        return self._activities.create_definition(body)

    @_locked
    def create_activities(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/activities/create."""
        return self._activities.create(body)

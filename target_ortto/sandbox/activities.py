"""Activities: custom activity definitions, the instance schema that lists them, and events
on people's timelines, with what Ortto documents and the worst it plausibly does.

Sources (ortto-api.md "Activities", "Reads", "Consent"; recorded/activities-create/,
recorded/activity-definition-create/, recorded/instance-schema-get/):
- `/v1/activities/create` answers `queued` to everything, malformed bodies included; here
  an event Ortto could not keep (unknown definition or attribute, bad value, over 16 kB,
  over the daily cap, a duplicate key + created, an unknown person) is then silently
  dropped — the worst plausible Ortto — and noted in `dropped` for tests only.
- a person an activity creates (by `fields` + `merge_by`) is email-subscribed by default.
- a definition's duplicate name is refused with 423; creating one is plan-limited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .body import ApiError, batch
from .custom_fields import CUSTOM_FIELD_TYPES, CustomFields
from .fields import kebab, value_error

MAX_ATTRIBUTES = 15  # a-235
MAX_ACTIVITY_BYTES = 16_000  # a-235: 16 kB an activity
DAILY_CAP = 50  # a-235: events of one activity per person per 24 h
DAY = 24 * 3600.0

# (fields, merge_by) -> the person's ID, created (subscribed by default) if needed, or None.
MergePerson = Callable[[dict[str, Any], list[str]], str | None]
FindPerson = Callable[[str], bool]


@dataclass
class Definition:
    """A custom activity: `act:cm:<name>` and its attributes by field ID."""

    id: str
    name: str
    attributes: dict[str, dict[str, str]]  # field ID -> {name, display_type}
    state: str = "awaiting_implementation"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "display_type": "activity",
            "state": self.state,
            "attributes": [
                {
                    "id": field_id,
                    "name": a["name"],
                    "display_type": a["display_type"],
                    "liquid_name": f"activity.custom.{self.name}.{a['name']}",
                }
                for field_id, a in self.attributes.items()
            ],
        }


@dataclass
class Event:
    """One activity kept on a person's timeline."""

    activity_id: str
    person_id: str
    created: str | None
    key: str | None
    attributes: dict[str, Any]
    received: float

    def to_json(self) -> dict[str, Any]:
        return {
            "activity_id": self.activity_id,
            "person_id": self.person_id,
            "created": self.created,
            "key": self.key,
            "attributes": self.attributes,
        }


class _Dropped(Exception):
    """An event Ortto answered `queued` for, and then did not keep."""


@dataclass
class Activities:
    """The instance's custom activities and the events kept; `limit` is the plan's cap."""

    person_fields: CustomFields
    merge_person: MergePerson
    person_exists: FindPerson
    limit: int = 20
    definitions: dict[str, Definition] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    dropped: list[tuple[str, Any]] = field(default_factory=list)  # (why, activity)
    clock: Callable[[], float] = time.time
    _keys: set[str] = field(default_factory=set)  # (activity, key, created) kept
    _recent: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # sent times

    # ----- definitions -----

    def add_definition(self, name: str, attributes: dict[str, str]) -> Definition:
        """Register a definition (no plan limit: seeding); attributes: name -> display type."""
        slug = kebab(name)
        if not slug:
            raise ApiError("name is required")
        if f"act:cm:{slug}" in self.definitions:
            raise ApiError(f"custom activity already exists: {name}", status=423)
        found: dict[str, dict[str, str]] = {}
        for attribute, display_type in attributes.items():
            if display_type not in CUSTOM_FIELD_TYPES:
                raise ApiError(f"unknown attribute display_type: {display_type}")
            field_id = f"{CUSTOM_FIELD_TYPES[display_type]}:cm:{kebab(attribute)}"
            found[field_id] = {"name": kebab(attribute), "display_type": display_type}
        definition = Definition(f"act:cm:{slug}", slug, found)
        self.definitions[definition.id] = definition
        return definition

    def create_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/definitions/activity/create, answered as recorded."""
        name, attributes = body.get("name"), body.get("attributes", [])
        if not isinstance(name, str) or not kebab(name):
            raise ApiError("name is required")
        if not isinstance(attributes, list) or not all(
            isinstance(a, dict) and isinstance(a.get("name"), str) for a in attributes
        ):
            raise ApiError("attributes must be an array of {name, display_type}")
        if f"act:cm:{kebab(name)}" not in self.definitions and len(self.definitions) >= (
            self.limit
        ):
            raise ApiError(
                f"custom activity limit reached: this plan allows {self.limit} custom activities"
            )
        wanted = {a["name"]: a.get("display_type", "text") for a in attributes}
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.clock()))
        definition = self.add_definition(name, wanted)
        return {
            "custom_activity": {
                "name": definition.name,
                "activity_field_id": definition.id,
                "state": definition.state,
                "display_mode": body.get("display_style") or {"type": "activity"},
                "attributes": [
                    {
                        "name": a["name"],
                        "field_id": field_id,
                        "display_type": a["display_type"],
                        "liquid_name": f"activity.custom.{definition.name}.{a['name']}",
                    }
                    for field_id, a in definition.attributes.items()
                ],
                **{
                    k: body.get(k)
                    for k in ("icon_id", "track_conversion_value", "touch", "filterable")
                },
                "visible_in_feeds": body.get("visible_in_feeds"),
                "created_by": "Public API",
                "created_at": now,
                "edited_at": now,
            }
        }

    def schema(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/instance-schema/get: `cm` holds custom fields and custom activities."""
        wanted = body.get("namespaces", [])
        if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
            raise ApiError("namespaces must be an array of strings")
        custom: dict[str, Any] = {
            f.id: {"id": f.id, "name": f.name, "display_type": f.display_type}
            for f in self.person_fields.by_id.values()
        }
        custom |= {d.id: d.to_json() for d in self.definitions.values()}
        namespaces = {"cm": {"id": "cm", "fields": custom}, "": {"id": "", "fields": {}}}
        return {"namespaces": {k: v for k, v in namespaces.items() if not wanted or k in wanted}}

    # ----- events -----

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/activities/create: every activity answered `queued`, kept or not."""
        items = batch(body, "activities")
        merge_by = body.get("merge_by") or ["str::email"]
        answers = []
        for item in items:
            answer: dict[str, Any] = {"status": "queued", "person_status": "queued"}
            if isinstance(item, dict) and isinstance(item.get("person_id"), str):
                answer = {"person_id": item["person_id"], **answer}
            try:
                self._keep(item, merge_by)
            except _Dropped as why:
                self.dropped.append((str(why), item))
            answers.append(answer)
        return {"activities": answers}

    def _keep(self, item: Any, merge_by: Any) -> None:
        if not isinstance(item, dict):
            raise _Dropped("not an object")
        definition = self.definitions.get(item.get("activity_id"))  # type: ignore[arg-type]
        if definition is None:
            raise _Dropped(f"unknown activity {item.get('activity_id')!r}")
        if len(json.dumps(item).encode()) > MAX_ACTIVITY_BYTES:
            raise _Dropped("over 16 kB")
        attributes = item.get("attributes") or {}
        if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
            raise _Dropped("attributes must be an object of at most 15")
        for field_id, value in attributes.items():
            if field_id not in definition.attributes:
                raise _Dropped(f"unknown attribute {field_id}")
            if field_id.split(":")[0] not in {"str", "txt", "int", "bol", "dtz", "tme", "sst"}:
                raise _Dropped(f"attribute type of {field_id}")
            error = value_error(field_id, value)
            if error is not None:
                raise _Dropped(f"{field_id}: {error}")
        person_id = self._person(item, merge_by)
        created, key = item.get("created"), item.get("key")
        pair = json.dumps([definition.id, key, created])
        if key is not None and pair in self._keys:
            raise _Dropped("duplicate key and created")  # Ortto deduplicates the pair
        now = self.clock()
        recent = self._recent.setdefault((definition.id, person_id), [])
        recent[:] = [t for t in recent if now - t < DAY]
        if len(recent) >= DAILY_CAP:
            raise _Dropped("over 50 events of one activity per person in 24 h")
        definition.state = "live"  # the state turns live with the first event
        recent.append(now)
        self._keys.add(pair)
        self.events.append(Event(definition.id, person_id, created, key, attributes, now))

    def _person(self, item: dict[str, Any], merge_by: Any) -> str:
        """By `person_id` (then `fields` are ignored), else found or created by `fields` +
        `merge_by` — created people are subscribed, as Ortto does."""
        if isinstance(item.get("person_id"), str):
            if not self.person_exists(item["person_id"]):
                raise _Dropped(f"unknown person {item['person_id']}")
            return item["person_id"]
        fields = item.get("fields")
        if not isinstance(fields, dict) or not isinstance(merge_by, list):
            raise _Dropped("no person_id, and no fields to find the person by")
        person_id = self.merge_person(fields, merge_by)
        if person_id is None:
            raise _Dropped("the person's fields are not valid")
        return person_id

    def of(self, person_id: str) -> list[dict[str, Any]]:
        """A person's activities, oldest first."""
        return [e.to_json() for e in self.events if e.person_id == person_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "activity_definitions": [d.to_json() for d in self.definitions.values()],
            "activities": [e.to_json() for e in self.events],
        }

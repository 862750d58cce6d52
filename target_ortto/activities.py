"""Activity stream records -> Ortto activities (events on a person's timeline). Pure.

Everything a SCHEMA decides is decided in `ActivityPlan.build`: which activity, which column
says when, which columns identify (and update) the person, and which become attributes,
typed exactly as custom fields are. Ortto facts relied on (../shared/reference/ortto-api.md,
"Activities"; Ortto's pages a-271 "create a custom activity event", a-235 "rate limits",
a-631 "understanding activity data"):
- activity IDs are `act:cm:<kebab name>`, attribute IDs `<type>:cm:<kebab name>` (recorded:
  recorded/activity-definition-create/with-attributes.json);
- "same rules and limits as fields" for attribute values (decimals x1000, text <= 255, ...);
- at most 15 attributes and 16 kB an activity; `created` back-dates (ISO 8601), and `key`
  with `created` lets Ortto deduplicate a repeat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from target_ortto.convert import ConversionError
from target_ortto.errors import StreamError
from target_ortto.event_values import activity_id, event_key, iso, parse_created
from target_ortto.field_types import DISPLAY_TYPES, builtin_converter, custom_type, schema_types
from target_ortto.fields import SOURCE_IP_COLUMNS, FieldPlan
from target_ortto.items import Invalid, MergeRecord
from target_ortto.naming import alias_key, kebab_case
from target_ortto.objects import FIELD_ID, PERSON

MAX_ATTRIBUTES = 15  # a-235: 15 attributes an activity
MAX_ACTIVITY_BYTES = 16_000  # a-235: 16 kB an activity (1000 or 1024: the lower is safe)
CREATED_COLUMNS = ("occurred_at", "created_at", "timestamp", "event_time")
ACTIVITY_COLUMN = "activity"
RETENTION = dt.timedelta(days=90)  # a-631: activity data is kept 90 days by default
IDENTITY_FIELDS = ("str::email", "str::ei", "str::person_id")
_JSON = msgspec.json.Encoder(enc_hook=str)
PEOPLE_CACHE = 10_000  # people whose converted columns a sink keeps


@dataclass(frozen=True)
class Attribute:
    """One column sent as an activity attribute."""

    column: str
    field_id: str
    display_type: str
    convert: Any

    @property
    def name(self) -> str:
        """The attribute's name in a definition: its ID's kebab-case name (recorded)."""
        return self.field_id.split(":", 2)[2]


@dataclass
class Activity:
    """One event for one person: what `/v1/activities/create` takes for it."""

    activity_id: str
    event_key: str
    created: str | None
    attributes: dict[str, Any]
    person: MergeRecord  # the person's merge fields; `person.key` identifies them
    location: dict[str, Any] | None = None
    when: dt.datetime | None = field(default=None, compare=False)
    person_ref: str = field(default="", compare=False)  # the person's ledger key (sinks)

    @property
    def key(self) -> tuple[str, str]:
        return (self.activity_id, self.event_key)

    def body(self, person_id: str | None = None) -> dict[str, Any]:
        """By `person_id` (Ortto then ignores `fields`: nothing here can create anyone), or,
        for plans and size checks, with the person's fields."""
        body: dict[str, Any] = {"activity_id": self.activity_id, "attributes": self.attributes}
        if person_id is not None:
            body["person_id"] = person_id
        else:
            body["fields"] = self.person.fields
        if self.created is not None:
            body["created"] = self.created
        body["key"] = self.event_key
        if self.location is not None:
            body["location"] = self.location
        return body


@dataclass(frozen=True)
class ActivityPlan:
    """How one activity stream's records become activities."""

    stream_name: str
    activity: str | None  # from the stream setting; else `activity_column` per row
    activity_column: str | None
    created_column: str | None
    person: FieldPlan
    attributes: tuple[Attribute, ...]
    key_properties: tuple[str, ...]
    source_ip_column: str | None = None

    @property
    def by_person_id(self) -> bool:
        return self.person.merge_by == (PERSON.id_field,)

    @classmethod
    def build(
        cls,
        stream_name: str,
        schema: Mapping[str, Any],
        key_properties: tuple[str, ...],
        *,
        activity: str | None = None,
        created_column: str | None = None,
        field_map: Mapping[str, str | None] | None = None,
        field_types: Mapping[str, str] | None = None,
        merge_by: tuple[str, ...] = (),
        find_strategy: str = "any",
        default_phone_country: str | None = None,
        invalid_phones: str = "reject",
    ) -> ActivityPlan:
        """Decide every column's role, or raise `StreamError` naming the columns."""
        properties: Mapping[str, Any] = schema.get("properties") or {}
        field_map, field_types = field_map or {}, field_types or {}
        where = f"Stream '{stream_name}'"
        for setting, names in (("field_map", field_map), ("field_types", field_types)):
            unknown = sorted(set(names) - set(properties))
            if unknown:
                raise StreamError(
                    f"{where}: {setting} names columns the stream does not have: {unknown}. "
                    f"Its columns are: {sorted(properties)}."
                )
        fixed = None
        if activity:
            try:
                fixed = activity_id(activity)
            except ConversionError as exc:
                raise StreamError(f"{where}: setting 'activity': {exc}.") from None
        columns = [n for n in properties if not n.startswith("_sdc_")]
        activity_column = None
        if fixed is None:
            activity_column = next((n for n in columns if alias_key(n) == ACTIVITY_COLUMN), None)
            if activity_column is None:
                raise StreamError(
                    f"{where}: which activity? Set "
                    f'"streams": {{"{stream_name}": {{"activity": "<activity name>"}}}} '
                    "(e.g. Deal stage changed), or give the stream an 'activity' column naming "
                    "each row's activity."
                )
        created = _created_column(stream_name, properties, created_column)
        person_props: dict[str, Any] = {}
        person_map: dict[str, str | None] = {}
        attributes: list[Attribute] = []
        source_ip = None
        for name in columns:
            if name in (activity_column, created):
                continue
            target = field_map.get(name, name)
            if target is None:
                continue
            if FIELD_ID.match(target):
                namespace = target.split(":")[1]
                if namespace == "" and target in PERSON.builtin_fields:
                    person_props[name], person_map[name] = properties[name], target
                elif namespace == "cm":
                    prefix = target.split(":")[0]
                    display = DISPLAY_TYPES[prefix]
                    if prefix == "int" and "number" in schema_types(properties[name]):
                        display = "decimal"
                    convert = builtin_converter(target, properties[name], lambda v: v)
                    attributes.append(Attribute(name, target, display, convert))
                else:
                    raise StreamError(
                        f"{where}: column '{name}' -> {target} is neither a built-in person "
                        "field (str::first, phn::phone, ...) nor an activity attribute "
                        "(<type>:cm:<name>)."
                    )
            elif alias_key(name) in PERSON.aliases:
                person_props[name] = properties[name]
            elif alias_key(name) in SOURCE_IP_COLUMNS:
                source_ip = name
            else:
                attributes.append(_attribute(stream_name, name, properties[name], field_types))
        person = _person_plan(
            stream_name,
            person_props,
            person_map,
            merge_by=merge_by,
            find_strategy=find_strategy,
            default_phone_country=default_phone_country,
            invalid_phones=invalid_phones,
        )
        _check_attributes(stream_name, attributes)
        return cls(
            stream_name=stream_name,
            activity=fixed,
            activity_column=activity_column,
            created_column=created,
            person=person,
            attributes=tuple(attributes),
            key_properties=tuple(key_properties),
            source_ip_column=source_ip,
        )

    def _person_of(
        self, record: Mapping[str, Any], people: dict[Any, MergeRecord | Invalid] | None
    ) -> MergeRecord | Invalid:
        raw = _person_cache_key(self.person, record) if people is not None else None
        if raw is None or people is None:
            return self.person.apply(record)
        if raw not in people:
            if len(people) >= PEOPLE_CACHE:
                people.clear()
            people[raw] = self.person.apply(record)
        return people[raw]

    def activity_of(self, record: Mapping[str, Any]) -> str:
        """The record's activity ID; raises `ConversionError` when its column cannot say."""
        if self.activity is not None:
            return self.activity
        value = record.get(self.activity_column or "")
        if value in (None, ""):
            raise ConversionError(f"no value in column '{self.activity_column}'")
        return activity_id(value)

    def created_of(self, record: Mapping[str, Any], now: dt.datetime) -> dt.datetime | None:
        if self.created_column is None:
            return None
        value = record.get(self.created_column)
        if value is None:
            raise ConversionError(f"no value in column '{self.created_column}'")
        return parse_created(value, now)

    def apply(
        self,
        record: Mapping[str, Any],
        now: dt.datetime,
        people: dict[Any, MergeRecord | Invalid] | None = None,
    ) -> Activity | Invalid:
        """The record's activity; never raises for bad data, returns `Invalid` instead.

        `people` caches the person part by its raw values (events repeat their person):
        the records it holds are shared, so never changed."""
        person = self._person_of(record, people)
        if isinstance(person, Invalid):
            return person
        try:
            activity = self.activity_of(record)
        except ConversionError as exc:
            return Invalid(f"column '{self.activity_column}': {exc}", self.activity_column)
        try:
            when = self.created_of(record, now)
        except ConversionError as exc:
            return Invalid(f"column '{self.created_column}': {exc}", self.created_column)
        values: dict[str, Any] = {}
        for attribute in self.attributes:
            value = record.get(attribute.column)
            if value is None:
                continue
            try:
                values[attribute.field_id] = attribute.convert(value)
            except ConversionError as exc:
                reason = f"column '{attribute.column}' -> {attribute.field_id}: {exc}"
                return Invalid(reason, attribute.column)
        location = None
        if self.source_ip_column and record.get(self.source_ip_column) is not None:
            location = {"source_ip": str(record[self.source_ip_column])}
        item = Activity(
            activity_id=activity,
            event_key=event_key(record, self.key_properties),
            created=iso(when) if when is not None else None,
            attributes=values,
            person=person,
            location=location,
            when=when,
        )
        size = len(_JSON.encode(item.body()))
        if size > MAX_ACTIVITY_BYTES:
            return Invalid(
                f"the activity is {size} bytes; Ortto takes at most 16 kB an activity (its "
                "attributes and person fields): shorten or drop long columns with a stream map"
            )
        return item


def _person_cache_key(plan: FieldPlan, record: Mapping[str, Any]) -> Any:
    values = tuple(record.get(c.name) for c in plan.columns)
    try:
        hash(values)
    except TypeError:
        return None
    return values


def _created_column(
    stream_name: str, properties: Mapping[str, Any], configured: str | None
) -> str | None:
    if configured:
        if configured not in properties:
            raise StreamError(
                f"Stream '{stream_name}': created_column '{configured}' is not a column of "
                f"the stream. Its columns: {sorted(properties)}."
            )
        return configured
    for wanted in CREATED_COLUMNS:
        for name in properties:
            if alias_key(name) == wanted:
                return name
    return None


def _attribute(
    stream_name: str, column: str, prop: Mapping[str, Any], field_types: Mapping[str, str]
) -> Attribute:
    """An attribute typed exactly as a custom field from the column's schema."""
    name = kebab_case(column)
    if not name:
        raise StreamError(
            f"Stream '{stream_name}': column {column!r} has no letters or digits to name an "
            "activity attribute; map it with field_map or drop it with a stream map."
        )
    try:
        kind = custom_type(column, prop, field_types.get(column))
    except StreamError as exc:
        raise StreamError(f"Stream '{stream_name}': {exc}") from None
    return Attribute(column, f"{kind.prefix}:cm:{name}", kind.display_type, kind.convert)


def _person_plan(
    stream_name: str, props: dict[str, Any], field_map: dict[str, str | None], **options: Any
) -> FieldPlan:
    """The person columns as a people stream would read them (aliases, merge_by, consent
    only by an explicit mapping: spec section 3)."""
    ids = {field_map.get(n) or PERSON.aliases.get(alias_key(n)) or n for n in props}
    if ids.isdisjoint(IDENTITY_FIELDS):
        raise StreamError(
            f"Stream '{stream_name}' is an activity stream but has no email, external_id or "
            "ortto_person_id column to say whose event each row is."
        )
    if not options.get("merge_by") and ids.isdisjoint(("str::email", "str::ei")):
        options["merge_by"] = (PERSON.id_field,)  # Ortto's ID alone: no merge needed
    schema = {"properties": props}
    return FieldPlan.build(PERSON, stream_name, schema, field_map=field_map, **options)


def _check_attributes(stream_name: str, attributes: list[Attribute]) -> None:
    seen: dict[str, str] = {}
    for attribute in attributes:
        if attribute.field_id in seen:
            raise StreamError(
                f"Stream '{stream_name}': columns '{seen[attribute.field_id]}' and "
                f"'{attribute.column}' both become attribute {attribute.field_id}. Map one of "
                "them elsewhere (or to null) in field_map."
            )
        seen[attribute.field_id] = attribute.column
    if len(attributes) > MAX_ATTRIBUTES:
        names = [a.column for a in attributes]
        raise StreamError(
            f"Stream '{stream_name}' would send {len(names)} attributes an activity; Ortto takes "
            f"at most {MAX_ATTRIBUTES}. Columns that become attributes: {names}. Drop some "
            f'with a stream map (e.g. "stream_maps": {{"{stream_name}": {{"{names[-1]}": null}}}}) '
            f'or with streams.{stream_name}.field_map: {{"{names[-1]}": null}}.'
        )

"""Stream schema -> plan: which Ortto field each column becomes, and its converter.

Everything that can be decided from the schema is decided once, in `FieldPlan.build`,
so the per-record work in `FieldPlan.apply` is a loop over prepared converters
(`field_types.py` chooses them, `convert.py` holds them). All functions here are pure:
no I/O, no shared state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from target_ortto.convert import (
    STRING_MAX,
    ConversionError,
    Converter,
    phone_converter,
    phone_region,
    to_string_list,
)
from target_ortto.errors import StreamError
from target_ortto.field_types import DISPLAY_TYPES, builtin_converter, custom_type, schema_types
from target_ortto.items import Invalid, MergeRecord
from target_ortto.naming import alias_key, kebab_case
from target_ortto.objects import (
    CONSENT_FIELDS,
    FIELD_ID,
    FIND_STRATEGIES,
    IDENTITY_FIELDS,
    PERSON,
    OrttoObject,
)

TAGS_COLUMNS = {"tags": "tags", "unset_tags": "unset_tags"}
SOURCE_IP_COLUMNS = frozenset({"source_ip", "ip_address"})
# A record's own country, in which its phone numbers without +country are read (first wins).
COUNTRY_COLUMNS = ("country_code", "country")
COUNTRY_FIELDS = frozenset({"geo::country", "geo:o:country"})


@dataclass(frozen=True)
class Column:
    """One record property and the Ortto field it becomes."""

    name: str
    field_id: str
    convert: Converter
    display_type: str | None = None  # set for custom fields: the type to create them with


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


@dataclass(frozen=True)
class FieldPlan:
    """How one stream's records become Ortto merge records."""

    obj: OrttoObject
    stream_name: str
    columns: tuple[Column, ...]
    merge_by: tuple[str, ...]
    find_strategy: int
    clear_nulls: bool
    tag_columns: Mapping[str, str] = field(default_factory=dict)
    source_ip_column: str | None = None
    country_column: str | None = None  # read phones without +country in the row's country
    drop_invalid_phones: bool = False  # invalid_phones: drop

    @property
    def custom_fields(self) -> tuple[Column, ...]:
        """Columns that go to custom fields, which must exist in Ortto before a write."""
        return tuple(c for c in self.columns if self.obj.is_custom_field(c.field_id))

    @classmethod
    def build(
        cls,
        obj: OrttoObject,
        stream_name: str,
        schema: Mapping[str, Any],
        *,
        field_map: Mapping[str, str | None] | None = None,
        merge_by: tuple[str, ...] = (),
        find_strategy: str = "any",
        clear_nulls: bool = False,
        default_phone_country: str | None = None,
        field_types: Mapping[str, str] | None = None,
        invalid_phones: str = "reject",
        not_fields: frozenset[str] = frozenset(),
    ) -> FieldPlan:
        """Decide every column's field and converter, or raise `StreamError` naming it.

        `not_fields`: columns read for something else (a person's account link), sent as
        no field."""
        field_map = field_map or {}
        phone = phone_converter(default_phone_country)
        properties: Mapping[str, Any] = schema.get("properties") or {}
        field_types = field_types or {}
        for setting, names in (("field_map", field_map), ("field_types", field_types)):
            unknown = sorted(set(names) - set(properties))
            if unknown:
                raise StreamError(
                    f"Stream '{stream_name}': {setting} names columns the stream does not "
                    f"have: {unknown}. Its columns are: {sorted(properties)}."
                )
        columns: list[Column] = []
        named: set[str] = set()  # columns that become custom fields the target names
        tag_columns: dict[str, str] = {}
        source_ip_column = None
        for name, prop in properties.items():
            if name.startswith("_sdc_") or name in not_fields:
                continue
            if name in field_map:
                target = field_map[name]
                if target is None:
                    continue
                columns.append(_explicit_column(obj, stream_name, name, target, prop, phone))
                continue
            if FIELD_ID.match(name):
                columns.append(_explicit_column(obj, stream_name, name, name, prop, phone))
                continue
            key = alias_key(name)
            if key in TAGS_COLUMNS:
                tag_columns[name] = TAGS_COLUMNS[key]
            elif obj is PERSON and key in SOURCE_IP_COLUMNS:
                source_ip_column = name
            elif key in obj.aliases:
                field_id = obj.aliases[key]
                columns.append(Column(name, field_id, builtin_converter(field_id, prop, phone)))
            else:
                columns.append(_custom_column(obj, stream_name, name, prop, field_types.get(name)))
                named.add(name)
        not_custom = sorted(set(field_types) - named)
        if not_custom:
            raise StreamError(
                f"Stream '{stream_name}': field_types names {not_custom}, which do not become "
                "custom fields (mapped by field_map, a field ID, an alias or a special column); "
                "field_types only chooses the type of the custom fields the target names."
            )
        _refuse_duplicates(stream_name, columns)
        sent = {c.field_id for c in columns}
        return cls(
            obj=obj,
            stream_name=stream_name,
            columns=tuple(columns),
            merge_by=_merge_by(obj, stream_name, merge_by, columns, sent),
            find_strategy=FIND_STRATEGIES[find_strategy],
            clear_nulls=clear_nulls,
            tag_columns=tag_columns,
            source_ip_column=source_ip_column,
            country_column=_country_column(properties, columns),
            drop_invalid_phones=invalid_phones == "drop",
        )

    def clearable(self, field_id: str) -> bool:
        """Whether a null may clear the field: never a merge key, never consent."""
        return field_id not in self.merge_by and field_id not in CONSENT_FIELDS

    def apply(self, record: Mapping[str, Any]) -> MergeRecord | Invalid:
        """Convert one record; never raises for bad data, returns `Invalid` instead.

        With `drop_invalid_phones` a phone that cannot be read is left out and named in the
        record's `dropped`, instead of making the record invalid."""
        fields: dict[str, Any] = {}
        dropped: list[str] = []
        for column in self.columns:
            if column.name not in record:
                continue
            value = record[column.name]
            if value is None:
                if self.clear_nulls and self.clearable(column.field_id):
                    fields[column.field_id] = None
                continue
            phone = column.field_id.startswith("phn:")
            try:
                region = self._region(record) if phone else None
                converted = column.convert(value, region) if region else column.convert(value)
                fields[column.field_id] = converted
            except ConversionError as exc:
                reason = f"column '{column.name}' -> {column.field_id}: {exc}"
                if phone and column.field_id not in self.merge_by:
                    if self.drop_invalid_phones:
                        dropped.append(reason)
                        continue
                    reason += (
                        ". To write the person without it: `meltano config set target-ortto "
                        "invalid_phones drop`"
                    )
                return Invalid(reason, column.name, self.key_from(record))
        merged = MergeRecord(key=(), fields=fields, dropped=dropped)
        for column, kind in self.tag_columns.items():
            value = record.get(column)
            if value is not None:
                try:
                    setattr(merged, kind, to_string_list(value))
                except ConversionError as exc:
                    return Invalid(
                        f"column '{column}' -> {kind}: {exc}", column, self.key_of(fields)
                    )
        if self.source_ip_column and record.get(self.source_ip_column) is not None:
            merged.location = {"source_ip": str(record[self.source_ip_column])}
        key = self.key_of(fields)
        if key is None:
            columns = [c.name for c in self.columns if c.field_id in self.merge_by]
            return Invalid(
                f"no value in any merge_by column ({', '.join(columns)} -> "
                f"{', '.join(self.merge_by)}){self._second_key_hint(columns)}",
                columns[0] if columns else None,
            )
        if (
            self.obj is PERSON
            and self.merge_by != (PERSON.id_field,)
            and fields.get("str::email") is None
            and fields.get("str::ei") is None
        ):
            return Invalid("a person needs an email (str::email) or external ID (str::ei)", key=key)
        merged.key = key
        return merged

    def _region(self, record: Mapping[str, Any]) -> str | None:
        """The phone region of the record's own country column, if it names one."""
        if self.country_column is None:
            return None
        return phone_region(record.get(self.country_column))

    def _second_key_hint(self, merge_columns: list[str]) -> str:
        """When another identity column could carry the record: how to merge by it too."""
        room = self.obj.max_merge_by - len(self.merge_by)
        if self.obj.id_field in self.merge_by or room < 1:
            return ""
        others = [
            c.name
            for c in self.columns
            if c.field_id in IDENTITY_FIELDS[self.obj.name] and c.field_id not in self.merge_by
        ][:room]
        if not others:
            return ""
        keys = json.dumps([*merge_columns, *others])
        return (
            f". The stream also has {', '.join(others)}: to merge by it when "
            f"{', '.join(merge_columns)} is empty, run `meltano config set target-ortto "
            f"streams.{self.stream_name}.merge_by '{keys}'` and `meltano config set "
            f"target-ortto streams.{self.stream_name}.find_strategy next_if_empty`"
        )

    def key_from(self, record: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The merge key of a raw record, converting only its merge columns (if they can be)."""
        fields = {}
        for column in self.columns:
            if column.field_id in self.merge_by and record.get(column.name) is not None:
                try:
                    fields[column.field_id] = column.convert(record[column.name])
                except ConversionError:
                    continue
        return self.key_of(fields)

    def key_of(self, fields: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The fold key: records with equal keys are the same Ortto person or account.

        With find strategies `any` and `next_if_empty` Ortto looks a record up by its first
        present merge field, so that is the key; with `all` every merge field counts.
        """
        values = [(f, _hashable(fields.get(f))) for f in self.merge_by]
        # Ortto matches emails case-insensitively; other keys exactly.
        values = [(f, v.lower() if f == "str::email" and v else v) for f, v in values]
        present = [(f, v) for f, v in values if v is not None]
        if not present:
            return None
        if self.find_strategy == FIND_STRATEGIES["all"]:
            return tuple(values)
        return present[0]


def _explicit_column(
    obj: OrttoObject,
    stream_name: str,
    column: str,
    field_id: str,
    prop: Mapping[str, Any],
    phone: Converter,
) -> Column:
    """A column mapped to a field ID by name or field_map: the only way to consent fields."""
    if not FIELD_ID.match(field_id):
        raise StreamError(
            f"Stream '{stream_name}': field_map maps '{column}' to {field_id!r}, which is not "
            "an Ortto field ID (type:namespace:name, e.g. str::first or int:cm:score)."
        )
    namespace = field_id.split(":")[1]
    wrong_object = namespace in ({"o", "oc"} if obj is PERSON else {"", "cm"})
    if wrong_object or (namespace in {"", "o"} and field_id not in obj.builtin_fields):
        raise StreamError(
            f"Stream '{stream_name}': column '{column}' -> {field_id} is not a {obj.name} "
            f"field. Built-in {obj.name} fields: {', '.join(sorted(obj.builtin_fields))}; "
            f"custom ones look like str:{obj.custom_namespace}:<name>."
        )
    display = None
    if obj.is_custom_field(field_id):
        prefix = field_id.split(":")[0]
        display = DISPLAY_TYPES[prefix]
        if prefix == "int" and "number" in schema_types(prop):
            display = "decimal"
    convert = builtin_converter(field_id, prop, phone)
    if display == "text":
        convert = _too_long_hint(convert, f"map '{column}' to a txt: (large text) field instead")
    return Column(column, field_id, convert, display)


def _too_long_hint(convert: Converter, fix: str) -> Converter:
    """`convert` whose reason for text too long for a 255-character field names the fix."""

    def converter(value: Any) -> Any:
        try:
            return convert(value)
        except ConversionError as exc:
            if isinstance(value, str) and len(value) > STRING_MAX:
                raise ConversionError(f"{exc}; to keep it, {fix}") from None
            raise

    return converter


def _custom_column(
    obj: OrttoObject,
    stream_name: str,
    column: str,
    prop: Mapping[str, Any],
    chosen: str | None = None,
) -> Column:
    name = kebab_case(column)
    if not name:
        raise StreamError(
            f"Stream '{stream_name}': column {column!r} has no letters or digits to name an "
            "Ortto field; map it with field_map or drop it with a stream map."
        )
    try:
        kind = custom_type(column, prop, chosen)
    except StreamError as exc:
        raise StreamError(f"Stream '{stream_name}': {exc}") from None
    convert = kind.convert
    if kind.display_type == "text":
        convert = _too_long_hint(
            convert,
            f'set streams.{stream_name}.field_types: {{"{column}": "large_text"}} (a new '
            f"large text field), or map '{column}' to an existing txt: field in field_map",
        )
    return Column(column, obj.custom_field_id(kind.prefix, name), convert, kind.display_type)


def _country_column(properties: Mapping[str, Any], columns: list[Column]) -> str | None:
    """The column holding the record's country: `country_code`, else `country` (any
    spelling the aliases accept), else one mapped to the built-in country field."""
    names = [n for n in properties if not n.startswith("_sdc_")]
    for wanted in COUNTRY_COLUMNS:
        for name in names:
            if alias_key(name) == wanted:
                return name
    return next((c.name for c in columns if c.field_id in COUNTRY_FIELDS), None)


def _refuse_duplicates(stream_name: str, columns: list[Column]) -> None:
    seen: dict[str, str] = {}
    for column in columns:
        if column.field_id in seen:
            raise StreamError(
                f"Stream '{stream_name}': columns '{seen[column.field_id]}' and "
                f"'{column.name}' both become {column.field_id}. Map one of them elsewhere "
                "(or to null) in field_map."
            )
        seen[column.field_id] = column.name


def _merge_by(
    obj: OrttoObject,
    stream_name: str,
    configured: tuple[str, ...],
    columns: list[Column],
    sent: set[str],
) -> tuple[str, ...]:
    by_column = {c.name: c.field_id for c in columns}
    if configured:
        merge_by = tuple(by_column.get(entry, entry) for entry in configured)
    elif obj is PERSON and "str::email" not in sent and "str::ei" in sent:
        merge_by = ("str::ei",)
    else:
        merge_by = obj.default_merge_by
    missing = [f for f in merge_by if f not in sent]
    if missing:
        raise StreamError(
            f"Stream '{stream_name}': merge_by {list(merge_by)} needs "
            f"{', '.join(missing)}, but no column of the stream maps to it. Set "
            f"streams.{stream_name}.merge_by to up to {obj.max_merge_by} of its columns: "
            f"{sorted(by_column)}."
        )
    if len(merge_by) > obj.max_merge_by:
        raise StreamError(
            f"Stream '{stream_name}': merge_by {list(merge_by)} has more than the "
            f"{obj.max_merge_by} fields Ortto takes for {obj.name} merges."
        )
    if obj.id_field in merge_by and len(merge_by) > 1:
        raise StreamError(
            f"Stream '{stream_name}': {obj.id_field} must be the only merge_by field "
            f"(Ortto's rule); got {list(merge_by)}."
        )
    return merge_by

"""A column's JSON schema -> the Ortto field type it becomes, and its value converter.

Spec section 3's table: the type of a custom field comes from the column's schema; a
built-in or explicit field ID brings its own type in its prefix. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from target_ortto.convert import (
    STRING_MAX,
    Converter,
    to_boolean,
    to_date,
    to_datetime,
    to_decimal,
    to_email,
    to_geo,
    to_integer,
    to_long_text,
    to_object,
    to_ortto_id,
    to_string,
    to_string_list,
)
from target_ortto.errors import StreamError
from target_ortto.objects import ORTTO_ID_FIELDS

# Ortto field type -> the `type` its custom-field create endpoint takes.
DISPLAY_TYPES = {
    "str": "text",
    "txt": "large_text",
    "int": "integer",
    "bol": "bool",
    "dtz": "date",
    "tme": "time",
    "sst": "multi_select",
    "phn": "phone",
    "obj": "object",
}


def schema_types(prop: Mapping[str, Any]) -> set[str]:
    """The non-null JSON types a property allows (`type` lists and `anyOf` alike)."""
    types: set[str] = set()
    declared = prop.get("type")
    if isinstance(declared, str):
        types.add(declared)
    elif isinstance(declared, list):
        types.update(declared)
    for option in prop.get("anyOf", []) + prop.get("oneOf", []):
        types |= schema_types(option)
    types.discard("null")
    return types


def _flatten(prop: Mapping[str, Any]) -> dict[str, Any]:
    """One property dict from a nullable `anyOf`/`oneOf` (its non-null options merged)."""
    merged = dict(prop)
    for option in prop.get("anyOf", []) + prop.get("oneOf", []):
        if schema_types(option):
            merged = {**_flatten(option), **merged}
    return merged


@dataclass(frozen=True)
class CustomType:
    """An Ortto type chosen for a column: field ID prefix and custom-field display type."""

    prefix: str
    display_type: str
    convert: Converter


# `streams.<name>.field_types` values: the custom field types the target can create.
CHOSEN_TYPES = {
    "text": CustomType("str", "text", to_string),
    "large_text": CustomType("txt", "large_text", to_long_text),
    "integer": CustomType("int", "integer", to_integer),
    "decimal": CustomType("int", "decimal", to_decimal),
    "bool": CustomType("bol", "bool", to_boolean),
    "date": CustomType("dtz", "date", to_date),
    "time": CustomType("tme", "time", to_datetime),
}


def _string_list(prop: Mapping[str, Any]) -> bool:
    return schema_types(prop.get("items") or {}) <= {"string"}


def _fixes(column: str) -> str:
    return (
        "Send it as text with a stream map (e.g. "
        f'"{column}": "json.dumps({column}) if {column} is not None else None" in '
        "stream_maps; a bare json.dumps writes a NULL as the text 'null'), drop it with "
        f'streams.<stream>.field_map: {{"{column}": null}} (or map it there to an Ortto field '
        "ID), or enable flattening_enabled with flattening_max_depth."
    )


def custom_type(column: str, prop: Mapping[str, Any], chosen: str | None = None) -> CustomType:
    """Spec section 3 table: the Ortto type of a custom field, from the column's schema
    (or from `streams.<name>.field_types` when `chosen` names one)."""
    types = schema_types(prop)
    prop = _flatten(prop)
    # A union that can hold an object or a non-string-list array (tap-postgres `jsonb`)
    # would fail on its first such record: refused here, before any field is created.
    if "object" in types or ("array" in types and not _string_list(prop)):
        shape = (
            f"can hold {sorted(types)} (a JSON column)"
            if len(types) > 1
            else "an object"
            if "object" in types
            else "an array of other than strings"
        )
        if len(types) == 1:
            shape = f"is {shape}"
        raise StreamError(
            f"Column '{column}' {shape}, which has no Ortto field type. {_fixes(column)}"
        )
    if chosen is not None:
        return CHOSEN_TYPES[chosen]
    if "string" in types:
        fmt = prop.get("format")
        if fmt == "date":
            return CustomType("dtz", "date", to_date)
        if fmt == "date-time":
            return CustomType("tme", "time", to_datetime)
        if (prop.get("maxLength") or 0) > STRING_MAX:
            return CustomType("txt", "large_text", to_long_text)
        return CustomType("str", "text", to_string)
    if "number" in types:
        return CustomType("int", "decimal", to_decimal)
    if "integer" in types:
        return CustomType("int", "integer", to_integer)
    if "boolean" in types:
        return CustomType("bol", "bool", to_boolean)
    if types == {"array"} and _string_list(prop):
        return CustomType("sst", "multi_select", to_string_list)
    raise StreamError(
        f"Column '{column}' is of type {sorted(types) or 'unknown'}, which has no Ortto "
        f"field type. {_fixes(column)}"
    )


def builtin_converter(field_id: str, prop: Mapping[str, Any], phone: Converter) -> Converter:
    """A converter for a field ID whose type comes from its prefix (built-ins, explicit IDs)."""
    if field_id == "str::email":
        return to_email
    if field_id in ORTTO_ID_FIELDS:
        return to_ortto_id
    prefix = field_id.split(":", 1)[0]
    if prefix == "int":
        if field_id.split(":")[1] in {"cm", "oc"} and "number" in schema_types(prop):
            return to_decimal
        return to_integer
    return {
        "str": to_string,
        "txt": to_long_text,
        "bol": to_boolean,
        "dtz": to_date,
        "tme": to_datetime,
        "phn": phone,
        "geo": to_geo,
        "sst": to_string_list,
        "obj": to_object,
    }[prefix]

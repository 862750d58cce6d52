"""Record validation against the stream schema that never raises from inside the SDK.

The SDK's validator raises, which ends the run with a traceback and cannot honour
`on_invalid_record: reject`. This one (fastjsonschema: fast, and it checks formats so a
bad date never reaches the SDK's timestamp parser) remembers why a record failed; the
sink asks for that reason and treats the record like any other invalid record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import fastjsonschema
from singer_sdk.helpers._typing import get_datelike_property_type
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_ortto.errors import StreamError

# The parsers the SDK applies to `format` date, date-time and time columns.
_PARSERS = {
    "date": dt.date.fromisoformat,
    "date-time": dt.datetime.fromisoformat,
    "time": dt.time.fromisoformat,
}


class _NoFetch(dict):
    """fastjsonschema fetches a remote `$ref` with urllib for any scheme it has no handler
    for: this claims every scheme and refuses, so a schema never reaches the network."""

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Any:
        def refuse(uri: str) -> Any:
            raise fastjsonschema.JsonSchemaDefinitionException(
                f"it refers to {uri!r}, and target-ortto fetches no schema over the network"
            )

        return refuse


def check_schema(stream_name: str, schema: dict[str, Any]) -> None:
    """Refuse at SCHEMA, naming the column, what the validator would crash on or fetch: a
    `$ref` outside the schema, a `pattern` that is not a regular expression. (The shape of
    the message itself, `properties` an object of objects, is checked as it is read:
    `messages.py`.)"""
    for column, prop in (schema.get("properties") or {}).items():
        where = f"Stream '{stream_name}': column '{column}'"
        for key, value in _walk(prop):
            if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
                raise StreamError(
                    f"{where} refers to {value!r}: target-ortto reads no schema from outside "
                    "the stream's own (nothing is fetched). Inline it in the tap's schema."
                )
            if key == "pattern" and isinstance(value, str):
                _check_pattern(where, value)
            elif key == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    _check_pattern(where, pattern)


def _check_pattern(where: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise StreamError(
            f"{where} has the pattern {pattern!r}, which is not a regular expression "
            f"({exc}). Fix or drop it in the tap's schema."
        ) from None


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) in a schema, however deep, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        items = current.items() if isinstance(current, dict) else enumerate(current)
        for key, value in items:
            yield str(key), value
            if isinstance(value, (dict, list)):
                stack.append(value)


def timestamp_problem(record: dict[str, Any], schema: dict[str, Any]) -> str:
    """Why the SDK could not parse one of the record's date, date-time or time values."""
    for column, value in record.items():
        kind = get_datelike_property_type(schema["properties"].get(column) or {})
        if kind is None or value is None or isinstance(value, (dt.date, dt.time)):
            continue
        try:
            _PARSERS[kind](value)
        except (ValueError, TypeError) as exc:
            return f"column '{column}': {value!r} cannot be read as a {kind} ({exc})"
    return "a date, date-time or time value cannot be read"


class RecordValidator(BaseJSONSchemaValidator):
    """Validates a record; `problem(record)` says what was wrong with the last one, if any."""

    def __init__(self, schema: dict[str, Any], stream_name: str) -> None:
        super().__init__(schema)
        # Flattening (and stream maps) can remove a property but leave it in `required`.
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required", []) if name in properties]
        try:
            self._check = fastjsonschema.compile(
                {**schema, "required": required}, handlers=_NoFetch()
            )
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise StreamError(
                f"Stream '{stream_name}': its JSON schema is not valid: {exc}"
            ) from None
        self._failed: tuple[int, str] | None = None

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self._check(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            where = (exc.name or "").removeprefix("data.").removeprefix("data")
            column = f"column '{where}'" if where else "the record"
            self._failed = (
                id(record),
                f"{column} does not match the stream schema: "
                f"{exc.message.removeprefix(exc.name or '').strip()}",
            )

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why `record` failed validation (consumed once), or None if it passed."""
        failed, self._failed = self._failed, None
        return failed[1] if failed and failed[0] == id(record) else None

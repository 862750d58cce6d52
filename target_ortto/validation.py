"""Record validation against the stream schema that never raises from inside the SDK.

The SDK's validator raises, which ends the run with a traceback and cannot honour
`on_invalid_record: reject`. This one (fastjsonschema: fast, and it checks formats so a
bad date never reaches the SDK's timestamp parser) remembers why a record failed; the
sink asks for that reason and treats the record like any other invalid record.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema
from singer_sdk.exceptions import InvalidJSONSchema
from singer_sdk.sinks.core import BaseJSONSchemaValidator


class RecordValidator(BaseJSONSchemaValidator):
    """Validates a record; `problem(record)` says what was wrong with the last one, if any."""

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        # Flattening (and stream maps) can remove a property but leave it in `required`.
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required", []) if name in properties]
        try:
            self._check = fastjsonschema.compile({**schema, "required": required})
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise InvalidJSONSchema(f"The stream's JSON schema is not valid: {exc}") from exc
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

"""Before the first write: the key works, every custom field a stream sends exists, and
every audience named by name is found.

Ortto rejects every record carrying a custom field it does not have, so a new warehouse
column would otherwise fail a load halfway. Checked once per stream, at its SCHEMA.
"""

from __future__ import annotations

import logging
import threading

from target_ortto import api
from target_ortto.client import OrttoClient
from target_ortto.errors import ApiError, AuthError, StreamError
from target_ortto.fields import Column, FieldPlan
from target_ortto.naming import readable_name
from target_ortto.objects import OrttoObject

# Display types that all take Ortto's "int x1000" decimal representation.
_DECIMAL_TYPES = frozenset({"decimal", "currency", "price"})


def _compatible(wanted: str, existing: str) -> bool:
    if wanted == "decimal":
        return existing in _DECIMAL_TYPES
    if wanted == "integer":
        return existing == "integer"
    if wanted == "text":
        return existing in {"text", "single_select", "link", ""}
    return wanted == existing or existing == ""


class Preflight:
    """Reads each object's custom fields and each named audience once per run."""

    def __init__(
        self, client: OrttoClient, logger: logging.Logger, *, create: bool, dry_run: bool
    ) -> None:
        self.client = client
        self.logger = logger
        self.create = create
        self.dry_run = dry_run
        self._fields: dict[str, dict[str, str]] = {}
        self._audiences: dict[str, str] = {}  # name -> ID
        self._lock = threading.Lock()

    def audience_id(self, ref: tuple[str, str]) -> str:
        """An audience's ID from ("id" | "name", value); an unknown name stops the run."""
        kind, value = ref
        if kind == "id":
            return value
        with self._lock:
            if value not in self._audiences:
                self._audiences[value] = api.find_audience(self.client, value)
            return self._audiences[value]

    def check(self, plan: FieldPlan) -> list[Column]:
        """Make sure the plan's custom fields exist; returns those created (or, dry, to create).

        Raises `StreamError` listing every missing or clashing field and how to fix it.
        """
        with self._lock:
            existing = self._existing(plan.obj)
            missing, clashes = [], []
            for column in plan.custom_fields:
                if column.field_id in existing:
                    if not _compatible(column.display_type or "", existing[column.field_id]):
                        clashes.append((column, existing[column.field_id]))
                    continue
                other = _same_name(column.field_id, existing)
                if other:
                    clashes.append((column, f"{existing[other]} ({other})"))
                else:
                    missing.append(column)
            if clashes:
                raise StreamError(_clash_message(plan, clashes))
            if missing and not self.create:
                raise StreamError(_missing_message(plan, missing))
            selects = [c for c in missing if c.display_type == "multi_select"]
            if selects:
                raise StreamError(_select_message(plan, selects))
            for column in missing:
                if not self.dry_run:
                    self._create(plan.obj, column, existing)
                existing[column.field_id] = column.display_type or ""
            return missing

    def _existing(self, obj: OrttoObject) -> dict[str, str]:
        if obj.name not in self._fields:
            self._fields[obj.name] = api.custom_fields(self.client, obj)
        return self._fields[obj.name]

    def _create(self, obj: OrttoObject, column: Column, existing: dict[str, str]) -> None:
        name = readable_name(column.field_id.split(":", 2)[2])
        try:
            field_id = api.create_custom_field(self.client, obj, name, column.display_type or "")
        except AuthError:
            raise
        except ApiError as exc:
            # A create whose answer was lost (a dropped connection, then a retry Ortto
            # refused) may have worked: only a field still missing is a failure.
            existing.update(api.custom_fields(self.client, obj))
            if column.field_id in existing:
                field_id = None
            elif exc.status is None or exc.status >= 500:
                said = str(exc).rstrip(".")
                raise StreamError(
                    f"Could not create the {obj.name} custom field {column.field_id} for "
                    f"column '{column.name}': {said}. Ortto did not answer (a network or server "
                    "failure, not a refusal): rerun; a field Ortto did create is found then."
                ) from None
            else:
                raise StreamError(
                    f"Could not create the {obj.name} custom field {column.field_id} for "
                    f"column '{column.name}': {exc}. Ortto limits custom fields (about 100 for "
                    "people and 25 for accounts on the Professional plan): drop unneeded "
                    "columns with a stream map, or create the field in Ortto."
                ) from None
        if field_id is None:  # made meanwhile (another run, or a lost answer): learn its type
            existing.update(api.custom_fields(self.client, obj))
            have = existing.get(column.field_id)
            if have is None or not _compatible(column.display_type or "", have):
                raise StreamError(
                    f"Ortto says the {obj.name} custom field {name!r} for column "
                    f"'{column.name}' exists, but it is not {column.field_id} "
                    f"({column.display_type}){f'; it is {have}' if have else ''}. Map the "
                    "column to the existing field in field_map, or rename the column."
                )
            return
        if field_id != column.field_id:
            raise StreamError(
                f"Ortto created the custom field for column '{column.name}' as {field_id}, not "
                f"{column.field_id}; map the column to it in field_map."
            )
        self.logger.info("Created %s custom field %s (%s)", obj.name, field_id, name)


def _same_name(field_id: str, existing: dict[str, str]) -> str | None:
    _, namespace, name = field_id.split(":", 2)
    for other in existing:
        if other != field_id and other.split(":", 1)[1] == f"{namespace}:{name}":
            return other
    return None


def _problem(plan: FieldPlan, what: str, lines: list[str], fix: str) -> str:
    """One message for every field with the same problem, and how to fix them all. (What
    the run wrote before is said where the SCHEMA is read: `TargetOrtto`.)"""
    listed = "\n".join(f"  - {line}" for line in lines)
    return f"Stream '{plan.stream_name}': {what}:\n{listed}\nFix: {fix}"


def _missing_message(plan: FieldPlan, missing: list[Column]) -> str:
    return _problem(
        plan,
        f"Ortto has no {plan.obj.name} custom field for these columns, so it would reject "
        "every record",
        [f"{c.field_id} ({c.display_type}) from column '{c.name}'" for c in missing],
        "create them in Ortto (Settings > Custom fields) with those names and types, or set "
        "create_custom_fields: true to let target-ortto create them.",
    )


def _select_message(plan: FieldPlan, selects: list[Column]) -> str:
    return _problem(
        plan,
        "these multi-select custom fields do not exist, and Ortto needs their list of "
        "options to create them",
        [f"{c.field_id} from column '{c.name}'" for c in selects],
        "create them in Ortto with their options, or map the column to a text field "
        "(field_map) or to tags.",
    )


def _clash_message(plan: FieldPlan, clashes: list[tuple[Column, str]]) -> str:
    return _problem(
        plan,
        "custom fields in Ortto have another type than the columns",
        [
            f"column '{c.name}' needs {c.field_id} ({c.display_type}), Ortto has {have}"
            for c, have in clashes
        ],
        "cast the column in the source (or a stream map) to the field's type, or map the "
        "column to another field in field_map.",
    )

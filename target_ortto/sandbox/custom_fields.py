"""Custom fields: each kind's registered schema, which merges may write to, within a plan limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .body import ApiError
from .fields import VALUE_TYPES, Kind, kebab, slug

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


@dataclass
class CustomField:
    """A custom field in the instance's schema; merges may only use registered ones."""

    id: str
    name: str
    display_type: str
    tracked: bool = True
    values: list[str] | None = None


@dataclass
class CustomFields:
    """One kind's custom fields by ID; `limit` is the plan's cap on creating more."""

    kind: Kind
    limit: int
    by_id: dict[str, CustomField] = field(default_factory=dict)

    def add(
        self,
        field_id: str,
        name: str,
        display_type: str = "text",
        *,
        tracked: bool = True,
        values: list[str] | None = None,
    ) -> CustomField:
        """Register a custom field; unlike `create`, no plan limit (seeding may exceed it)."""
        parts = field_id.split(":")
        if len(parts) != 3 or parts[0] not in VALUE_TYPES or parts[1] != self.kind.custom_ns:
            expected = f"<type>:{self.kind.custom_ns}:<name>"
            raise ApiError(f"invalid custom field ID {field_id}: expected {expected}")
        if any(
            slug(f.id) == parts[2] or f.name.lower() == name.lower() for f in self.by_id.values()
        ):
            # Ortto's own public script treats 423 as "field exists" (ortto-api.md)
            raise ApiError(f"custom field already exists: {name}", status=423)
        custom = CustomField(field_id, name, display_type, tracked, values)
        self.by_id[field_id] = custom
        return custom

    def get(self) -> dict[str, Any]:
        """POST /v1/{person,accounts}/custom-field/get: person entries wrapped, account flat."""
        return {"fields": [self._answer(custom) for custom in self.by_id.values()]}

    def _answer(self, custom: CustomField) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": custom.id,
            "name": custom.name,
            "display_type": custom.display_type,
            "liquid_name": self.kind.liquid_prefix + slug(custom.id),
        }
        if custom.values is not None:
            data["dic_items"] = list(custom.values)
        if not self.kind.wrapped_fields:
            return data
        return {"field": data, "tracked_value": custom.tracked}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/{person,accounts}/custom-field/create."""
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
        if len(self.by_id) >= self.limit:
            raise ApiError(
                f"custom field limit reached: this plan allows {self.limit} "
                f"{self.kind.table} custom fields"
            )
        select_values = values if field_type.endswith("_select") else None
        custom = self.add(
            f"{CUSTOM_FIELD_TYPES[field_type]}:{self.kind.custom_ns}:{kebab(name)}",
            name,
            field_type,
            tracked=body.get("track_changes") is True,
            values=select_values,
        )
        answer = {"name": custom.name, "field_id": custom.id, "display_type": custom.display_type}
        return answer if select_values is None else {**answer, "values": select_values}

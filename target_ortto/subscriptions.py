"""Audience stream records -> one person's subscription to one audience. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from target_ortto.convert import ConversionError, to_boolean, to_email, to_ortto_id
from target_ortto.errors import StreamError
from target_ortto.fields import alias_key
from target_ortto.items import Invalid, Subscription

# Ortto identifies a person in a subscription by one of these, in this order of preference.
IDENTITIES = ("email", "person_id", "external_id")
_IDENTITY_ALIASES = {
    "email": "email",
    "str_email": "email",
    "ortto_person_id": "person_id",
    "str_person_id": "person_id",
    "external_id": "external_id",
    "str_ei": "external_id",
}
_IDENTITY_VALUES = {"email": to_email, "person_id": to_ortto_id}
AUDIENCE_ID = re.compile(r"^[0-9a-f]{24}$")


def audience_ref(value: str) -> tuple[str, str]:
    """("id", value) for a 24-hex audience ID, else ("name", value)."""
    return ("id" if AUDIENCE_ID.match(value) else "name", value)


@dataclass(frozen=True)
class SubscriptionPlan:
    """Which columns of an audience stream say who, which audience, and what state."""

    stream_name: str
    identity_columns: tuple[tuple[str, str], ...]  # (column, identity)
    audience: tuple[str, str] | None  # from the stream setting; else per row
    audience_id_column: str | None
    audience_name_column: str | None
    subscribed_column: str | None
    sms_column: str | None

    @classmethod
    def build(
        cls, stream_name: str, schema: Mapping[str, Any], audience: str | None
    ) -> SubscriptionPlan:
        columns: dict[str, str] = {}
        for name in schema.get("properties") or {}:
            columns.setdefault(alias_key(name), name)
        identity_columns = tuple(
            (column, _IDENTITY_ALIASES[key])
            for key, column in columns.items()
            if key in _IDENTITY_ALIASES
        )
        identity_columns = tuple(sorted(identity_columns, key=lambda c: IDENTITIES.index(c[1])))
        if not identity_columns:
            raise StreamError(
                f"Stream '{stream_name}' is an audience stream but has no email, "
                "ortto_person_id or external_id column to say who is subscribed. Its columns: "
                f"{sorted(columns)}."
            )
        plan = cls(
            stream_name=stream_name,
            identity_columns=identity_columns,
            audience=audience_ref(audience) if audience else None,
            audience_id_column=columns.get("audience_id"),
            audience_name_column=columns.get("audience_name"),
            subscribed_column=columns.get("subscribed"),
            sms_column=columns.get("sms_opted_in"),
        )
        if not audience and not (plan.audience_id_column or plan.audience_name_column):
            raise StreamError(
                f"Stream '{stream_name}': which audience? Set "
                f'"streams": {{"{stream_name}": {{"audience": "<audience name or ID>"}}}}, or '
                "give the stream an audience_id or audience_name column."
            )
        return plan

    def apply(self, record: Mapping[str, Any]) -> Subscription | Invalid:
        """The record's subscription; a record with `_sdc_deleted_at` set unsubscribes."""
        audience = self.audience or self._row_audience(record)
        if not audience:
            return Invalid("no audience_id or audience_name in the record", "audience_id")
        identity = next(
            ((col, kind) for col, kind in self.identity_columns if record.get(col) is not None),
            None,
        )
        if identity is None:
            columns = ", ".join(c for c, _ in self.identity_columns)
            return Invalid(f"no value in {columns}: cannot tell who to subscribe", columns)
        column, kind = identity
        try:
            value = _IDENTITY_VALUES.get(kind, str)(record[column])
            subscribed = self._flag(record, self.subscribed_column, default=True)
            sms = None if self.sms_column is None else self._flag(record, self.sms_column, None)
        except ConversionError as exc:
            return Invalid(str(exc), column)
        if record.get("_sdc_deleted_at") is not None:
            subscribed = False
        return Subscription(audience, kind, value, bool(subscribed), sms)

    def _row_audience(self, record: Mapping[str, Any]) -> tuple[str, str] | None:
        for kind, column in (("id", self.audience_id_column), ("name", self.audience_name_column)):
            if column and record.get(column) not in (None, ""):
                return (kind, str(record[column]))
        return None

    @staticmethod
    def _flag(record: Mapping[str, Any], column: str | None, default: bool | None) -> bool | None:
        """A flag column's value; the default only when the column is absent. A null
        `subscribed` is refused: consent is never assumed."""
        if column is None or column not in record:
            return default
        if record[column] is None:
            if default is None:
                return None
            raise ConversionError(f"'{column}' is null: it must say true or false")
        return to_boolean(record[column])

"""Audience stream records -> one person's subscription to one audience. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from target_ortto.convert import ConversionError, to_boolean, to_email, to_ortto_id
from target_ortto.errors import StreamError
from target_ortto.items import Invalid, Subscription
from target_ortto.naming import alias_key

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
_ROLES = frozenset({"audience_id", "audience_name", "subscribed", "sms_opted_in"})
# Column names that may carry consent: never read by a guess.
_CONSENT_LIKE = re.compile(r"subscri|opt_?(ed_?)?(in|out)|optin|optout|consent|permission|gdpr")
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

    ignored_columns: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        stream_name: str,
        schema: Mapping[str, Any],
        audience: str | None,
        field_map: Mapping[str, str | None] | None = None,
    ) -> SubscriptionPlan:
        """Read the columns' roles from the schema, refusing any whose meaning for consent
        is unclear: a guess here could subscribe people who opted out."""
        field_map = field_map or {}
        _check_field_map(stream_name, schema, field_map)
        columns: dict[str, str] = {}  # role (alias key) -> column
        others: list[str] = []
        for name in schema.get("properties") or {}:
            role = field_map.get(name, name)
            if role is None or name.startswith("_sdc_"):
                continue
            key = alias_key(role)
            if key in _IDENTITY_ALIASES or key in _ROLES:
                columns.setdefault(key, name)
            else:
                others.append(name)
        _refuse_consent_lookalikes(stream_name, others)
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
                f"{sorted(schema.get('properties') or {})}."
            )
        plan = cls(
            stream_name=stream_name,
            identity_columns=identity_columns,
            audience=audience_ref(audience) if audience else None,
            audience_id_column=columns.get("audience_id"),
            audience_name_column=columns.get("audience_name"),
            subscribed_column=columns.get("subscribed"),
            sms_column=columns.get("sms_opted_in"),
            ignored_columns=tuple(others),
        )
        if not audience and not (plan.audience_id_column or plan.audience_name_column):
            raise StreamError(
                f"Stream '{stream_name}': which audience? Set "
                f'"streams": {{"{stream_name}": {{"audience": "<audience name or ID>"}}}}, or '
                "give the stream an audience_id or audience_name column."
            )
        if plan.sms_column and not plan.subscribed_column:
            raise StreamError(
                f"Stream '{stream_name}' sets SMS consent ({plan.sms_column}) without a "
                "'subscribed' column. Ortto does not document what a subscribe call without "
                "'subscribed' does to the email subscription, so it could subscribe people to "
                "email. Add a 'subscribed' column holding each person's email subscription, or "
                "set SMS permission on a people stream instead: "
                f'"field_map": {{"{plan.sms_column}": "bol::sp"}}.'
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
        deleted = record.get("_sdc_deleted_at") is not None  # gone from the source: leave
        try:
            value = _IDENTITY_VALUES.get(kind, str)(record[column])
            subscribed = False if deleted else self._subscribed(record)
            sms = self._sms(record)
        except ConversionError as exc:
            return Invalid(str(exc), column)
        return Subscription(audience, kind, value, subscribed, sms)

    def _row_audience(self, record: Mapping[str, Any]) -> tuple[str, str] | None:
        for kind, column in (("id", self.audience_id_column), ("name", self.audience_name_column)):
            if column and record.get(column) not in (None, ""):
                return (kind, str(record[column]))
        return None

    def _subscribed(self, record: Mapping[str, Any]) -> bool:
        """A stream without a `subscribed` column subscribes (a row means "member"); one
        with it states intent per row, so a null or missing value is refused: consent is
        never assumed."""
        column = self.subscribed_column
        if column is None:
            return True
        if record.get(column) is None:
            state = "missing" if column not in record else "null"
            raise ConversionError(f"'{column}' is {state}: it must say true or false")
        return to_boolean(record[column])

    def _sms(self, record: Mapping[str, Any]) -> bool | None:
        """SMS consent only where the row states it; otherwise it is not sent."""
        if self.sms_column is None or record.get(self.sms_column) is None:
            return None
        return to_boolean(record[self.sms_column])


def _check_field_map(
    stream_name: str, schema: Mapping[str, Any], field_map: Mapping[str, str | None]
) -> None:
    properties = schema.get("properties") or {}
    roles = sorted({*_ROLES, "email", "ortto_person_id", "external_id"})
    for column, role in field_map.items():
        if column not in properties or (role is not None and alias_key(role) not in roles):
            raise StreamError(
                f"Stream '{stream_name}': field_map entry {column!r} -> {role!r} does not fit "
                f"an audience stream: map one of its columns {sorted(properties)} to one of "
                f"{roles}, or to null to ignore it."
            )


def _refuse_consent_lookalikes(stream_name: str, columns: list[str]) -> None:
    lookalikes = [c for c in columns if _CONSENT_LIKE.search(alias_key(c))]
    if lookalikes:
        raise StreamError(
            f"Stream '{stream_name}': columns {lookalikes} look like consent, but an audience "
            "stream reads only 'subscribed' (email) and 'sms_opted_in' (SMS), true meaning "
            "subscribed. Guessing could subscribe people who opted out. If a column means "
            f'exactly that, map it: "streams": {{"{stream_name}": {{"field_map": '
            f'{{"{lookalikes[0]}": "subscribed"}}}}}}; if it means the opposite (opted out, '
            "unsubscribed), negate it with a stream map; to ignore it, map it to null."
        )

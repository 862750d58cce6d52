"""Audiences and the subscription state of the people in them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from .body import ApiError, batch, flag, int_option
from .fields import EMAIL, EXTERNAL_ID, PERSON
from .records import NO_ID, Record, Table

MAX_AUDIENCE_PAGE = 40

# How an audience subscription entry names its person: key, field ID, person_status.
_PERSON_REFS = (
    ("person_id", PERSON.id_field, "by-id"),
    ("email", EMAIL, "merged"),
    ("external_id", EXTERNAL_ID, "merged"),
)

# Every key of an audience in /v1/audiences/get, as recorded; the rest are filled per audience.
_AUDIENCE_TEMPLATE: dict[str, Any] = {
    "id": None,
    "instance_id": "sandbox",
    "folder_id": None,
    "data_source_id": NO_ID,
    "icon_id": "audiences-illustration-icon",
    "type": "permanent",
    "building": False,
    "ready": True,
    "is_public": False,
    "sms_is_public": False,
    "sms_public_name": "",
    "sms_public_description": "",
    "filter": None,
    "filter_sha": "",
    "last_built_at": None,
    "new_filter": None,
    "new_filter_sha": "",
    "last_used": None,
    "created": None,
    "created_by_id": "",
    "created_by_name": "",
    "edited_at": None,
    "name": None,
    "public_name": "",
    "public_description": "",
    "template_id": NO_ID,
    "exit_selection": "",
    "new_exit_criteria_filter": None,
    "ds_destinations": None,
    "sms_opted_in": 0,
    "subscribers": 0,
    "members": 0,
    "added_last_30_days": 0,
    "engagement": 0,
    "revenue": 0,
    "is_cold": False,
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Subscription:
    """One person's subscription state in one audience."""

    subscribed: bool
    sms_opted_in: bool = False


@dataclass
class Audience:
    """An audience; `member_emails` None means every non-archived person is a member."""

    id: str
    name: str
    created: str
    member_emails: frozenset[str] | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def has_member(self, person: Record) -> bool:
        if person.archived:
            return False
        email = person.fields.get(EMAIL)
        return self.member_emails is None or (
            isinstance(email, str) and email.lower() in self.member_emails
        )


@dataclass
class Audiences:
    """The instance's audiences by ID, over the people table their members come from."""

    people: Table
    by_id: dict[str, Audience] = field(default_factory=dict)

    def add(self, name: str, member_emails: Iterable[str] | None = None) -> str:
        """The new audience's ID; `member_emails` None makes every person a member."""
        if not isinstance(name, str) or not name:
            raise ApiError("audience name is required")
        members = None if member_emails is None else frozenset(e.lower() for e in member_emails)
        audience = Audience(uuid.uuid4().hex[:24], name, _now(), members)
        self.by_id[audience.id] = audience
        return audience.id

    def forget(self, person_id: str) -> None:
        """Drop a deleted person's subscriptions."""
        for audience in self.by_id.values():
            audience.subscriptions.pop(person_id, None)

    def _members(self, audience: Audience) -> list[Record]:
        return [p for p in self.people.records.values() if audience.has_member(p)]

    def to_json(self) -> list[dict[str, Any]]:
        """Every audience with its members and subscriptions, for the state snapshot."""
        return [
            {
                "id": audience.id,
                "name": audience.name,
                "member_emails": None
                if audience.member_emails is None
                else sorted(audience.member_emails),
                "members": len(self._members(audience)),
                "subscriptions": [
                    {
                        "person_id": person_id,
                        "email": self.people.records[person_id].fields.get(EMAIL),
                        **asdict(subscription),
                    }
                    for person_id, subscription in audience.subscriptions.items()
                ],
            }
            for audience in self.by_id.values()
        ]

    def get(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        """POST /v1/audiences/get: a bare array, or null when nothing matches."""
        term = body.get("search_term") or ""
        if not isinstance(term, str):
            raise ApiError("search_term must be a string")
        limit = min(int_option(body, "limit", MAX_AUDIENCE_PAGE, 1, 10**6), MAX_AUDIENCE_PAGE)
        offset = int_option(body, "offset", 0, 0, 10**9)
        found = [a for a in self.by_id.values() if term.lower() in a.name.lower()]
        return [self._answer(a) for a in found[offset : offset + limit]] or None

    def _answer(self, audience: Audience) -> dict[str, Any]:
        states = [audience.subscriptions.get(p.id) for p in self._members(audience)]
        return {
            **_AUDIENCE_TEMPLATE,
            "id": audience.id,
            "name": audience.name,
            **dict.fromkeys(
                ("created", "last_built_at", "last_used", "edited_at"), audience.created
            ),
            "members": len(states),
            "subscribers": sum(bool(s and s.subscribed) for s in states),
            "sms_opted_in": sum(bool(s and s.sms_opted_in) for s in states),
        }

    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /v1/audience/subscribe: only existing members' subscriptions change."""
        audience_id = body.get("audience_id")
        audience = self.by_id.get(audience_id) if isinstance(audience_id, str) else None
        if audience is None:
            raise ApiError("audience not found")
        entries = batch(body, "people")
        results = [self._subscribe_one(audience, entry) for entry in entries]
        if flag(body, "async"):
            queued = {"person_status": "queued", "status": "queued"}
            results = [r if r["status"] == "invalid" else queued for r in results]
        return {"audience_id": audience.id, "people": results}

    def _subscribe_one(self, audience: Audience, entry: Any) -> dict[str, Any]:
        ref = next((r for r in _PERSON_REFS if isinstance(entry, dict) and entry.get(r[0])), None)
        subscribed = entry.get("subscribed", True) if isinstance(entry, dict) else None
        sms = entry.get("sms_opted_in") if isinstance(entry, dict) else None
        if ref is None or not isinstance(subscribed, bool) or not isinstance(sms, bool | None):
            error = "each person needs email, person_id or external_id; flags must be booleans"
            return {"person_status": "invalid", "status": "invalid", "error": error}
        key, field_id, person_status = ref
        person = self.people.lookup(field_id, entry[key])
        if person is None:
            return {"person_status": "not-found", "status": "not-found"}
        found_id = {} if key == "person_id" else {"person_id": person.id}
        if not audience.has_member(person):
            return {"person_status": person_status, "status": "not-a-member", **found_id}
        state = audience.subscriptions.setdefault(person.id, Subscription(subscribed))
        state.subscribed = subscribed
        if sms is not None:
            state.sms_opted_in = sms
        status = "subscribed" if subscribed else "unsubscribed"
        return {"person_status": person_status, "status": status, **found_id}

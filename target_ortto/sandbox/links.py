"""Account links: which account each person belongs to, and the calls that set it.

Sources: Ortto's pages "manage organization association: add/remove" (a-280), "adding and
removing people from organizations" (a-231) and the legacy organizations add/remove
reference (../shared/reference/ortto-api.md, "People linked to accounts"). A person's
account is the read-only person field `idt::o` (recorded instance schema), returned by
person reads like any field. Unrecorded, so chosen here: an unknown or malformed account ID
is refused with a 400; a call that would put more than 3,000 people in one account is
refused whole.
"""

from __future__ import annotations

import re
from typing import Any

from .body import ApiError
from .records import Table

ACCOUNT_FIELD = "idt::o"
MAX_PEOPLE = 3000  # Ortto's feature limits: people per account
# Each documented form: its path, and the account-ID keys Ortto's pages spell for it.
FORMS: dict[str, tuple[str, ...]] = {
    "/v1/accounts/contacts/{action}": ("accounts_id", "account_id"),  # a-280, a-231
    "/v1/organizations/contacts/{action}": ("organization_id",),  # the legacy reference
}
ACTIONS = ("add", "remove")
_ID = re.compile(r"^[0-9a-f]{24}$")


def contacts(
    people: Table, accounts: Table, keys: tuple[str, ...], action: str, body: dict[str, Any]
) -> dict[str, Any]:
    """PUT …/contacts/add or /remove: `inclusion_ids` (person IDs) and the account's ID
    under one of `keys`. Like Ortto, a body without those (e.g. the undocumented
    `person_ids` of the recordings) is answered `{}` and links nobody."""
    account_id = next((body[k] for k in keys if isinstance(body.get(k), str)), None)
    person_ids = body.get("inclusion_ids")
    if account_id is None or not isinstance(person_ids, list):
        return {}
    if not _ID.match(account_id):
        raise ApiError("cannot unmarshal into an ID, the length must be 12 or 24")
    account = accounts.records.get(account_id)
    if account is None or account.archived:
        raise ApiError(f"account not found: {account_id}")
    chosen = [
        people.records[i]
        for i in dict.fromkeys(p for p in person_ids if isinstance(p, str))
        if i in people.records and not people.records[i].archived
    ]
    if action == "remove":
        for person in chosen:
            if person.fields.get(ACCOUNT_FIELD) == account_id:
                people.set_field(person, ACCOUNT_FIELD, None)
        return {}
    joining = [p for p in chosen if p.fields.get(ACCOUNT_FIELD) != account_id]
    if len(members(people, account_id)) + len(joining) > MAX_PEOPLE:
        raise ApiError(f"an account can have at most {MAX_PEOPLE} contacts")
    for person in joining:  # a person has one account: linking moves them
        people.set_field(person, ACCOUNT_FIELD, account_id)
    return {}


def members(people: Table, account_id: str) -> list[str]:
    """IDs of the people linked to an account."""
    return [p.id for p in people.records.values() if p.fields.get(ACCOUNT_FIELD) == account_id]


def unlink_gone(people: Table, accounts: Table) -> None:
    """Archiving (or deleting) an account unlinks its people."""
    for person in people.records.values():
        account_id = person.fields.get(ACCOUNT_FIELD)
        if account_id is not None:
            account = accounts.records.get(account_id)
            if account is None or account.archived:
                people.set_field(person, ACCOUNT_FIELD, None)

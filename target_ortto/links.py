"""People linked to their accounts (spec section 4b), decided without I/O.

A people stream's link column names each person's account (by name, website or Ortto's
account ID). `LinkPlan` says which column and how, from the schema and
`streams.<name>.account_link`; `plan_changes` turns one drain's wanted links, the links the
ledger remembers and the accounts found into the calls to make. Sending them is
`sinks/link.py`; the call's form is `link_api.py`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from target_ortto.errors import ConfigError, StreamError
from target_ortto.ledger import payload_hash
from target_ortto.naming import alias_key
from target_ortto.objects import LINK_COLUMNS, LINK_FIELDS

# Ortto's feature limits: an account holds at most 3,000 people (an older page said 50).
MAX_PEOPLE_PER_ACCOUNT = 3000
# No per-call cap on `inclusion_ids` is documented; the API's other calls take 100.
LINK_BATCH = 100
ACCOUNT_ID = re.compile(r"^[0-9a-f]{24}$")
KEEP = object()  # the record says nothing about its account: the link is left as it is


def parse_account_link(name: str, value: Any) -> dict[str, str] | None:
    """The setting `streams.<name>.account_link`: `{"column": ..., "by": ...}`; None is the
    automatic choice, `{}` turns linking off (`null` in the config: see
    `stream_settings._stream_settings`)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"column", "by"}:
        raise ConfigError(
            f'Setting \'{name}\' must be {{"column": "<column>", "by": "<field>"}} (by: '
            f"{', '.join(LINK_FIELDS)}), or null to link no account."
        )
    if not value:
        return {}
    column, by = value.get("column"), value.get("by")
    if not isinstance(column, str) or not column or by not in (None, *LINK_FIELDS):
        raise ConfigError(
            f"Setting '{name}' needs a column name and by one of {', '.join(LINK_FIELDS)}; "
            f"got {dict(value)!r}."
        )
    return {"column": column, "by": by} if by else {"column": column}


@dataclass(frozen=True)
class LinkPlan:
    """Which column of a people stream names each person's account, and by what field."""

    stream_name: str
    column: str
    by: str
    clear_nulls: bool  # null_values: clear — a null unlinks the person

    @classmethod
    def build(
        cls,
        stream_name: str,
        properties: Mapping[str, Any],
        setting: Mapping[str, str] | None,
        field_map: Mapping[str, Any],
        clear_nulls: bool,
    ) -> LinkPlan | None:
        """The stream's link, or None: `setting` {} turns it off, None chooses the first
        column named like a link (ortto_account_id, then names, then websites) that
        field_map does not map to a field."""
        if setting == {}:
            return None
        if setting:
            column = setting["column"]
            if column not in properties:
                raise StreamError(
                    f"Stream '{stream_name}': account_link names column {column!r}, which the "
                    f"stream does not have. Its columns are: {sorted(properties)}."
                )
            if column in field_map:
                raise StreamError(
                    f"Stream '{stream_name}': column {column!r} is both the account_link and "
                    "mapped by field_map; a link column is not a field. Remove one of them."
                )
            by = setting.get("by") or LINK_COLUMNS.get(alias_key(column), LINK_FIELDS[0])
            return cls(stream_name, column, by, clear_nulls)
        candidates = {alias_key(n): n for n in properties if n not in field_map}
        for alias, by in LINK_COLUMNS.items():
            if alias in candidates:
                return cls(stream_name, candidates[alias], by, clear_nulls)
        return None

    def value(self, record: Mapping[str, Any]) -> Any:
        """The account the record names (text), None to unlink, or `KEEP`. Empty or
        whitespace-only text names no account: it unlinks like a null (under clear)."""
        if self.column not in record:
            return KEEP
        value = record[self.column]
        text = None if value is None else str(value).strip()
        if not text:
            return None if self.clear_nulls else KEEP
        return text.lower() if self.by == "str:o:account_id" else text

    def problem(self, value: str) -> str | None:
        """Why a value cannot name an account (an Ortto ID that is not 24 hex digits)."""
        if self.by == "str:o:account_id" and not ACCOUNT_ID.match(value):
            return (
                f"column '{self.column}' holds {value!r}, which is not an Ortto account ID "
                "(24 hex digits, starting 10)"
            )
        return None

    def digest(self, value: str) -> str:
        """What the ledger remembers of a person's link."""
        return payload_hash(["account", self.by, value])


@dataclass(frozen=True)
class Want:
    """One person's wanted link from one drain: `value` None means unlink."""

    key: str  # the person's ledger key in the people stream
    merge_key: tuple[Any, ...]
    value: str | None
    record: Mapping[str, Any] = field(compare=False, repr=False)
    describe: str = ""


@dataclass
class Changes:
    """What one drain's links come to: calls by account, and links refused with why."""

    add: dict[str, list[Want]] = field(default_factory=dict)  # account ID -> people
    remove: dict[str, list[Want]] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)  # person keys added after a remove
    kept: list[tuple[Want, str]] = field(default_factory=list)  # already linked there
    refused: list[tuple[Want, str]] = field(default_factory=list)


def plan_changes(
    wants: Iterable[Want],
    person_ids: Mapping[str, str],
    accounts: Mapping[str, str],
    previous: Mapping[str, str | None],
    members: Counter[str],
) -> Changes:
    """Each wanted link as a call: add to its account, remove from the one the ledger says
    it had (a move does both), or nothing when it is linked there already. `accounts` maps
    a value to its account ID; `members` counts each account's people and is updated."""
    changes = Changes()
    for want in wants:
        old = previous.get(want.key)
        if want.value is None and not old:
            continue  # not linked by this target: nothing to unlink
        if person_ids.get(want.key) is None:
            changes.refused.append((want, "the person was not found in Ortto to link"))
            continue
        if want.value is None:
            changes.remove.setdefault(old, []).append(want)
            members[old] -= 1
            continue
        account = accounts[want.value]
        if old == account:
            changes.kept.append((want, account))
            continue
        if members[account] >= MAX_PEOPLE_PER_ACCOUNT:
            changes.refused.append(
                (
                    want,
                    f"account {want.value!r} already has {MAX_PEOPLE_PER_ACCOUNT:,} people, "
                    "Ortto's limit per account; the person is written but not linked",
                )
            )
            continue
        members[account] += 1
        if old:
            members[old] -= 1
            changes.remove.setdefault(old, []).append(want)
            changes.moved.add(want.key)
        changes.add.setdefault(account, []).append(want)
    return changes


def batches(by_account: Mapping[str, list[Want]]) -> list[tuple[str, list[Want]]]:
    """Calls of at most `LINK_BATCH` people, each for one account."""
    return [
        (account, people[start : start + LINK_BATCH])
        for account, people in by_account.items()
        for start in range(0, len(people), LINK_BATCH)
    ]

"""What a plan makes of one record: the typed items sinks buffer, fold and send.

Each item has a `key` (records with equal keys are the same thing in Ortto and are folded
into one per drain) and a `body` (what Ortto is sent for it; its hash is what the ledger
compares). `Invalid` is the one item that is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Item(Protocol):
    """What every sendable item offers the generic sink."""

    @property
    def key(self) -> Any: ...

    def body(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Invalid:
    """A record that must not be sent, and why, in words a person can act on.

    `key` is the record's merge key when it could still be told: a full snapshot must not
    take a present-but-invalid record for one that left.
    """

    reason: str
    field: str | None = None
    key: tuple[Any, ...] | None = None


@dataclass
class MergeRecord:
    """One person or account as Ortto's merge endpoint takes it."""

    key: tuple[Any, ...]
    fields: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    unset_tags: list[str] = field(default_factory=list)
    location: dict[str, Any] | None = None
    # Why values were left out (invalid_phones: drop): reported when the record is read.
    dropped: list[str] = field(default_factory=list, compare=False, repr=False)

    def fold(self, later: MergeRecord) -> None:
        """Absorb a later record for the same key: later values win, field by field."""
        self.fields.update(later.fields)
        self.tags = [t for t in self.tags if t not in later.unset_tags]
        self.tags += [t for t in later.tags if t not in self.tags]
        self.unset_tags = [t for t in self.unset_tags if t not in later.tags]
        self.unset_tags += [t for t in later.unset_tags if t not in self.unset_tags]
        if later.location is not None:
            self.location = later.location

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"fields": self.fields}
        if self.tags:
            body["tags"] = self.tags
        if self.unset_tags:
            body["unset_tags"] = self.unset_tags
        if self.location is not None:
            body["location"] = self.location
        return body


@dataclass(frozen=True)
class Deletion:
    """A record deleted at the source (`_sdc_deleted_at`), to be applied at the stream's end."""

    key: tuple[Any, ...]

    def body(self) -> dict[str, Any]:
        return {"delete": list(self.key)}


@dataclass(frozen=True)
class Subscription:
    """One person's wanted state in one audience: ("id" | "name", value)."""

    audience: tuple[str, str]
    identity: str
    value: str
    subscribed: bool
    sms_opted_in: bool | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        value = self.value.lower() if self.identity == "email" else self.value
        return (self.audience, self.identity, value)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {self.identity: self.value, "subscribed": self.subscribed}
        if self.sms_opted_in is not None:
            body["sms_opted_in"] = self.sms_opted_in
        return body

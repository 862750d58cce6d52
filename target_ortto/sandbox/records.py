"""Records: people and accounts, one table per kind, and Ortto's rules for merging,
archiving, deleting and reading them."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .body import ApiError, batch, choice, flag, int_option
from .custom_fields import CustomFields
from .fields import EMAIL, Kind, value_error

MAX_READ_PAGE = 500
APPEND, OVERWRITE, IGNORE = 1, 2, 3
ANY, NEXT_IF_EMPTY, ALL = 0, 1, 2
NO_ID = "0" * 24

# Bulk action -> (archived state a record must have to be affected, state after; None = gone).
_ACTIONS: dict[str, tuple[bool, bool | None]] = {
    "archive": (False, True),
    "restore": (True, False),
    "delete": (True, None),
}


class _Invalid(Exception):
    """One record Ortto rejects; the rest of its request still goes through."""


@dataclass
class Record:
    """One person or account as the CDP holds it."""

    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    location: dict[str, Any] | None = None
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "id": self.id,
                "fields": self.fields,
                "tags": sorted(self.tags),
                "location": self.location,
                "archived": self.archived,
            }
        )


@dataclass(frozen=True)
class _MergeOptions:
    merge_by: tuple[str, ...]
    strategy: int
    find: int
    skip_non_existing: bool
    check_suppressed: bool
    is_async: bool
    by_id: bool


def _index_key(field_id: str, value: Any) -> str:
    """Emails match regardless of letter case (the rule the target folds by; Ortto's own
    behaviour is unrecorded), every other value exactly."""
    if field_id == EMAIL and isinstance(value, str):
        value = value.lower()
    return json.dumps(value, sort_keys=True)


@dataclass
class Table:
    """The records of one kind, their custom field schema and a value index for look-ups.

    `ids` is shared by all tables, so record IDs stay unique and ordered across kinds.
    """

    kind: Kind
    custom: CustomFields
    ids: Iterator[int]
    records: dict[str, Record] = field(default_factory=dict)
    index: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    scheduled: set[str] = field(default_factory=set)  # archives not yet carried out

    def knows(self, field_id: str) -> bool:
        return field_id in self.kind.builtins or field_id in self.custom.by_id

    def check_field(self, field_id: str, value: Any) -> None:
        if not self.knows(field_id):
            raise _Invalid(
                f"failed to validate field {field_id} in schema: {field_id}: Object not found"
            )
        error = value_error(field_id, value)
        if error is not None:
            raise _Invalid(f"failed to validate field {field_id}: {error}")

    def value(self, record: Record, field_id: str) -> Any:
        return record.id if field_id == self.kind.id_field else record.fields.get(field_id)

    def lookup(self, field_id: str, value: Any) -> Record | None:
        """The oldest non-archived record holding `value` in `field_id`."""
        if field_id == self.kind.id_field:
            ids: Iterable[str] = [value] if isinstance(value, str) else []
        else:
            ids = self.index.get(field_id, {}).get(_index_key(field_id, value), ())
        live = [self.records[i] for i in ids if i in self.records and not self.records[i].archived]
        return min(live, key=lambda record: record.id, default=None)

    def set_field(self, record: Record, field_id: str, value: Any) -> None:
        """Set (or with None clear) a field, keeping the index in step."""
        if field_id in record.fields:
            by_value = self.index[field_id]
            key = _index_key(field_id, record.fields.pop(field_id))
            by_value[key].discard(record.id)
            if not by_value[key]:
                del by_value[key]
        if value is not None:
            record.fields[field_id] = value
            self.index.setdefault(field_id, {}).setdefault(_index_key(field_id, value), set()).add(
                record.id
            )

    def remove(self, record: Record) -> None:
        for field_id in list(record.fields):
            self.set_field(record, field_id, None)
        del self.records[record.id]

    def live(self) -> list[Record]:
        return [record for record in self.records.values() if not record.archived]

    def _new_id(self) -> str:
        return f"{self.kind.id_prefix}{int(time.time()):08x}{next(self.ids):012x}00"

    # ----- merge -----

    def merge(
        self, kind: Kind, body: dict[str, Any], suppressed: Collection[str]
    ) -> dict[str, Any]:
        """Merge a batch; `kind` names its keys (the legacy organizations path differs only
        there), and new people whose email is in `suppressed` are refused."""
        items = copy.deepcopy(batch(body, kind.body_key))  # stored values own no input
        options = self._merge_options(kind, body)
        results = [self._merge_one(kind, item, options, suppressed) for item in items]
        failures = [result for result in results if "error" in result]
        if len(failures) == len(results):
            message = f"{kind.no_valid_message} ({failures[0]['error']})"
            raise ApiError(message, details=failures)
        if options.is_async:
            results = [r if "error" in r else {"status": "queued"} for r in results]
        return {kind.body_key: results}

    def _merge_options(self, kind: Kind, body: dict[str, Any]) -> _MergeOptions:
        merge_by = body.get("merge_by", kind.default_merge_by)
        if merge_by is None:
            raise ApiError("merge_by is required")
        if (
            not isinstance(merge_by, list | tuple)
            or not 1 <= len(merge_by) <= kind.max_merge_by
            or not all(isinstance(f, str) for f in merge_by)
        ):
            raise ApiError(f"merge_by must be an array of 1 to {kind.max_merge_by} field IDs")
        for field_id in merge_by:
            if not self.knows(field_id):
                raise ApiError(f"merge_by field {field_id} not found")
        if kind.id_field in merge_by and len(merge_by) > 1:
            raise ApiError(f"{kind.id_field} must be the only merge_by field")
        return _MergeOptions(
            merge_by=tuple(merge_by),
            strategy=choice(body, "merge_strategy", (APPEND, OVERWRITE, IGNORE), OVERWRITE),
            find=choice(body, "find_strategy", kind.find_strategies, ANY),
            # Documented for people only; Ortto ignores keys it does not know.
            skip_non_existing=flag(body, "skip_non_existing") and kind.table == "person",
            # Without it Ortto does not check the suppression list (recorded).
            check_suppressed=body.get("suppression_list_field_id") == EMAIL,
            is_async=flag(body, "async"),
            by_id=list(merge_by) == [kind.id_field],
        )

    def _merge_one(
        self, kind: Kind, item: Any, options: _MergeOptions, suppressed: Collection[str]
    ) -> dict[str, Any]:
        try:
            fields = self._valid_fields(item, options)
            existing = self._find(fields, options)
        except _Invalid as invalid:
            return {"status": "invalid", "error": str(invalid)}
        if existing is not None:
            if options.strategy == IGNORE:
                return {kind.result_id_key: existing.id, "status": "ignored"}
            self._apply(existing, item, options.strategy)
            return {kind.result_id_key: existing.id, "status": "merged"}
        if options.skip_non_existing:
            return {"status": "ignored"}
        email = fields.get(EMAIL)
        if options.check_suppressed and isinstance(email, str) and email.lower() in suppressed:
            return {"status": "suppressed", "error": "Email is suppressed"}
        record = Record(self._new_id())
        self.records[record.id] = record
        self._apply(record, item, OVERWRITE)
        for field_id, value in kind.defaults_on_create:
            if record.fields.get(field_id) is None:
                self.set_field(record, field_id, value)
        return {kind.result_id_key: record.id, "status": "created"}

    def _valid_fields(self, item: Any, options: _MergeOptions) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("fields"), dict):
            raise _Invalid("fields must be an object")
        for key in ("tags", "unset_tags"):
            tags = item.get(key, [])
            if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
                raise _Invalid(f"{key} must be an array of strings")
        if not isinstance(item.get("location", {}), dict | None):
            raise _Invalid("location must be an object")
        fields: dict[str, Any] = item["fields"]
        for field_id, value in fields.items():
            self.check_field(field_id, value)
        identity = self.kind.identity_fields
        required = options.merge_by if options.by_id or not identity else identity
        if all(fields.get(field_id) is None for field_id in required):
            raise _Invalid(f"a value for {' or '.join(required)} is required")
        return fields

    def _find(self, fields: dict[str, Any], options: _MergeOptions) -> Record | None:
        if options.by_id:
            found = self.lookup(self.kind.id_field, fields[self.kind.id_field])
            if found is None:
                raise _Invalid(f"{self.kind.table} not found: {fields[self.kind.id_field]}")
            return found
        keys = [(f, fields[f]) for f in options.merge_by if fields.get(f) is not None]
        if options.find == NEXT_IF_EMPTY:
            keys = keys[:1]
        matches = [self.lookup(field_id, value) for field_id, value in keys]
        if options.find == ALL:
            same = bool(matches) and all(m is not None and m is matches[0] for m in matches)
            return matches[0] if same else None
        return next((match for match in matches if match is not None), None)

    def _apply(self, record: Record, item: dict[str, Any], strategy: int) -> None:
        """Write a validated item into a record: overwrite (2) or fill empty fields (1)."""
        for field_id, value in item["fields"].items():
            if field_id == self.kind.id_field:
                continue
            if strategy == OVERWRITE or (value is not None and field_id not in record.fields):
                self.set_field(record, field_id, value)
        record.tags.update(item.get("tags", []))
        record.tags.difference_update(item.get("unset_tags", []))
        location = item.get("location")
        if location is not None and (strategy == OVERWRITE or record.location is None):
            record.location = location

    # ----- archive, restore, delete; read -----

    def bulk(
        self, action: str, body: dict[str, Any], schedule: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """PUT archive / PUT restore / DELETE delete with inclusion_ids (delete: archived only).

        With `schedule`, an archive is only scheduled (Ortto's `scheduled_*` counts): the
        records stay live until `archive_scheduled`. Also returns the IDs deleted, so state
        kept elsewhere can forget them.
        """
        ids = batch(body, "inclusion_ids")
        if not all(isinstance(i, str) for i in ids):
            raise ApiError("inclusion_ids must be an array of record IDs")
        wanted, after = _ACTIONS[action]
        chosen = [
            self.records[i]
            for i in dict.fromkeys(ids)
            if i in self.records and self.records[i].archived == wanted
        ]
        scheduled_key, count_key = self.kind.bulk_keys[action]
        if schedule and action == "archive":
            self.scheduled.update(record.id for record in chosen)
            return {scheduled_key: len(chosen), count_key: 0}, []
        for record in chosen:
            if after is None:
                self.remove(record)
            else:
                record.archived = after
        deleted = [record.id for record in chosen] if after is None else []
        return {scheduled_key: 0, count_key: len(chosen)}, deleted

    def archive_scheduled(self) -> None:
        """Carry out the archives Ortto had only scheduled."""
        for record_id in self.scheduled:
            if record_id in self.records:
                self.records[record_id].archived = True
        self.scheduled.clear()

    def get(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/person/get, /v1/accounts/get: non-archived records, requested fields only."""
        limit = int_option(body, "limit", 100, 1, MAX_READ_PAGE)
        offset = int_option(body, "offset", 0, 0, 10**9)
        wanted = body.get("fields", [])
        if not isinstance(wanted, list) or not all(isinstance(f, str) for f in wanted):
            raise ApiError("fields must be an array of field IDs")
        matches = self._filter(body.get("filter"))
        live = self.live()
        hits = [record for record in live if matches(record)]
        page = hits[offset : offset + limit]
        rows = [
            {
                "id": record.id,
                "fields": {f: v for f in wanted if (v := self.value(record, f)) is not None},
            }
            for record in page
        ]
        totals = {
            "total_contacts": 0,
            "total_organizations": 0,
            self.kind.meta_total_key: len(live),
        }
        return {
            self.kind.read_key: rows or None,
            "meta": {
                **totals,
                "total_matches": len(hits),
                "total_subscribers": sum(r.fields.get("bol::p") is True for r in live),
            },
            "offset": offset,
            "next_offset": offset + len(page),
            "cursor_id": page[-1].id if page else NO_ID,
            "has_more": offset + len(page) < len(hits),
        }

    def _filter(self, spec: Any) -> Callable[[Record], bool]:
        if spec is None:
            return lambda record: True
        condition = spec.get("$str::is") if isinstance(spec, dict) and len(spec) == 1 else None
        if not isinstance(condition, dict) or not isinstance(condition.get("field_id"), str):
            raise ApiError('unsupported filter: the sandbox implements {"$str::is": {...}} only')
        field_id, value = condition["field_id"], condition.get("value")
        return lambda record: self.value(record, field_id) == value

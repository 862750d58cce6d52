"""Records deleted at the source, or gone from a full snapshot: what Ortto should do.

`delete_behavior` decides for people and accounts (none / clear / archive / delete);
audience memberships are always unsubscribed. `max_deletes` is checked before anything is
removed, so a broken source cannot empty the CDP.
"""

from __future__ import annotations

import json
from typing import Any

from target_ortto import api
from target_ortto.client import OrttoClient
from target_ortto.errors import OrttoError
from target_ortto.fields import FieldPlan
from target_ortto.objects import FIND_STRATEGIES

ID_BATCH = 100  # Ortto takes up to 100 IDs per archive or delete call


class TooManyDeletesError(OrttoError):
    """A run would remove more than `max_deletes`; nothing was removed."""


def check_limit(stream: str, count: int, max_deletes: int, action: str) -> None:
    if count > max_deletes:
        raise TooManyDeletesError(
            f"Stream '{stream}': this run would {action} {count} records, more than "
            f"max_deletes={max_deletes}; nothing was removed. If the source really lost "
            f"that many rows, raise streams.{stream}.max_deletes for one run."
        )


def key_fields(key_text: str) -> dict[str, Any] | None:
    """The merge fields a ledger key stands for ({"str::email": "a@b.co"}), if plain values."""
    key = json.loads(key_text)
    pairs = key if key and isinstance(key[0], list) else [key]
    fields = {f: v for f, v in pairs if v is not None}
    return fields if all(isinstance(v, (str, int)) for v in fields.values()) else None


def resolve_ids(
    client: OrttoClient, plan: FieldPlan, entries: list[tuple[str, str | None]]
) -> tuple[dict[str, str], list[str]]:
    """Ortto IDs of (ledger key, known ID) entries, looking up unknown ones by their first
    merge field; returns key -> ID, and the keys Ortto does not have."""
    ids: dict[str, str] = {}
    missing: list[str] = []
    for key, ortto_id in entries:
        if ortto_id is None:
            fields = key_fields(key) or {}
            field_id = next(iter(fields), None)
            ortto_id = (
                api.find_id(client, plan.obj, field_id, fields[field_id]) if field_id else None
            )
        if ortto_id is None:
            missing.append(key)
        else:
            ids[key] = ortto_id
    return ids, missing


def clear(
    client: OrttoClient, plan: FieldPlan, entries: list[tuple[str, str | None]], async_merge: bool
) -> tuple[list[api.Outcome], list[str]]:
    """Set every mapped field to null on existing records; never creates one, never clears
    consent. Returns the outcomes, and the keys Ortto does not have (accounts only).

    People are merged by their key with `skip_non_existing`. Ortto documents that option for
    people only (accounts-merge reference, ../shared/seeds/002...), so an account is cleared
    by its Ortto ID, from the ledger or looked up first.
    """
    cleared = {c.field_id: None for c in plan.columns if plan.clearable(c.field_id)}
    obj, missing = plan.obj, []
    if obj.skips_non_existing:
        bodies = [{"fields": {**(key_fields(k) or {}), **cleared}} for k, _ in entries]
        merge_by, find_strategy = plan.merge_by, plan.find_strategy
    else:
        ids, missing = resolve_ids(client, plan, entries)
        bodies = [{"fields": {obj.id_field: oid, **cleared}} for oid in ids.values()]
        merge_by, find_strategy = (obj.id_field,), FIND_STRATEGIES["any"]
    options = api.MergeOptions(
        merge_by=merge_by,
        merge_strategy=2,
        find_strategy=FIND_STRATEGIES["any"] if len(merge_by) == 1 else find_strategy,
        skip_non_existing=obj.skips_non_existing,
        async_merge=async_merge,
    )
    outcomes: list[api.Outcome] = []
    for start in range(0, len(bodies), ID_BATCH):
        outcomes += api.merge(client, obj, bodies[start : start + ID_BATCH], options)
    return outcomes, missing


def remove(
    client: OrttoClient, plan: FieldPlan, entries: list[tuple[str, str | None]], delete: bool
) -> tuple[list[str], list[tuple[str, str]], int, int]:
    """Archive (and, with `delete`, then delete) records.

    Ortto deletes only archived records: when it only scheduled an archive, that batch is
    not deleted now, and its keys are returned as pending, to stay queued for a later run.
    Returns the keys not found in Ortto, the (key, ID) pending, and how many Ortto reported
    archived (scheduled included) and deleted.
    """
    ids, missing = resolve_ids(client, plan, entries)
    keyed = list(ids.items())
    pending: list[tuple[str, str]] = []
    archived = deleted = 0
    for start in range(0, len(keyed), ID_BATCH):
        batch = keyed[start : start + ID_BATCH]
        done, scheduled = api.archive(client, plan.obj, [oid for _, oid in batch])
        archived += done + scheduled
        if delete and scheduled:
            pending += batch
        elif delete:
            deleted += api.delete(client, plan.obj, [oid for _, oid in batch])
    return missing, pending, archived, deleted

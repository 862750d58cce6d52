"""People and accounts, merged through `/v1/<object>/merge` in requests of `batch_size`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from target_ortto import api, consent, deletes
from target_ortto.fields import FieldPlan
from target_ortto.items import Deletion, Invalid, MergeRecord
from target_ortto.ledger import ledger_key
from target_ortto.objects import FIND_STRATEGIES, MERGE_OBJECTS, PERSON
from target_ortto.sinks.base import SDC_DELETED_AT, OrttoSink, Send, chunked

EMAIL = "str::email"
EMAIL_PERMISSION = "bol::p"
APPEND, OVERWRITE = 1, 2  # Ortto's merge strategies


def _body(item: MergeRecord) -> dict[str, Any]:
    return item.body()


def _with_email_permission_false(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "fields": {**body["fields"], EMAIL_PERMISSION: False}}


def _unsubscribed_body(item: MergeRecord) -> dict[str, Any]:
    return _with_email_permission_false(item.body())


class MergeSink(OrttoSink[MergeRecord]):
    """One sink for both objects: they differ only in data (`objects.py`)."""

    drain_order = 0

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        settings, stream = self.run.settings, self.stream_settings
        self.obj = MERGE_OBJECTS[settings.object_for(stream_name)]
        self.plan = FieldPlan.build(
            self.obj,
            stream_name,
            self.schema,
            field_map=stream.field_map,
            merge_by=stream.merge_by,
            find_strategy=stream.find_strategy,
            clear_nulls=settings.null_values == "clear",
            default_phone_country=settings.default_phone_country,
            field_types=stream.field_types,
            invalid_phones=settings.invalid_phones,
            not_fields=self.not_fields(),
        )
        strategy, skip_non_existing = self.obj.modes[stream.mode]
        creates = self.obj is PERSON and not skip_non_existing
        self.options = api.MergeOptions(
            merge_by=self.plan.merge_by,
            merge_strategy=strategy,
            find_strategy=FIND_STRATEGIES[stream.find_strategy],
            skip_non_existing=skip_non_existing,
            async_merge=settings.async_merge,
            suppression_field=EMAIL if creates and settings.skip_suppressed else None,
        )
        # Ortto subscribes a person it creates without `bol::p` (spec section 4c): unless the
        # user opted in, or maps the field, every person this stream creates starts
        # unsubscribed, and nobody who exists has their permission changed.
        self.unsubscribe_new = (
            creates
            and not settings.subscribe_new_people
            and EMAIL_PERMISSION not in {c.field_id for c in self.plan.columns}
        )
        # Append-only: creates new people complete, fills only empty fields of existing ones
        # (whose permission, which every person has, is kept). Always answered, as the
        # overwrite that follows needs to know who existed.
        self.create_options = replace(self.options, merge_strategy=APPEND, async_merge=False)

    def not_fields(self) -> frozenset[str]:
        """Columns that are not Ortto fields of the record (a person's account link)."""
        return frozenset()

    def setup(self) -> None:
        super().setup()
        created = self.run.preflight.check(self.plan)
        if created and self.run.preflight.dry_run:
            fields = [c.field_id for c in created]
            self.logger.info("Dry run or baseline: would create custom fields %s", fields)

    def key_from(self, record: Mapping[str, Any]) -> Hashable | None:
        return self.plan.key_from(record)

    def map_record(self, record: Mapping[str, Any]) -> MergeRecord | Deletion | Invalid:
        mapped = self.plan.apply(record)
        if isinstance(mapped, MergeRecord) and mapped.dropped:
            self.run.report.phones_dropped(self.stream_name, self.describe(record), mapped.dropped)
        if record.get(SDC_DELETED_AT) is not None and isinstance(mapped, MergeRecord):
            return Deletion(mapped.key)
        return mapped

    def fold(
        self, earlier: MergeRecord | Deletion, later: MergeRecord | Deletion
    ) -> MergeRecord | Deletion:
        if isinstance(earlier, Deletion) or isinstance(later, Deletion):
            return later
        earlier.fold(later)
        return earlier

    def identities(self, item: MergeRecord | Deletion) -> set[Hashable]:
        if isinstance(item, Deletion):
            return {item.key}
        fields = item.fields
        return {item.key} | {
            self.plan.key_of({field: fields[field]})
            for field in self.plan.merge_by
            if fields.get(field) is not None
        }

    def payload(self, item: MergeRecord) -> Any:
        return [item.body(), self.options.merge_strategy, self.options.skip_non_existing]

    def requests(
        self, pending: list[tuple[MergeRecord, dict]]
    ) -> list[tuple[list[tuple[MergeRecord, dict]], Send]]:
        """Merges of `batch_size` records. With `unsubscribe_new`, `insert` and `append`
        carry `bol::p: false` (those strategies keep an existing person's value); an
        `upsert` of keys the ledger does not know goes through `_create_then_overwrite`."""
        overwrite, create = pending, []
        if self.unsubscribe_new and self.options.merge_strategy == OVERWRITE:
            keys = [ledger_key(item.key) for item, _ in pending]
            known = self.run.ledger.known(self.stream_name, keys)
            overwrite = [p for p, key in zip(pending, keys, strict=True) if key in known]
            create = [p for p, key in zip(pending, keys, strict=True) if key not in known]
        unsubscribed = self.unsubscribe_new and self.options.merge_strategy != OVERWRITE
        body = _unsubscribed_body if unsubscribed else _body
        merge = partial(api.merge, self.run.client, self.obj, options=self.options)
        size = self.run.settings.batch_size
        return [
            (chunk, partial(merge, [body(item) for item, _ in chunk]))
            for chunk in chunked(overwrite, size, lambda p: body(p[0]))
        ] + [
            (chunk, partial(self._create_then_overwrite, [_body(item) for item, _ in chunk]))
            for chunk in chunked(create, size, lambda p: _unsubscribed_body(p[0]))
        ]

    def _create_then_overwrite(self, bodies: list[dict[str, Any]]) -> list[api.Outcome]:
        """New people created unsubscribed, then the overwrite (`consent.py`)."""
        return consent.create_then_overwrite(self.run.client, self.obj, bodies, self.options)

    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        behavior, report, client = self.removal_action(), self.run.report, self.run.client
        pending: list[tuple[str, str]] = []
        if behavior == "clear":
            outcomes, missing = deletes.clear(
                client, self.plan, entries, self.run.settings.async_merge
            )
            report.count(self.stream_name, "cleared", sum(o.acknowledged for o in outcomes))
        else:
            missing, pending, archived, deleted = deletes.remove(
                client, self.plan, entries, behavior == "delete"
            )
            report.count(self.stream_name, "archived", archived)
            report.count(self.stream_name, "deleted", deleted)
        if pending:
            self.logger.warning(
                "Stream '%s': Ortto only scheduled the archive of %d records, so they are not "
                "deleted yet; the deletion stays queued and finishes in a later run.",
                self.stream_name,
                len(pending),
            )
            self.run.ledger.queue_deletions(self.stream_name, pending)
        if missing:
            self.logger.warning(
                "Stream '%s': %d records to %s were not found in Ortto: %s",
                self.stream_name,
                len(missing),
                behavior,
                missing[:5],
            )
        waiting = {key for key, _ in pending}
        self.run.ledger.forget(self.stream_name, [k for k, _ in entries if k not in waiting])

    def describe(self, record: Mapping[str, Any]) -> str:
        names = [c.name for c in self.plan.columns if c.field_id in self.plan.merge_by]
        shown = {n: record.get(n) for n in names if record.get(n) is not None}
        if not shown:
            return super().describe(record)
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())

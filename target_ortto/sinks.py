"""Sinks: buffer, fold and hand records to Ortto. Orchestration only; the work is elsewhere."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks import BatchSink

from target_ortto import api, deletes
from target_ortto.client import wait_all
from target_ortto.deletes import Deletion
from target_ortto.errors import StreamError
from target_ortto.fields import FieldPlan, Invalid, MergeRecord
from target_ortto.ledger import ledger_key, payload_hash
from target_ortto.objects import FIND_STRATEGIES, MERGE_OBJECTS
from target_ortto.subscriptions import Subscription, SubscriptionPlan
from target_ortto.validation import RecordValidator

if TYPE_CHECKING:
    from target_ortto.target import Run

DRY_RUN_SAMPLES = 3
_SDC_DELETED_AT = "_sdc_deleted_at"
COUNTED = frozenset({"created", "merged", "subscribed", "unsubscribed"})
Pending = list[tuple[Any, dict]]  # (item to send, the record it came from)
Request = tuple[Pending, Callable[[], list[api.Outcome]]]  # items, and a call sending them


def drain(sink: OrttoSink) -> None:
    """Send a sink's pending records now, as the SDK's `Target.drain_one` does, and wait
    for Ortto's answers."""
    if sink.current_size:
        sink.process_batch(sink.start_drain())
        sink.mark_drained()
    sink.wait_sent()


def _chunked(items: Pending, size: int) -> list[Pending]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class OrttoSink(BatchSink):
    """Shared by every Ortto sink: map each record, fold same-key records, send a drain.

    Records with the same key in one drain are folded into one (later values win), so no
    two concurrent requests ever touch the same Ortto record. `process_batch` returns only
    when Ortto has answered every request and the ledger recorded it: the SDK emits STATE
    only after that.
    """

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.run: Run = target.run
        self.stream_settings = self.run.settings.stream(stream_name)
        # A drain fans out into up to `max_concurrency` requests of `batch_size` records.
        self.MAX_SIZE_DEFAULT = self.run.settings.batch_size * self.run.settings.max_concurrency * 2
        self._samples_shown = 0
        if self.stream_settings.full_snapshot:
            self.run.snapshot_streams.add(stream_name)
        # A dry run writes no ledger: the keys it saw, per stream (sinks come and go).
        self._dry_run_seen: set[str] = self.run.dry_run_seen.setdefault(stream_name, set())
        self._in_flight: list[tuple[set[Any], list[Future[None]]]] = []  # (keys, requests)

    # --- what each kind of sink provides ------------------------------------------------

    def map_record(self, record: Mapping[str, Any]) -> Any:
        """The record as the item this sink sends (it has a `.key`), or `Invalid`."""
        raise NotImplementedError

    def fold(self, earlier: Any, later: Any) -> Any:
        """Combine two items with the same key; the later one wins."""
        return later

    def requests(self, pending: Pending) -> list[Request]:
        """One drain's items split into requests: (the items, a call that sends them)."""
        raise NotImplementedError

    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        """Apply what records that left the source (or were deleted there) should become."""
        raise NotImplementedError

    def key_from(self, record: Mapping[str, Any]) -> Any:
        """The key of a record that could not be mapped, if it can still be told."""
        return None

    def identities(self, item: Any) -> set[Any]:
        """Everything by which Ortto may find this item's record: requests for items that
        share one are never in flight together."""
        return {item.key}

    def payload(self, item: Any) -> Any:
        """What decides whether an item changed since Ortto last acknowledged it."""
        return item.body()

    def before_batch(self) -> None:
        """Anything that must reach Ortto before this sink's batch."""

    def describe(self, record: Mapping[str, Any]) -> str:
        """The record's identity in messages."""
        shown = {k: record.get(k) for k in self.key_properties}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "(no key)"

    # --- the SDK's hooks -------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.run.active_sinks[self.stream_name] = self

    def get_validator(self) -> RecordValidator | None:
        return RecordValidator(self.schema) if self.validate_schema else None

    @property
    def datetime_error_treatment(self) -> DatetimeErrorTreatmentEnum:
        # With validation on, a bad timestamp was already flagged (its record is never
        # sent), so the SDK's parser must not raise; without it, fail loudly.
        if self._validator is not None:
            return DatetimeErrorTreatmentEnum.NULL
        return DatetimeErrorTreatmentEnum.ERROR

    def process_record(self, record: dict, context: dict) -> None:
        self.run.report.count(self.stream_name, "read")
        problem = self._validator.problem(record) if self._validator is not None else None
        item = Invalid(problem, key=self.key_from(record)) if problem else self.map_record(record)
        if isinstance(item, Invalid):
            if item.key is not None:
                self._seen([ledger_key(item.key)])
            self.run.report.invalid(self.stream_name, self.describe(record), item.reason, record)
            return
        pending: dict[Any, tuple[Any, dict]] = context.setdefault("pending", {})
        earlier = pending.get(item.key)
        if earlier is not None:
            item = self.fold(earlier[0], item)
            self.run.report.count(self.stream_name, "folded")
            self.tally_duplicate_merged()
        pending[item.key] = (item, record)

    def process_batch(self, context: dict) -> None:
        """Send a drain without waiting for its answers, so the next batch is read meanwhile.

        Safe for STATE: the SDK emits it only after `drain_all`, which waits for every
        answer (`TargetOrtto._drain_all` -> `wait_sent`). A drain first waits for earlier
        ones that touch the same records (so later values win) and for all but the latest
        (so memory stays bounded); a failure surfaces at the next drain at the latest.
        """
        self.before_batch()
        pending = list(context.get("pending", {}).values())
        identities = set().union(*(self.identities(item) for item, _ in pending))
        self._wait_for(identities)
        deletions = [item for item, _ in pending if isinstance(item, Deletion)]
        if deletions:
            self._queue_deletions(deletions)
        pending, hashes = self._changed([p for p in pending if not isinstance(p[0], Deletion)])
        if not pending:
            return
        if self.run.settings.dry_run:
            self._show_plan(pending)
            return
        futures = self.run.client.submit_all(
            partial(self._send_and_account, chunk, send, hashes)
            for chunk, send in self.requests(pending)
        )
        self._in_flight.append((identities, futures))

    def _wait_for(self, keys: set[Any]) -> None:
        """Wait for earlier drains that share a key with `keys`, and all but the latest."""
        latest = len(self._in_flight) - 1
        waiting = []
        for index, (sent_keys, futures) in enumerate(self._in_flight):
            failed = any(f.done() and f.exception() for f in futures)
            if index < latest or failed or not sent_keys.isdisjoint(keys):
                wait_all(futures)
            else:
                waiting.append((sent_keys, futures))
        self._in_flight = waiting

    def wait_sent(self) -> None:
        """Return once Ortto answered everything this sink sent; raise the first failure."""
        while self._in_flight:
            wait_all(self._in_flight[0][1])
            del self._in_flight[0]

    def process_batch_files(self, encoding: Any, files: Any) -> None:
        raise StreamError(
            f"Stream '{self.stream_name}': the tap sent BATCH messages, which target-ortto "
            "does not read (each record must be mapped and acknowledged one by one). Turn "
            "off the tap's batch mode (its `batch_config`)."
        )

    def activate_version(self, new_version: int) -> None:
        """The tap sends (or is sending) its whole table: keys it does not send have left.

        Taps send ACTIVATE_VERSION before and/or after the records, so removal waits for
        the end of the stream; the pending batch is drained now, as the SDK does not.
        """
        drain(self)
        self.run.snapshot_streams.add(self.stream_name)

    def clean_up(self) -> None:
        # Only the stream's current sink finishes it: an older sink (replaced by a schema
        # change) is cleaned up before the current one's last drain.
        if self.run.active_sinks.get(self.stream_name) is self:
            self.finish_stream()
        super().clean_up()

    # --- steps -------------------------------------------------------------------------------

    def _seen(self, keys: list[str]) -> None:
        """Keys present in the source this run, whether or not they are sent."""
        if self.run.settings.dry_run:
            self._dry_run_seen.update(keys)
        elif self._is_snapshot or self.stream_settings.delete_behavior != "none":
            self.run.ledger.mark_seen(self.stream_name, keys)

    def _changed(self, pending: Pending) -> tuple[Pending, dict[str, str]]:
        """Drop records whose payload Ortto already acknowledged (`skip_unchanged`).

        Also returns the payload hashes (ledger key -> hash) it computed, so the ledger
        is written without hashing every record a second time."""
        dry_run = self.run.settings.dry_run
        keys = [ledger_key(item.key) for item, _ in pending]
        if dry_run:
            self._dry_run_seen.update(keys)
        if not pending or not self.run.settings.skip_unchanged:
            return pending, {}
        hashes = {
            key: payload_hash(self.payload(item))
            for key, (item, _) in zip(keys, pending, strict=True)
        }
        same = self.run.ledger.unchanged(self.stream_name, hashes, mark_seen=not dry_run)
        if same:
            self.run.report.count(self.stream_name, "unchanged", len(same))
            pending = [p for key, p in zip(keys, pending, strict=True) if key not in same]
        return pending, hashes

    def _send_and_account(
        self, chunk: Pending, send: Callable[[], list[api.Outcome]], hashes: dict[str, str]
    ) -> None:
        """Send one request; count each acknowledged record and ledger it at once (so work
        Ortto took is remembered even if another request of the drain fails); refused
        records go to `on_invalid_record`."""
        outcomes = send()
        report = self.run.report
        report.count(self.stream_name, "sent", len(chunk))
        applied, refused = [], []
        for (item, _), outcome in zip(chunk, outcomes, strict=True):
            key = ledger_key(item.key)
            if not outcome.acknowledged:
                refused.append(key)
            elif outcome.status in api.APPLIED:
                digest = hashes.get(key) or payload_hash(self.payload(item))
                applied.append((key, digest, outcome.ortto_id))
        self.run.ledger.acknowledge(self.stream_name, applied)
        self._seen(refused)
        for (_, record), outcome in zip(chunk, outcomes, strict=True):
            if outcome.acknowledged:
                status = outcome.status
                report.count(self.stream_name, status if status in COUNTED else "accepted")
            else:
                reason = f"Ortto answered '{outcome.status}': {outcome.error}"
                report.invalid(self.stream_name, self.describe(record), reason, record)

    def _show_plan(self, pending: Pending) -> None:
        self.run.report.count(self.stream_name, "planned", len(pending))
        for item, _ in pending[: max(0, DRY_RUN_SAMPLES - self._samples_shown)]:
            self.logger.info("Dry run: would send for '%s': %s", self.stream_name, item.body())
            self._samples_shown += 1

    def _queue_deletions(self, deletions: list[Deletion]) -> None:
        """Deletions are applied at the stream's end, after the max_deletes check; until
        then they wait in the ledger, so a STATE emitted meanwhile cannot lose them."""
        if self.stream_settings.delete_behavior == "none":
            self.run.report.count(self.stream_name, "kept", len(deletions))
            return
        keys = [ledger_key(d.key) for d in deletions]
        entries = [(key, self.run.ledger.ortto_id(self.stream_name, key)) for key in keys]
        if self.run.settings.dry_run:
            self.run.report.count(self.stream_name, "planned_deletes", len(entries))
        else:
            self.run.ledger.queue_deletions(self.stream_name, entries)

    def finish_stream(self) -> None:
        """Apply queued deletions and, for full snapshots, remove what left the source."""
        if self.removal_action() == "none" or self.stream_name in self.run.finished_streams:
            return
        self.run.finished_streams.add(self.stream_name)
        ledger = self.run.ledger
        entries = ledger.queued_deletions(self.stream_name)
        if self._is_snapshot:
            entries += ledger.not_seen(self.stream_name)
        entries = [e for e in dict(entries).items() if e[0] not in self._dry_run_seen]
        if not entries:
            return
        action = self.removal_action()
        deletes.check_limit(
            self.stream_name, len(entries), self.stream_settings.max_deletes, action
        )
        if self.run.settings.dry_run:
            self.run.report.count(self.stream_name, "planned_deletes", len(entries))
            return
        self.remove_left(entries)

    @property
    def _is_snapshot(self) -> bool:
        return self.stream_name in self.run.snapshot_streams

    def removal_action(self) -> str:
        return self.stream_settings.delete_behavior

    # The SDK strips `_sdc_deleted_at` unless all record metadata is on (halving
    # throughput); deletes must be seen, so keep just that one.
    def _remove_sdc_metadata_from_record(self, record: dict) -> None:
        deleted_at = record.get(_SDC_DELETED_AT)
        super()._remove_sdc_metadata_from_record(record)
        if deleted_at is not None:
            record[_SDC_DELETED_AT] = deleted_at

    def _remove_sdc_metadata_from_schema(self) -> None:
        deleted_at = self.schema["properties"].get(_SDC_DELETED_AT)
        super()._remove_sdc_metadata_from_schema()
        if deleted_at is not None:
            self.schema["properties"][_SDC_DELETED_AT] = deleted_at


class MergeSink(OrttoSink):
    """People or accounts, merged through `/v1/<object>/merge` in requests of `batch_size`."""

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
        )
        strategy, skip_non_existing = self.obj.modes[stream.mode]
        self.options = api.MergeOptions(
            merge_by=self.plan.merge_by,
            merge_strategy=strategy,
            find_strategy=FIND_STRATEGIES[stream.find_strategy],
            skip_non_existing=skip_non_existing,
            async_merge=settings.async_merge,
        )

    def setup(self) -> None:
        super().setup()
        created = self.run.preflight.check(self.plan)
        if created and self.run.settings.dry_run:
            fields = [c.field_id for c in created]
            self.logger.info("Dry run: would create custom fields %s", fields)

    def key_from(self, record: Mapping[str, Any]) -> Any:
        return self.plan.key_from(record)

    def map_record(self, record: Mapping[str, Any]) -> MergeRecord | Deletion | Invalid:
        mapped = self.plan.apply(record)
        if record.get(_SDC_DELETED_AT) is not None and isinstance(mapped, MergeRecord):
            return Deletion(mapped.key)
        return mapped

    def fold(self, earlier: Any, later: Any) -> Any:
        if isinstance(earlier, Deletion) or isinstance(later, Deletion):
            return later
        earlier.fold(later)
        return earlier

    def identities(self, item: Any) -> set[Any]:
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

    def requests(self, pending: Pending) -> list[Request]:
        size = self.run.settings.batch_size
        merge = partial(api.merge, self.run.client, self.obj, options=self.options)
        return [
            (chunk, partial(merge, [item.body() for item, _ in chunk]))
            for chunk in _chunked(pending, size)
        ]

    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        behavior, report, client = self.removal_action(), self.run.report, self.run.client
        keys = [key for key, _ in entries]
        if behavior == "clear":
            outcomes = deletes.clear(client, self.plan, keys, self.run.settings.async_merge)
            report.count(self.stream_name, "cleared", sum(o.acknowledged for o in outcomes))
        elif behavior in {"archive", "delete"}:
            missing, archived, deleted = deletes.remove(
                client, self.plan, entries, behavior == "delete"
            )
            report.count(self.stream_name, "archived", archived)
            report.count(self.stream_name, "deleted", deleted)
            if missing:
                self.logger.warning(
                    "Stream '%s': %d records to %s were not found in Ortto: %s",
                    self.stream_name,
                    len(missing),
                    behavior,
                    missing[:5],
                )
        self.run.ledger.forget(self.stream_name, keys)

    def describe(self, record: Mapping[str, Any]) -> str:
        names = [c.name for c in self.plan.columns if c.field_id in self.plan.merge_by]
        shown = {n: record.get(n) for n in names if record.get(n) is not None}
        if not shown:
            return super().describe(record)
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


class AudienceSink(OrttoSink):
    """Audience memberships, set through `PUT /v1/audience/subscribe`, 100 people a request."""

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.plan = SubscriptionPlan.build(stream_name, self.schema, self.stream_settings.audience)

    def setup(self) -> None:
        super().setup()
        if self.plan.audience is not None:
            self.audience_id(self.plan.audience)

    def before_batch(self) -> None:
        """People buffered earlier in the input are merged first, so they can be subscribed
        (the SDK drains a full sink alone, whatever else is pending)."""
        for sink in list(self.run.active_sinks.values()):
            if isinstance(sink, MergeSink):
                drain(sink)

    def audience_id(self, ref: tuple[str, str]) -> str:
        """An audience's ID; a name is looked up once per run and cached."""
        kind, value = ref
        if kind == "id":
            return value
        cache = self.run.audience_ids
        with self.run.lock:
            if value not in cache:
                cache[value] = api.find_audience(self.run.client, value)
            return cache[value]

    def map_record(self, record: Mapping[str, Any]) -> Subscription | Invalid:
        item = self.plan.apply(record)
        if isinstance(item, Subscription) and item.audience[0] == "name":
            self.audience_id(item.audience)  # an unknown name stops the run before a write
        return item

    def requests(self, pending: Pending) -> list[Request]:
        groups: dict[str, Pending] = {}
        for item, record in pending:
            groups.setdefault(self.audience_id(item.audience), []).append((item, record))
        subscribe = partial(api.subscribe, self.run.client)
        return [
            (chunk, partial(subscribe, audience_id, [s.body() for s, _ in chunk]))
            for audience_id, group in groups.items()
            for chunk in _chunked(group, api.SUBSCRIBE_BATCH)
        ]

    def removal_action(self) -> str:
        return "unsubscribe"

    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        """People who left an audience snapshot are unsubscribed from it."""
        leaving = []
        for key, _ in entries:
            audience, identity, value = json.loads(key)
            subscription = Subscription(tuple(audience), identity, value, subscribed=False)
            leaving.append((subscription, {identity: value}))
        results = self.run.client.run_all(send for _, send in self.requests(leaving))
        done = sum(o.acknowledged for outcomes in results for o in outcomes)
        self.run.report.count(self.stream_name, "unsubscribed", done)
        if done < len(leaving):
            self.logger.warning(
                "Stream '%s': %d people who left could not be unsubscribed (not found in Ortto)",
                self.stream_name,
                len(leaving) - done,
            )
        self.run.ledger.forget(self.stream_name, [key for key, _ in entries])

    def describe(self, record: Mapping[str, Any]) -> str:
        for column, _ in self.plan.identity_columns:
            if record.get(column) is not None:
                return f"{column}={record[column]!r}"
        return super().describe(record)

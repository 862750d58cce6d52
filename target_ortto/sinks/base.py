"""The generic sink: map each record to an item, fold same-key items, send a drain, account.

A kind of sink (merge, subscribe, ...) only says how a record becomes its item, how a
drain's items become requests, and what a record that left the source becomes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks import BatchSink

from target_ortto import api, deletes
from target_ortto.dispatch import wait_all
from target_ortto.items import Deletion, Invalid, Item
from target_ortto.ledger import ledger_key, payload_hash
from target_ortto.run import Run
from target_ortto.validation import RecordValidator, check_schema, timestamp_problem

ItemT = TypeVar("ItemT", bound=Item)
# Ortto takes at most 2 MB a request (10^6 or 2^20 bytes: not said); the records' bodies
# stay under this, leaving room for the request's own keys.
MAX_PAYLOAD = 1_990_000
_JSON = msgspec.json.Encoder()
DRY_RUN_SAMPLES = 3
SDC_DELETED_AT = "_sdc_deleted_at"
COUNTED = frozenset({"created", "merged", "subscribed", "unsubscribed"})
ACCEPTED = frozenset({"queued", "ignored", "skipped"})  # counted together as "accepted"
Send = Callable[[], list[api.Outcome]]


def chunked(
    items: list[Any], size: int, body: Callable[[Any], Any] | None = None
) -> list[list[Any]]:
    """Items in requests of at most `size`; with `body` (what an item sends), also of at
    most `MAX_PAYLOAD` encoded bytes. Text limits count characters, the payload bytes."""
    chunks: list[list[Any]] = []
    used = MAX_PAYLOAD
    for item in items:
        weight = len(_JSON.encode(body(item))) + 1 if body is not None else 0
        if not chunks or len(chunks[-1]) >= size or used + weight > MAX_PAYLOAD:
            chunks.append([])
            used = 0
        chunks[-1].append(item)
        used += weight
    return chunks


class OrttoSink(BatchSink, Generic[ItemT]):
    """Shared by every Ortto sink: map each record, fold same-key records, send a drain.

    Records with the same key in one drain are folded into one (later values win), so no
    two concurrent requests ever touch the same Ortto record. A drain's answers are all
    in before the SDK emits STATE (see `process_batch`).
    """

    drain_order: ClassVar[int] = 0  # lower orders reach Ortto first when drained together

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        check_schema(stream_name, schema)  # before the SDK reads it
        super().__init__(target, stream_name, schema, key_properties)
        self._unparsed: tuple[int, str] | None = None  # (record id, why) from the SDK's parse
        self.run: Run = target.run
        self.run.claim(stream_name)
        self.stream_settings = self.run.settings.stream(stream_name)
        # A drain fans out into up to `max_concurrency` requests of `batch_size` records.
        self.MAX_SIZE_DEFAULT = self.run.settings.batch_size * self.run.settings.max_concurrency * 2
        self._samples_shown = 0
        if self.stream_settings.full_snapshot:
            self.run.streams.mark_snapshot(stream_name)
        self._in_flight: list[tuple[set[Hashable], list[Future[None]]]] = []  # (keys, requests)
        self._input = target.message_reader  # its line number names a record without a key
        self._keys_not_in_schema = [k for k in self.key_properties if k not in schema["properties"]]

    # --- what each kind of sink provides ------------------------------------------------

    @abstractmethod
    def map_record(self, record: Mapping[str, Any]) -> ItemT | Deletion | Invalid:
        """The record as the item this sink sends, a deletion, or why it cannot be sent."""

    @abstractmethod
    def requests(
        self, pending: list[tuple[ItemT, dict]]
    ) -> list[tuple[list[tuple[ItemT, dict]], Send]]:
        """One drain's items split into requests: (the items, a call that sends them)."""

    @abstractmethod
    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        """Apply what records that left the source, as (ledger key, Ortto ID), become."""

    def fold(self, earlier: ItemT | Deletion, later: ItemT | Deletion) -> ItemT | Deletion:
        """Combine two items with the same key; the later one wins."""
        return later

    def key_from(self, record: Mapping[str, Any]) -> Hashable | None:
        """The key of a record that could not be mapped, if it can still be told."""
        return None

    def identities(self, item: ItemT | Deletion) -> set[Hashable]:
        """Everything by which Ortto may find this item's record: requests for items that
        share one are never in flight together."""
        return {item.key}

    def payload(self, item: ItemT) -> Any:
        """What decides whether an item changed since Ortto last acknowledged it."""
        return item.body()

    def removal_action(self) -> str:
        return self.stream_settings.delete_behavior

    def describe(self, record: Mapping[str, Any]) -> str:
        """The record's identity in messages."""
        shown = {k: record.get(k) for k in self.key_properties}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "(no key)"

    # --- the SDK's hooks -------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.run.streams.register(self)

    def get_validator(self) -> RecordValidator | None:
        return RecordValidator(self.schema, self.stream_name) if self.validate_schema else None

    def _parse_timestamps_in_record(
        self, record: dict, schema: dict, treatment: DatetimeErrorTreatmentEnum
    ) -> None:
        """The SDK's parse of date-like columns, but a value it cannot parse (year 0, a leap
        second, what the validator let through) makes the record invalid: its NULL treatment
        would hide it, and `null_values: clear` would then write a clear."""
        try:
            super()._parse_timestamps_in_record(record, schema, DatetimeErrorTreatmentEnum.ERROR)
        except (ValueError, TypeError):
            self._unparsed = (id(record), timestamp_problem(record, schema))

    def record_problem(self, record: dict) -> str | None:
        """Why the record does not fit its schema (validation, then date parsing), if so."""
        problem = self._validator.problem(record) if self._validator is not None else None
        unparsed, self._unparsed = self._unparsed, None
        if problem is None and unparsed is not None and unparsed[0] == id(record):
            return unparsed[1]
        return problem

    def _singer_validate_message(self, record: dict) -> None:
        """The SDK stops the run for a record without its key properties; `process_record`
        checks them instead, so that `on_invalid_record: reject` applies."""

    def _missing_key(self, record: Mapping[str, Any]) -> str | None:
        missing = [k for k in self.key_properties if k not in record]
        if not missing:
            return None
        line = self._input.line_number
        reason = (
            f"the record (input line {line}) has no key property {', '.join(map(repr, missing))}"
        )
        absent = [k for k in missing if k in self._keys_not_in_schema]
        if absent:
            reason += (
                f" ({', '.join(map(repr, absent))} is not a column of the stream's schema "
                "either: the tap's key_properties name a column it does not send)"
            )
        return (
            f"{reason}; its columns: {sorted(record)[:20]}. Fix the tap's records or key_properties"
        )

    def process_record(self, record: dict, context: dict) -> None:
        self.run.report.count(self.stream_name, "read")
        problem = self.record_problem(record)  # always: it consumes what was noted for it
        problem = self._missing_key(record) or problem
        item = Invalid(problem, key=self.key_from(record)) if problem else self.map_record(record)
        if isinstance(item, Invalid):
            if item.key is not None:
                self._seen([ledger_key(item.key)])
            self.run.report.invalid(self.stream_name, self.describe(record), item.reason, record)
            return
        pending: dict[Hashable, tuple[ItemT | Deletion, dict]] = context.setdefault("pending", {})
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
        for sink in self.run.streams.draining_before(self.drain_order):
            sink.drain_now()  # e.g. people buffered earlier, so they can be subscribed
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
        if self.run.settings.baseline:
            self._record_as_in_ortto(pending, hashes)
            return
        self.run.streams.mark_sending(self.stream_name)
        futures = self.run.dispatcher.submit_all(
            partial(self._send_and_account, chunk, send, hashes)
            for chunk, send in self.requests(pending)
        )
        self._in_flight.append((identities, futures))

    def drain_now(self) -> None:
        """Send pending records now, as the SDK's `Target.drain_one` does, and wait for
        Ortto's answers."""
        if self.current_size:
            self.process_batch(self.start_drain())
            self.mark_drained()
        self.wait_sent()

    def _wait_for(self, keys: set[Hashable]) -> None:
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

    def activate_version(self, new_version: int) -> None:
        """The tap sends (or is sending) its whole table: keys it does not send have left.

        Taps send ACTIVATE_VERSION before and/or after the records, so removal waits for
        the end of the stream; the pending batch is drained now, as the SDK does not.
        """
        self.drain_now()
        self.run.streams.mark_snapshot(self.stream_name)

    def clean_up(self) -> None:
        # Only the stream's current sink finishes it: an older sink (replaced by a schema
        # change) is cleaned up before the current one's last drain.
        if self.run.streams.current(self.stream_name) is self:
            self.finish_stream()
        super().clean_up()

    # --- steps -------------------------------------------------------------------------------

    @property
    def _is_snapshot(self) -> bool:
        return self.run.streams.is_snapshot(self.stream_name)

    def _seen(self, keys: list[str]) -> None:
        """Keys present in the source this run, whether or not they are sent."""
        if self.run.settings.dry_run:
            self.run.streams.dry_run_seen(self.stream_name).update(keys)
        elif self._is_snapshot or self.stream_settings.delete_behavior != "none":
            self.run.ledger.mark_seen(self.stream_name, keys)

    def _changed(
        self, pending: list[tuple[ItemT, dict]]
    ) -> tuple[list[tuple[ItemT, dict]], dict[str, str]]:
        """Drop records whose payload Ortto already acknowledged (`skip_unchanged`).

        Also returns the payload hashes (ledger key -> hash) it computed, so the ledger
        is written without hashing every record a second time."""
        dry_run = self.run.settings.dry_run
        keys = [ledger_key(item.key) for item, _ in pending]
        if dry_run:
            self.run.streams.dry_run_seen(self.stream_name).update(keys)
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
        self, chunk: list[tuple[ItemT, dict]], send: Send, hashes: dict[str, str]
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
            status = outcome.status
            if outcome.acknowledged and status not in COUNTED | ACCEPTED:
                report.unusual(self.stream_name, status)
            elif outcome.acknowledged:
                report.count(self.stream_name, "accepted" if status in ACCEPTED else status)
            else:
                reason = f"Ortto answered '{outcome.status}': {outcome.error}"
                report.invalid(self.stream_name, self.describe(record), reason, record)

    def _record_as_in_ortto(
        self, pending: list[tuple[ItemT, dict]], hashes: dict[str, str]
    ) -> None:
        """`baseline`: the ledger takes the records as acknowledged, without their Ortto IDs
        (looked up when a removal needs one), so the next run sends only changes."""
        entries = []
        for item, _ in pending:
            key = ledger_key(item.key)
            entries.append((key, hashes.get(key) or payload_hash(self.payload(item)), None))
        self.run.ledger.acknowledge(self.stream_name, entries)
        self.run.report.count(self.stream_name, "baselined", len(entries))

    def _show_plan(self, pending: list[tuple[ItemT, dict]]) -> None:
        self.run.report.count(self.stream_name, "planned", len(pending))
        for item, _ in pending[: max(0, DRY_RUN_SAMPLES - self._samples_shown)]:
            self.logger.info("Dry run: would send for '%s': %s", self.stream_name, item.body())
            self._samples_shown += 1

    def _queue_deletions(self, deletions: list[Deletion]) -> None:
        """Deletions are applied at the stream's end, after the max_deletes check; until
        then they wait in the ledger, so a STATE emitted meanwhile cannot lose them."""
        if self.stream_settings.delete_behavior == "none" or self.run.settings.baseline:
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
        action = self.removal_action()
        if action == "none" or self.run.settings.baseline:
            return
        if not self.run.streams.finish_once(self.stream_name):
            return
        if self.run.streams.snapshot_ignored(self.stream_name):
            self.logger.warning(
                "Stream '%s': ACTIVATE_VERSION ignored for removals: its SCHEMA has "
                "bookmark_properties (incremental), so rows this run did not read have not "
                "left the source. Only records with _sdc_deleted_at are removed.",
                self.stream_name,
            )
        ledger = self.run.ledger
        entries = ledger.queued_deletions(self.stream_name)
        if self._is_snapshot:
            entries += ledger.not_seen(self.stream_name)
        dry_run_seen = self.run.streams.dry_run_seen(self.stream_name)
        entries = [e for e in dict(entries).items() if e[0] not in dry_run_seen]
        if not entries:
            return
        deletes.check_limit(
            self.stream_name, len(entries), self.stream_settings.max_deletes, action
        )
        if self.run.settings.dry_run:
            self.run.report.count(self.stream_name, "planned_deletes", len(entries))
            return
        self.remove_left(entries)

    # The SDK strips `_sdc_deleted_at` unless all record metadata is on (halving
    # throughput); deletes must be seen, so keep just that one.
    def _remove_sdc_metadata_from_record(self, record: dict) -> None:
        deleted_at = record.get(SDC_DELETED_AT)
        super()._remove_sdc_metadata_from_record(record)
        if deleted_at is not None:
            record[SDC_DELETED_AT] = deleted_at

    def _remove_sdc_metadata_from_schema(self) -> None:
        deleted_at = self.schema["properties"].get(SDC_DELETED_AT)
        super()._remove_sdc_metadata_from_schema()
        if deleted_at is not None:
            self.schema["properties"][SDC_DELETED_AT] = deleted_at

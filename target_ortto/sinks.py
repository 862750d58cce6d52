"""Sinks: buffer, fold and hand records to Ortto. Orchestration only; the work is elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks import BatchSink

from target_ortto import api
from target_ortto.fields import FieldPlan, Invalid, MergeRecord
from target_ortto.objects import FIND_STRATEGIES, MERGE_OBJECTS
from target_ortto.subscriptions import Subscription, SubscriptionPlan
from target_ortto.validation import RecordValidator

if TYPE_CHECKING:
    from target_ortto.target import Run

DRY_RUN_SAMPLES = 3
_SDC_DELETED_AT = "_sdc_deleted_at"
COUNTED = frozenset({"created", "merged", "subscribed", "unsubscribed"})


class OrttoSink(BatchSink):
    """Shared by every Ortto sink: map each record, fold same-key records, send a drain.

    Records with the same key in one drain are folded into one (later values win), so no
    two concurrent requests ever touch the same Ortto record. `process_batch` returns only
    when Ortto has answered every request: the SDK emits STATE only after that.
    """

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.run: Run = target.run
        self.stream_settings = self.run.settings.stream(stream_name)
        # A drain fans out into up to `max_concurrency` requests of `batch_size` records.
        self.MAX_SIZE_DEFAULT = self.run.settings.batch_size * self.run.settings.max_concurrency * 2
        self._samples_shown = 0

    def get_validator(self) -> RecordValidator | None:
        return RecordValidator(self.schema) if self.validate_schema else None

    @property
    def datetime_error_treatment(self) -> DatetimeErrorTreatmentEnum:
        # With validation on, a bad timestamp was already flagged (its record is never
        # sent), so the SDK's parser must not raise; without it, fail loudly.
        if self._validator is not None:
            return DatetimeErrorTreatmentEnum.NULL
        return DatetimeErrorTreatmentEnum.ERROR

    def map_record(self, record: Mapping[str, Any]) -> Any:
        """The record as the item this sink sends (it has a `.key`), or `Invalid`."""
        raise NotImplementedError

    def fold(self, earlier: Any, later: Any) -> Any:
        """Combine two items with the same key; the later one wins."""
        return later

    def send(self, pending: list[tuple[Any, dict]]) -> None:
        """Send one drain's items and account for every outcome."""
        raise NotImplementedError

    def describe(self, record: Mapping[str, Any]) -> str:
        """The record's identity in messages."""
        shown = {k: record.get(k) for k in self.key_properties}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "(no key)"

    def process_record(self, record: dict, context: dict) -> None:
        self.run.report.count(self.stream_name, "read")
        problem = self._validator.problem(record) if self._validator is not None else None
        item = Invalid(problem) if problem else self.map_record(record)
        if isinstance(item, Invalid):
            self.run.report.invalid(self.stream_name, self.describe(record), item.reason, record)
            return
        pending: dict[Any, tuple[Any, dict]] = context.setdefault("pending", {})
        earlier = pending.get(item.key)
        if earlier is not None:
            item = self.fold(earlier[0], item)
            self.tally_duplicate_merged()
        pending[item.key] = (item, record)

    def process_batch(self, context: dict) -> None:
        pending = list(context.get("pending", {}).values())
        if not pending:
            return
        if self.run.settings.dry_run:
            self.run.report.count(self.stream_name, "planned", len(pending))
            for item, _ in pending[: max(0, DRY_RUN_SAMPLES - self._samples_shown)]:
                self.logger.info("Dry run: would send for '%s': %s", self.stream_name, item.body())
                self._samples_shown += 1
            return
        self.send(pending)

    def account(self, pending: list[tuple[Any, dict]], outcomes: list[api.Outcome]) -> None:
        """Count each acknowledged record; hand each refused one to `on_invalid_record`."""
        report = self.run.report
        report.count(self.stream_name, "sent", len(pending))
        for (_, record), outcome in zip(pending, outcomes, strict=True):
            if outcome.acknowledged:
                status = outcome.status
                report.count(self.stream_name, status if status in COUNTED else "accepted")
            else:
                reason = f"Ortto answered '{outcome.status}': {outcome.error}"
                report.invalid(self.stream_name, self.describe(record), reason, record)

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
            self.logger.info(
                "Dry run: would create custom fields %s", [c.field_id for c in created]
            )

    def map_record(self, record: Mapping[str, Any]) -> MergeRecord | Invalid:
        return self.plan.apply(record)

    def fold(self, earlier: MergeRecord, later: MergeRecord) -> MergeRecord:
        earlier.fold(later)
        return earlier

    def send(self, pending: list[tuple[MergeRecord, dict]]) -> None:
        size = self.run.settings.batch_size
        chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
        merge = partial(api.merge, self.run.client, self.obj, options=self.options)
        results = self.run.client.run_all(
            partial(merge, [item.body() for item, _ in chunk]) for chunk in chunks
        )
        for chunk, outcomes in zip(chunks, results, strict=True):
            self.account(chunk, outcomes)

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

    def send(self, pending: list[tuple[Subscription, dict]]) -> None:
        groups: dict[str, list[tuple[Subscription, dict]]] = {}
        for item, record in pending:
            groups.setdefault(self.audience_id(item.audience), []).append((item, record))
        chunks = [
            (audience_id, group[i : i + api.SUBSCRIBE_BATCH])
            for audience_id, group in groups.items()
            for i in range(0, len(group), api.SUBSCRIBE_BATCH)
        ]
        results = self.run.client.run_all(
            partial(api.subscribe, self.run.client, audience_id, [s.body() for s, _ in chunk])
            for audience_id, chunk in chunks
        )
        for (_, chunk), outcomes in zip(chunks, results, strict=True):
            self.account(chunk, outcomes)

    def describe(self, record: Mapping[str, Any]) -> str:
        for column, _ in self.plan.identity_columns:
            if record.get(column) is not None:
                return f"{column}={record[column]!r}"
        return super().describe(record)

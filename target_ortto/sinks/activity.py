"""Activities, sent through `POST /v1/activities/create` by `person_id`, 100 a request.

Each drain: people the ledger does not know are first made sure of through the consent-safe
person merge (`consent.py`): Ortto subscribes a person an activity creates ("All people
added via the API are considered to be opted in", ortto-api.md "Consent"), and by
`person_id` Ortto ignores the activity's `fields`, so nothing an activity carries can create
or resubscribe anyone. Then the activities, keyed and back-dated. Ortto answers `queued`
whatever happens to an event (recorded/activities-create/), so what can go wrong is caught
before sending: definitions (`definitions.py`), attributes, size, the daily cap.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from target_ortto import api, consent
from target_ortto.activities import RETENTION, Activity, ActivityPlan
from target_ortto.client import BadRequest, OrttoClient
from target_ortto.convert import ConversionError
from target_ortto.errors import StreamError
from target_ortto.event_values import event_key
from target_ortto.items import Deletion, Invalid, MergeRecord
from target_ortto.ledger import ledger_key, payload_hash
from target_ortto.objects import PERSON
from target_ortto.sinks.base import SDC_DELETED_AT, OrttoSink, Send, chunked

ACTIVITIES_PATH = "/v1/activities/create"
# a-235: "50 events of one activity per person per 24 h"; what happens to the 51st is not
# documented (dropped, 400 or 429), so the excess is rejected here, never sent. Counted by
# when the events are sent (the cap is a rate), in hours: the last 25 hours are counted.
DAILY_CAP = 50
CAP_HOURS = 25
OVERWRITE = 2


def create_activities(
    client: OrttoClient, bodies: list[dict[str, Any]], is_async: bool, budget: list[int]
) -> list[api.Outcome]:
    """Up to 100 activities; one outcome per activity. A 400 with one `details` entry per
    activity gives each its reason; another 400 is split in halves (at most `budget` more
    refusals: each counts towards Ortto's ban of 15 bad requests in 15 s)."""
    try:
        answer = client.request("POST", ACTIVITIES_PATH, {"activities": bodies, "async": is_async})
    except BadRequest as exc:
        details = exc.body.get("details") if isinstance(exc.body, dict) else None
        if isinstance(details, list) and len(details) == len(bodies):
            return activity_outcomes({"activities": details}, len(bodies))
        if len(bodies) == 1 or budget[0] <= 0:
            if len(bodies) > 1:
                raise
            return [api.Outcome("invalid", error=str(exc))]
        budget[0] -= 1
        half = len(bodies) // 2
        return create_activities(client, bodies[:half], is_async, budget) + create_activities(
            client, bodies[half:], is_async, budget
        )
    return activity_outcomes(answer, len(bodies))


def activity_outcomes(answer: Any, count: int) -> list[api.Outcome]:
    """Recorded: `{"activities": [{"person_id", "status": "queued", "person_status"}]}`;
    a synchronous `ingested` (secondary sources, unrecorded) counts as created. An answer
    that does not itemise every activity took the request: they are `unconfirmed`."""
    entries = answer.get("activities") if isinstance(answer, dict) else None
    if not isinstance(entries, list) or len(entries) != count:
        return [api.Outcome(api.UNCONFIRMED)] * count
    outcomes = []
    for entry in entries:
        if not isinstance(entry, dict):
            outcomes.append(api.Outcome(api.UNCONFIRMED))
            continue
        status, error = str(entry.get("status") or ""), entry.get("error")
        person = entry.get("person_id")
        if error or status in api.REFUSED:
            reason = str(error or f"Ortto status '{status}'")
            outcomes.append(api.Outcome(status or "invalid", person, reason))
        else:
            status = "created" if status == "ingested" else status or api.UNCONFIRMED
            outcomes.append(api.Outcome(status, person))
    return outcomes


def _cap_key(activity: str, person: str, hour: int, n: int) -> str:
    """The ledger key of the n-th event of an activity sent to a person in an hour."""
    return f"{activity} {hour} {n} {person}"


def _cutoff(since: float | dt.date | None, now: dt.datetime) -> dt.datetime | None:
    if since is None:
        return None
    if isinstance(since, dt.date):
        return dt.datetime.combine(since, dt.time(), dt.timezone.utc)
    return now - dt.timedelta(days=float(since))


class ActivitySink(OrttoSink[Activity]):
    """Activities go after merges, links and subscriptions (spec section 4a)."""

    drain_order = 3

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        settings, stream = self.run.settings, self.stream_settings
        if stream.full_snapshot or stream.delete_behavior != "none":
            raise StreamError(
                f"Stream '{stream_name}' is an activity stream: its rows are events, which "
                "Ortto keeps, so nothing is removed for rows that leave. Remove its "
                "full_snapshot and delete_behavior settings."
            )
        self.plan = ActivityPlan.build(
            stream_name,
            self.schema,
            tuple(self.key_properties),
            activity=stream.activity,
            created_column=stream.created_column,
            field_map=stream.field_map,
            field_types=stream.field_types,
            merge_by=stream.merge_by,
            find_strategy=stream.find_strategy,
            default_phone_country=settings.default_phone_country,
            invalid_phones=settings.invalid_phones,
        )
        self.cutoff = _cutoff(stream.since, dt.datetime.now(dt.timezone.utc))
        self.people = f"{stream_name}#people"  # ledger namespaces of this stream's own
        self.caps = f"{stream_name}#cap"
        person = self.plan.person
        self.options = api.MergeOptions(
            merge_by=person.merge_by,
            merge_strategy=OVERWRITE,
            find_strategy=person.find_strategy,
            skip_non_existing=False,
            async_merge=settings.async_merge,
            suppression_field="str::email" if settings.skip_suppressed else None,
        )
        self.unsubscribe_new = not settings.subscribe_new_people and "bol::p" not in {
            c.field_id for c in person.columns
        }
        self._lock = threading.Lock()
        self._sent: Counter[tuple[str, str]] = Counter()  # (activity, person): last 25 h
        self._hour_rows: Counter[tuple[str, str, int]] = Counter()  # cap rows per hour
        self._beyond_retention = 0
        self._checked: set[str] = set()  # activities whose definition was checked
        self._people_seen: dict[Any, Any] = {}  # raw person columns -> converted

    def setup(self) -> None:
        super().setup()
        if self.plan.activity is not None:
            self._check_definition(self.plan.activity)
        if self.plan.created_column is None:
            self.logger.info(
                "Stream '%s': no created_column (nor occurred_at, created_at, timestamp, "
                "event_time): its events are dated when Ortto receives them.",
                self.stream_name,
            )

    def _check_definition(self, activity_id: str) -> None:
        self.run.definitions.ensure(self.stream_name, activity_id, self.plan.attributes)

    # --- records ------------------------------------------------------------------------

    def process_record(self, record: dict, context: dict) -> None:
        """Events older than `since` are skipped and counted, never sent."""
        if self.cutoff is not None:
            try:
                when = self.plan.created_of(record, dt.datetime.now(dt.timezone.utc))
            except ConversionError:
                when = None  # invalid: said by `map_record`
            if when is not None and when < self.cutoff:
                self.record_problem(record)  # consumes what was noted for it
                self.run.report.count(self.stream_name, "read")
                self.run.report.count(self.stream_name, "skipped_old")
                return
        super().process_record(record, context)

    def map_record(self, record: Mapping[str, Any]) -> Activity | Deletion | Invalid:
        if record.get(SDC_DELETED_AT) is not None:  # an event deleted at the source: kept
            return Deletion(("deleted", event_key(record, self.plan.key_properties)))
        item = self.plan.apply(record, dt.datetime.now(dt.timezone.utc), self._people_seen)
        if isinstance(item, Activity):
            if item.activity_id not in self._checked:  # before anything of it is sent
                self._check_definition(item.activity_id)
                self._checked.add(item.activity_id)
            item.person_ref = repr(item.person.key)  # stable text: a tuple of str, int, None
        return item

    def payload(self, item: Activity) -> Any:
        """An event is its key: once Ortto acknowledged it, it is never sent again."""
        return list(item.key)

    def _changed(
        self, pending: list[tuple[Activity, dict]]
    ) -> tuple[list[tuple[Activity, dict]], dict[str, str]]:
        """Acknowledged keys are dropped whatever `skip_unchanged` says: the ledger is the
        guarantee that an event is sent once (Ortto's handling of a repeat is unproven)."""
        keys = [ledger_key(item.key) for item, _ in pending]
        dry_run = self.run.settings.dry_run
        if dry_run:
            self.run.streams.dry_run_seen(self.stream_name).update(keys)
        if not pending:
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

    def describe(self, record: Mapping[str, Any]) -> str:
        names = [
            c.name for c in self.plan.person.columns if c.field_id in self.plan.person.merge_by
        ]
        shown = {n: record.get(n) for n in [*self.key_properties, *names] if n in record}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or super().describe(record)

    # --- a drain ------------------------------------------------------------------------

    def requests(
        self, pending: list[tuple[Activity, dict]]
    ) -> list[tuple[list[tuple[Activity, dict]], Send]]:
        pending = self._within_cap(pending)
        ids, refused = self._people_first([(i.person_ref, i.person) for i, _ in pending])
        ready = []
        for item, record in pending:
            person = item.person_ref
            if person in refused:
                reason = f"its person could not be written first: {refused[person]}"
                self.run.report.invalid(self.stream_name, self.describe(record), reason, record)
            else:
                ready.append((item, record, item.body(ids[person])))
        retention = dt.datetime.now(dt.timezone.utc) - RETENTION
        with self._lock:
            self._beyond_retention += sum(1 for i, _, _ in ready if i.when and i.when < retention)
        budget = [api.BISECT_BAD_REQUESTS]
        return [
            ([(i, r) for i, r, _ in chunk], partial(self._send, chunk, budget))
            for chunk in chunked(ready, self.run.settings.batch_size, lambda p: p[2])
        ]

    def _send(
        self, chunk: list[tuple[Activity, dict, dict]], budget: list[int]
    ) -> list[api.Outcome]:
        bodies = [body for _, _, body in chunk]
        outcomes = create_activities(self.run.client, bodies, self.run.settings.async_merge, budget)
        hour = int(time.time() // 3600)
        rows = []
        with self._lock:
            for (item, _, body), outcome in zip(chunk, outcomes, strict=True):
                if outcome.acknowledged:
                    pair = (item.activity_id, item.person_ref, hour)
                    self._hour_rows[pair] += 1
                    key = _cap_key(*pair, self._hour_rows[pair])
                    rows.append((key, "sent", body["person_id"]))
        self.run.ledger.acknowledge(self.caps, rows)
        return outcomes

    def _within_cap(self, pending: list[tuple[Activity, dict]]) -> list[tuple[Activity, dict]]:
        """At most `DAILY_CAP` events of one activity per person in 24 h: those sent in the
        last `CAP_HOURS` hours (this run and earlier ones, from the ledger) count."""
        pairs = {(i.activity_id, i.person_ref) for i, _ in pending}
        self._load_caps(pairs)
        kept, over = [], []
        with self._lock:
            for item, record in pending:
                pair = (item.activity_id, item.person_ref)
                if self._sent[pair] >= DAILY_CAP:
                    over.append(record)
                else:
                    self._sent[pair] += 1
                    kept.append((item, record))
        for record in over:
            reason = (
                f"more than {DAILY_CAP} events of one activity for one person in 24 hours: "
                "Ortto keeps at most 50 and does not say what happens to the rest, so it was "
                "not sent; send it after 24 hours, or as another activity"
            )
            self.run.report.invalid(self.stream_name, self.describe(record), reason, record)
        return kept

    def _load_caps(self, pairs: set[tuple[str, str]]) -> None:
        """Counts of earlier runs' events of each new (activity, person) pair, from the ledger:
        one row per event sent, keyed (activity, person, hour, n)."""
        with self._lock:
            new = [p for p in pairs if p not in self._sent]
            for pair in new:
                self._sent[pair] += 0
        if not new:
            return
        hour = int(time.time() // 3600)
        hours = range(hour - CAP_HOURS + 1, hour + 1)
        first = {_cap_key(*p, h, 1): (p, h) for p in new for h in hours}
        used = [first[k] for k in self.run.ledger.known(self.caps, list(first))]
        if not used:
            return
        every = {_cap_key(*p, h, n): (p, h) for p, h in used for n in range(1, DAILY_CAP + 1)}
        with self._lock:
            for key in self.run.ledger.known(self.caps, list(every)):
                pair, at = every[key]
                self._sent[pair] += 1
                self._hour_rows[(*pair, at)] += 1

    def _people_first(
        self, people: list[tuple[str, MergeRecord]]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Each person's Ortto ID (person ledger key -> ID), and why people were refused.

        People the ledger knows with the same fields go straight by ID; known ones with new
        fields get the overwrite merge (async_merge applies); unknown ones the consent-safe
        create (`consent.py`), always answered, since the activities need their IDs."""
        folded: dict[str, MergeRecord] = {}
        for key, person in people:
            if key in folded:
                folded[key].fold(person)
            else:
                folded[key] = MergeRecord(person.key, dict(person.fields))
        if self.plan.by_person_id:
            return {k: str(p.fields[PERSON.id_field]) for k, p in folded.items()}, {}
        ledger = self.run.ledger
        hashes = {key: payload_hash(p.body()) for key, p in folded.items()}
        ids = {}
        for key in ledger.unchanged(self.people, hashes, mark_seen=False):
            found = ledger.ortto_id(self.people, key)
            if found:
                ids[key] = found
        rest = [key for key in folded if key not in ids]
        known = ledger.known(self.people, rest)
        sync = replace(self.options, async_merge=False)
        create = partial(consent.create_then_overwrite, options=self.options)
        groups = [
            ([k for k in rest if k in known], partial(api.merge, options=self.options)),
            (
                [k for k in rest if k not in known],
                create if self.unsubscribe_new else partial(api.merge, options=sync),
            ),
        ]
        client, size = self.run.client, self.run.settings.batch_size
        tasks, chunks = [], []
        for keys, send in groups:
            for chunk in chunked(keys, size, lambda k: folded[k].body()):
                chunks.append(chunk)
                bodies = [folded[k].body() for k in chunk]
                tasks.append(partial(send, client, PERSON, bodies))
        refused: dict[str, str] = {}
        acknowledged = []
        for chunk, outcomes in zip(chunks, self.run.dispatcher.run_all(tasks), strict=True):
            for key, outcome in zip(chunk, outcomes, strict=True):
                found = outcome.ortto_id or ledger.ortto_id(self.people, key)
                if not outcome.acknowledged:
                    refused[key] = f"Ortto answered '{outcome.status}': {outcome.error}"
                elif not found:
                    refused[key] = f"Ortto answered '{outcome.status}' without the person's ID"
                else:
                    ids[key] = found
                    acknowledged.append((key, hashes[key], found))
        ledger.acknowledge(self.people, acknowledged)
        self.run.report.count(self.stream_name, "people_merged", len(acknowledged))
        return ids, refused

    def _show_plan(self, pending: list[tuple[Activity, dict]]) -> None:
        """A dry run also says how many people would be made sure of first."""
        keys = list({item.person_ref for item, _ in pending})
        if not self.plan.by_person_id:
            unknown = len(keys) - len(self.run.ledger.known(self.people, keys))
            self.run.report.count(self.stream_name, "planned_people", unknown)
        super()._show_plan(pending)

    # --- the end of the stream ------------------------------------------------------------

    def removal_action(self) -> str:
        return "none"

    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        """Never called: events are not removed (`removal_action` is none)."""

    def finish_stream(self) -> None:
        super().finish_stream()
        if self._beyond_retention:
            self.logger.warning(
                "Stream '%s': %d events sent are older than 90 days: Ortto keeps activity "
                "data 90 days by default, so they are accepted but do not show in feeds or "
                "filters. To skip them, set streams.%s.since (e.g. 90).",
                self.stream_name,
                self._beyond_retention,
                self.stream_name,
            )

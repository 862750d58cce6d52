"""People linked to their accounts (spec section 4b): the people sink that notes each
person's wanted link, and the internal link sink that applies them after the merges.

`PeopleSink` is the merge sink of people streams: each drain hands its people's links to
the stream's `LinkSink` and tells it the person IDs Ortto answered. `LinkSink` is no SDK
sink: registered with the run's streams at drain order 1, it drains after people and
accounts (order 0: so accounts pending in the run exist first) and before subscriptions
and activities, and always before STATE (`TargetOrtto._drain_all`).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import Any

from target_ortto import api, link_api
from target_ortto.client import BadRequest
from target_ortto.items import MergeRecord
from target_ortto.ledger import ledger_key
from target_ortto.links import KEEP, Changes, LinkPlan, Want, batches, plan_changes
from target_ortto.objects import ACCOUNT, PERSON
from target_ortto.sinks.base import Send
from target_ortto.sinks.merge import MergeSink

DRY_RUN_SAMPLES = 3
UNTOUCHED = frozenset({"ignored", "skipped"})  # merge statuses of a person left as it was
PLANNED = "(an account this run merges)"  # a dry run's stand-in for its ID; never sent


class PeopleSink(MergeSink):
    """People merges, and each person's account link noted for the stream's `LinkSink`."""

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        self.link_plan: LinkPlan | None = None
        super().__init__(target, stream_name, schema, key_properties)
        self.links: LinkSink | None = None
        if self.link_plan is not None:
            current = self.run.streams.current(LinkSink.name_for(stream_name))
            self.links = current if isinstance(current, LinkSink) else LinkSink(self)
            self.links.plan = self.link_plan  # a new SCHEMA may change the column
            self.run.streams.register(self.links)

    def not_fields(self) -> frozenset[str]:
        settings = self.run.settings
        self.link_plan = LinkPlan.build(
            self.stream_name,
            self.schema.get("properties") or {},
            self.stream_settings.account_link,
            self.stream_settings.field_map,
            settings.null_values == "clear",
        )
        return frozenset({self.link_plan.column}) if self.link_plan else frozenset()

    def setup(self) -> None:
        super().setup()
        if self.link_plan is not None:
            self.logger.info(
                "Stream '%s': column '%s' links each person to the account with that %s",
                self.stream_name,
                self.link_plan.column,
                self.link_plan.by,
            )

    def process_batch(self, context: dict) -> None:
        if self.links is not None and self.link_plan is not None:
            for item, record in context.get("pending", {}).values():
                if isinstance(item, MergeRecord):
                    value = self.link_plan.value(record)
                    if value is not KEEP:
                        key = ledger_key(item.key)
                        self.links.want(Want(key, item.key, value, record, self.describe(record)))
        super().process_batch(context)

    def requests(
        self, pending: list[tuple[MergeRecord, dict]]
    ) -> list[tuple[list[tuple[MergeRecord, dict]], Send]]:
        sent = super().requests(pending)
        if self.links is None:
            return sent
        return [(chunk, partial(self._noting_ids, chunk, send)) for chunk, send in sent]

    def _noting_ids(self, chunk: list[tuple[MergeRecord, dict]], send: Send) -> list[api.Outcome]:
        """Send, and tell the link sink each person's ID (or that Ortto refused them)."""
        outcomes = send()
        if self.links is not None:
            keys = [ledger_key(item.key) for item, _ in chunk]
            self.links.answered(list(zip(keys, outcomes, strict=True)))
        return outcomes

    def remove_left(self, entries: list[tuple[str, str | None]]) -> None:
        super().remove_left(entries)
        if self.links is not None:  # people removed from Ortto left their accounts too
            self.run.ledger.forget(self.links.stream_name, [key for key, _ in entries])


_CACHES: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], str | None]]
_CACHES = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _account_cache(run: Any) -> dict[tuple[str, str], str | None]:
    """The accounts resolved in one run, shared by its people streams: one look-up per
    value a run."""
    with _CACHES_LOCK:
        return _CACHES.setdefault(run, {})


class LinkSink:
    """A people stream's links, applied after the merges of a drain (drain order 1)."""

    drain_order = 1

    @staticmethod
    def name_for(stream_name: str) -> str:
        """The ledger namespace (and registry name) of a stream's links."""
        return f"{stream_name}#account"

    def __init__(self, people: PeopleSink) -> None:
        assert people.link_plan is not None
        self.plan: LinkPlan = people.link_plan
        self.people_stream = people.stream_name
        self.stream_name = self.name_for(people.stream_name)
        self.run = people.run
        self.logger = people.logger
        self._wants: dict[str, Want] = {}
        self._ids: dict[str, str] = {}  # person key -> ID, from this run's merge answers
        # People whose merge Ortto refused, or left untouched (insert mode: an existing
        # person; update mode: one that does not exist): their link is not touched either.
        self._refused: set[str] = set()
        self._accounts = _account_cache(self.run)  # (by, value) -> ID, for the whole run
        self._members: Counter[str] | None = None
        self._samples = 0
        self._lock = threading.Lock()  # the wants and IDs (merge answers arrive in threads)
        self._draining = threading.RLock()  # one drain at a time; never held by `_lock`

    # --- fed by the people sink -----------------------------------------------------------

    def want(self, want: Want) -> None:
        with self._lock:
            self._wants[want.key] = want
            self._refused.discard(want.key)

    def answered(self, outcomes: list[tuple[str, api.Outcome]]) -> None:
        with self._lock:
            for key, outcome in outcomes:
                if not outcome.acknowledged or outcome.status in UNTOUCHED:
                    self._refused.add(key)
                elif outcome.ortto_id:
                    self._ids[key] = outcome.ortto_id

    # --- the drain ----------------------------------------------------------------------------

    def drain_now(self) -> None:
        """Merges first (people, and accounts pending in the run), then this drain's links."""
        with self._draining:
            for sink in self.run.streams.draining_before(self.drain_order):
                sink.drain_now()  # their answers come in under `_lock`, so not held here
            with self._lock:
                wants = [w for k, w in self._wants.items() if k not in self._refused]
                self._wants = {}
            if wants:
                self._apply(wants)

    def _apply(self, wants: list[Want]) -> None:
        settings, ledger, report = self.run.settings, self.run.ledger, self.run.report
        wants = self._changed(wants)
        if settings.baseline:
            ledger.acknowledge(
                self.stream_name,
                [(w.key, self.plan.digest(w.value), None) for w in wants if w.value is not None],
            )
            ledger.forget(self.stream_name, [w.key for w in wants if w.value is None])
            report.count(self.people_stream, "baselined_links", len(wants))
            return
        wants = self._with_accounts(wants)
        if settings.dry_run:
            self._show_plan(wants)
            return
        previous = {w.key: ledger.ortto_id(self.stream_name, w.key) for w in wants}
        acting = [w for w in wants if w.value is not None or previous[w.key]]
        persons = self._person_ids(acting)
        with self._lock:
            for want in wants:
                self._ids.pop(want.key, None)
        changes = plan_changes(acting, persons, self._account_ids(), previous, self._counts())
        for want, reason in changes.refused:
            self._invalid(want, reason)
        ledger.acknowledge(
            self.stream_name, [(w.key, self.plan.digest(w.value), a) for w, a in changes.kept]
        )
        self._send(changes, persons)

    def _changed(self, wants: list[Want]) -> list[Want]:
        """Links the ledger does not remember as they are now (an unchanged one is never
        resent); an unlink only of a person the ledger remembers a link of."""
        ledger = self.run.ledger
        digests = {w.key: self.plan.digest(w.value) for w in wants if w.value is not None}
        same = ledger.unchanged(self.stream_name, digests, mark_seen=False) if digests else set()
        unlinks = [w.key for w in wants if w.value is None]
        linked = ledger.known(self.stream_name, unlinks) if unlinks else set()
        return [w for w in wants if (w.key not in same if w.value else w.key in linked)]

    def _with_accounts(self, wants: list[Want]) -> list[Want]:
        """Wants whose account exists (or was created); the others are reported invalid
        with a reason naming the value, and their people stay written."""
        by, cache = self.plan.by, self._accounts
        values = {w.value for w in wants if w.value is not None}
        bad = {v: p for v in values if (p := self.plan.problem(v))}
        for value in values - set(bad):  # an account merged since a miss is found now
            if cache.get((by, value)) is None and (found := self._in_ledger(value)):
                cache[(by, value)] = found
        todo = [v for v in values - set(bad) if (by, v) not in cache]
        found = self.run.dispatcher.run_all(partial(self._look_up, v) for v in todo)
        cache.update(((by, v), i) for v, i in zip(todo, found, strict=True))
        planned = self.run.settings.dry_run and self.run.settings.create_missing_accounts
        keep = []
        for want in wants:
            if want.value is None or (planned and want.value not in bad):
                keep.append(want)
            elif want.value in bad:
                self._invalid(want, bad[want.value])
            elif cache[(by, want.value)] is None:
                self._invalid(want, self._missing(want.value))
            else:
                keep.append(want)
        return keep

    def _in_ledger(self, value: str) -> str | None:
        """The ID of an account this target merged (the ID itself for Ortto IDs)."""
        by = self.plan.by
        if by == ACCOUNT.id_field:
            return value
        for sink in self.run.streams.draining_before(self.drain_order):
            plan = getattr(sink, "plan", None)
            if getattr(sink, "obj", None) is ACCOUNT and plan is not None and by in plan.merge_by:
                key = ledger_key(plan.key_of({by: value}))
                found = self.run.ledger.ortto_id(sink.stream_name, key)
                if found:
                    return found
                if self.run.settings.dry_run and key in self.run.streams.dry_run_seen(
                    sink.stream_name
                ):
                    return PLANNED  # a dry run merges nothing, but would merge this first
        return None

    def _look_up(self, value: str) -> str | None:
        """One `/v1/accounts/get` for a value (once a run); created first when
        `create_missing_accounts` (not in a dry run)."""
        by, client, settings = self.plan.by, self.run.client, self.run.settings
        found = link_api.find_account(client, by, value)
        if found or not settings.create_missing_accounts or settings.dry_run:
            return found
        outcome = link_api.create_account(client, by, value)
        if outcome.ortto_id:
            self.run.report.count(self.people_stream, "accounts_created")
        return outcome.ortto_id

    def _missing(self, value: str) -> str:
        if self.run.settings.create_missing_accounts and not self.run.settings.dry_run:
            return f"account {value!r} ({self.plan.by}) could not be created in Ortto"
        return (
            f"no Ortto account has {self.plan.by} {value!r} (column '{self.plan.column}'), "
            "so the person is written but not linked. Load the account first (an accounts "
            "stream in the same run is merged before links), or set create_missing_accounts: "
            "true to create it"
        )

    def _account_ids(self) -> dict[str, str]:
        by = self.plan.by
        return {v: i for (b, v), i in self._accounts.items() if b == by and i is not None}

    def _person_ids(self, wants: list[Want]) -> dict[str, str]:
        """Person IDs: from this run's merge answers, else the ledger, else a look-up by
        the person's merge key."""
        ids: dict[str, str] = {}
        missing = []
        with self._lock:
            answered = {w.key: self._ids.get(w.key) for w in wants}
        for want in wants:
            found = answered[want.key] or self.run.ledger.ortto_id(self.people_stream, want.key)
            if found:
                ids[want.key] = found
            else:
                missing.append(want)
        found_ids = self.run.dispatcher.run_all(partial(self._find_person, w) for w in missing)
        ids.update((w.key, i) for w, i in zip(missing, found_ids, strict=True) if i)
        return ids

    def _find_person(self, want: Want) -> str | None:
        key: Any = want.merge_key
        field_id, value = key[0] if isinstance(key[0], tuple) else key  # find_strategy all
        if field_id == PERSON.id_field:
            return str(value)  # merged by Ortto's person ID: the key is the ID
        return api.find_id(self.run.client, PERSON, field_id, value)

    def _counts(self) -> Counter[str]:
        """People per account, counted from the links the ledger remembers (read once a
        run, before this run marks any: `not_seen` then holds every link)."""
        if self._members is None:
            links = self.run.ledger.not_seen(self.stream_name)
            self._members = Counter(account for _, account in links if account)
        return self._members

    def _send(self, changes: Changes, persons: Mapping[str, str]) -> None:
        """Removes first (the old account of a move, and unlinks), then adds; each call's
        people are remembered by the ledger once Ortto took it."""
        ledger, report, stream = self.run.ledger, self.run.report, self.people_stream
        removes = batches(changes.remove)
        failed = self._calls("remove", removes, persons)
        unlinked = [
            w.key
            for _, people in removes
            for w in people
            if w.value is None and w.key not in failed
        ]
        ledger.forget(self.stream_name, unlinked)
        report.count(stream, "unlinked", len(unlinked))
        adds = batches(changes.add)
        failed = self._calls("add", adds, persons)
        done = [(w, a) for a, people in adds for w in people if w.key not in failed]
        entries = [(w.key, self.plan.digest(w.value), a) for w, a in done if w.value]
        ledger.acknowledge(self.stream_name, entries)
        moved = sum(w.key in changes.moved for w, _ in done)
        report.count(stream, "moved", moved)
        report.count(stream, "linked", len(done) - moved)

    def _calls(
        self, action: str, calls: list[tuple[str, list[Want]]], persons: Mapping[str, str]
    ) -> set[str]:
        """Make the calls; the people of a call Ortto refused are reported invalid with
        Ortto's message (their keys are returned)."""
        answers = self.run.dispatcher.run_all(
            partial(self._call, action, account, [persons[w.key] for w in people])
            for account, people in calls
        )
        failed: set[str] = set()
        for (_, people), error in zip(calls, answers, strict=True):
            if error is not None:
                for want in people:
                    failed.add(want.key)
                    self._invalid(want, f"Ortto refused to {action} the account link: {error}")
        return failed

    def _call(self, action: str, account: str, person_ids: list[str]) -> str | None:
        try:
            link_api.contacts(self.run.client, action, account, person_ids)
        except BadRequest as exc:
            return str(exc)
        return None

    def _invalid(self, want: Want, reason: str) -> None:
        self.run.report.count(self.people_stream, "links_failed")
        self.run.report.invalid(
            self.people_stream, want.describe, f"account link: {reason}", want.record
        )

    def _show_plan(self, wants: list[Want]) -> None:
        self.run.report.count(self.people_stream, "planned_links", len(wants))
        for want in wants[: max(0, DRY_RUN_SAMPLES - self._samples)]:
            target = f"account {want.value!r}" if want.value is not None else "no account"
            self.logger.info(
                "Dry run: would link %s of '%s' to %s", want.describe, self.people_stream, target
            )
            self._samples += 1

"""Audience memberships, set through `PUT /v1/audience/subscribe`, 100 people a request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

from target_ortto import api
from target_ortto.items import Invalid, Subscription
from target_ortto.sinks.base import OrttoSink, Send, chunked
from target_ortto.subscriptions import SubscriptionPlan


class AudienceSink(OrttoSink[Subscription]):
    """Subscriptions depend on people existing, so merges drain first (spec section 4)."""

    drain_order = 2

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        stream = self.stream_settings
        self.plan = SubscriptionPlan.build(
            stream_name, self.schema, stream.audience, stream.field_map
        )

    def setup(self) -> None:
        super().setup()
        if self.plan.ignored_columns:
            self.logger.info(
                "Stream '%s': columns %s are not read (an audience stream reads identity, "
                "audience, subscribed and sms_opted_in)",
                self.stream_name,
                list(self.plan.ignored_columns),
            )
        if self.plan.audience is not None:
            self.run.preflight.audience_id(self.plan.audience)

    def map_record(self, record: Mapping[str, Any]) -> Subscription | Invalid:
        item = self.plan.apply(record)
        if isinstance(item, Subscription):
            self.run.preflight.audience_id(item.audience)  # an unknown name stops the run
        return item

    def requests(
        self, pending: list[tuple[Subscription, dict]]
    ) -> list[tuple[list[tuple[Subscription, dict]], Send]]:
        groups: dict[str, list[tuple[Subscription, dict]]] = {}
        for item, record in pending:
            audience_id = self.run.preflight.audience_id(item.audience)
            groups.setdefault(audience_id, []).append((item, record))
        subscribe = partial(api.subscribe, self.run.client)
        return [
            (chunk, partial(subscribe, audience_id, [s.body() for s, _ in chunk]))
            for audience_id, group in groups.items()
            for chunk in chunked(group, api.SUBSCRIBE_BATCH)
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
        results = self.run.dispatcher.run_all(send for _, send in self.requests(leaving))
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

"""Consent-safe creation of people (spec section 4c), shared by people and activity streams.

Ortto subscribes a person it creates without `bol::p` — by a merge ("assumed to be true by
default", ../shared/seeds/003…) and equally by an activity ("All people added via the API
are considered to be opted in"): ortto-api.md, "Consent". So people the target may create
go first through an append-only merge carrying `bol::p: false`: new people are created
complete and unsubscribed, existing ones keep their permission (append-only fills empty
fields only, and every person has a permission). Only the people Ortto says existed then
get the overwrite merge, without `bol::p`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from target_ortto import api
from target_ortto.client import OrttoClient
from target_ortto.objects import OrttoObject

EMAIL_PERMISSION = "bol::p"
APPEND = 1  # Ortto's append-only merge strategy


def with_email_permission_false(body: Mapping[str, Any]) -> dict[str, Any]:
    return {**body, "fields": {**body["fields"], EMAIL_PERMISSION: False}}


def create_options(options: api.MergeOptions) -> api.MergeOptions:
    """The creating merge: append-only, and always answered (the overwrite that follows
    needs to know who existed)."""
    return replace(options, merge_strategy=APPEND, async_merge=False)


def create_then_overwrite(
    client: OrttoClient,
    obj: OrttoObject,
    bodies: Sequence[Mapping[str, Any]],
    options: api.MergeOptions,
) -> list[api.Outcome]:
    """New people created unsubscribed and complete; then the overwrite, without `bol::p`,
    for the people Ortto says existed or did not say (never for a refused one). A first
    load into an empty instance needs no second request."""
    unsubscribed = [with_email_permission_false(b) for b in bodies]
    outcomes = api.merge(client, obj, unsubscribed, create_options(options))
    again = [i for i, o in enumerate(outcomes) if o.acknowledged and o.status != "created"]
    if again:
        merged = api.merge(client, obj, [bodies[i] for i in again], options)
        for index, outcome in zip(again, merged, strict=True):
            # An async overwrite answers without IDs; the first answer had them.
            ortto_id = outcome.ortto_id or outcomes[index].ortto_id
            outcomes[index] = replace(outcome, ortto_id=ortto_id)
    return outcomes

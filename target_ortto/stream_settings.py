"""`streams.<name>`: the per-stream settings, declared once as fields of `StreamSettings`
(see `settings` for how a declaration becomes schema, parsing and docs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from target_ortto.convert import ConversionError, days_or_date
from target_ortto.errors import ConfigError
from target_ortto.field_types import CHOSEN_TYPES
from target_ortto.links import parse_account_link
from target_ortto.objects import FIND_STRATEGIES, MERGE_OBJECTS, OBJECT_NAMES, infer_object
from target_ortto.setting_fields import choice, parse_fields, setting

DELETE_BEHAVIORS = ("none", "clear", "archive", "delete")
_ACTIVITY = (
    "Activity streams: the activity's name (Deal stage changed -> act:cm:deal-stage-changed) "
    "or act:cm: ID; else a per-row activity column names it."
)
_CREATED_COLUMN = (
    "Activity streams: the column saying when the event happened (default: the first of "
    "occurred_at, created_at, timestamp, event_time)."
)
_SINCE = (
    "Activity streams: skip events older than this date (YYYY-MM-DD) or number of days "
    "(counted as skipped_old)."
)
MODES = tuple(dict.fromkeys(mode for obj in MERGE_OBJECTS.values() for mode in obj.modes))


def _merge_by(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or len(value) > 3:
        raise ConfigError(
            f"Setting '{name}' must be a list of one to three columns (accounts: one or two)."
        )
    return tuple(str(m) for m in value)


def _field_map(name: str, value: Any) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Setting '{name}' must map column names to field IDs.")
    return dict(value)


def _field_types(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Setting '{name}' must map column names to custom field types.")
    wrong = {k: v for k, v in value.items() if v not in CHOSEN_TYPES}
    if wrong:
        raise ConfigError(
            f"Setting '{name}' has types the target cannot create a custom field with: "
            f"{wrong}; allowed: {', '.join(CHOSEN_TYPES)}."
        )
    return dict(value)


def _since(name: str, value: Any) -> float | dt.date | None:
    try:
        return None if value is None else days_or_date(value)
    except ConversionError as exc:
        raise ConfigError(f"Setting '{name}' must be {exc}.") from None


@dataclass(frozen=True)
class StreamSettings:
    """`streams.<name>` for one stream; each field declares one per-stream setting."""

    object: str | None = setting(
        None,
        "Which Ortto object the stream becomes; inferred from the stream name when unset.",
        choices=OBJECT_NAMES,
    )
    mode: str = setting(
        "upsert",
        "upsert: create or overwrite; update: existing people only (not accounts); "
        "insert: new records only, existing ones untouched; append: fill empty fields only.",
        choices=MODES,
    )
    merge_by: tuple[str, ...] = setting(
        (),
        "Columns or field IDs Ortto finds existing records by (people: up to three, accounts: "
        "one or two); when empty, people by email (or external ID if there is no email "
        "column), accounts by name. ortto_person_id / ortto_account_id must stand alone.",
        max_items=3,
        parse=_merge_by,
    )
    find_strategy: str = setting(
        "any",
        "With several merge_by fields: any matches by the first that finds a record, "
        "next_if_empty uses the next only when the one before is empty, all (people only) "
        "requires every one.",
        choices=tuple(FIND_STRATEGIES),
    )
    field_map: Mapping[str, str | None] = setting(
        {},
        "Column -> Ortto field ID overrides of the automatic mapping; null drops the column.",
        parse=_field_map,
    )
    field_types: Mapping[str, str] = setting(
        {},
        "Column -> the type of the custom field the target names for it (text, large_text, "
        "integer, decimal, bool, date, time), instead of the type its schema gives; e.g. "
        '{"bio": "large_text"} for text over 255 characters.',
        parse=_field_types,
    )
    delete_behavior: str = setting(
        "none",
        "What a deleted record, or a row that left a full snapshot, does.",
        choices=DELETE_BEHAVIORS,
    )
    full_snapshot: bool = setting(
        False, "Each run sends the whole set: keys not seen in a run have left it."
    )
    audience: str | None = setting(
        None,
        "Audience streams: the audience ID or exact name (or audience_id / audience_name "
        "columns per row).",
    )
    activity: str | None = setting(None, _ACTIVITY)
    created_column: str | None = setting(None, _CREATED_COLUMN)
    since: float | None = setting(None, _SINCE, parse=_since)  # a number, or a date as text
    max_deletes: int = setting(
        100,
        "Refuse (nothing removed, non-zero exit) a run that would delete, archive, clear or "
        "unsubscribe more than this.",
        minimum=0,
    )
    account_link: Mapping[str, str] | None = setting(
        None,
        'People streams: {"column": <column>, "by": str:o:name, str:o:website or '
        "str:o:account_id} links each person to the account that column names; null links "
        "none. Unset: a column account_name, company, company_name, organization, "
        "organization_name (by name), account_website, company_website, company_domain (by "
        "website) or ortto_account_id (Ortto's account ID).",
        parse=parse_account_link,
    )


def _stream_settings(name: str, raw: Any) -> StreamSettings:
    where = f"streams.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Setting '{where}' must be an object of per-stream settings.")
    keys = [f.name for f in fields(StreamSettings)]
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(
            f"Setting '{where}' has unknown keys {unknown}; allowed: {', '.join(keys)}."
        )
    settings = StreamSettings(**parse_fields(StreamSettings, raw, f"{where}."))
    if "account_link" in raw and raw["account_link"] is None:
        settings = replace(settings, account_link={})  # null: link no account
    obj = settings.object or infer_object(name)
    if settings.account_link and obj not in (None, "person"):
        raise ConfigError(f"Setting '{where}.account_link' is for people streams, not {obj}.")
    if obj in MERGE_OBJECTS:
        merge_object = MERGE_OBJECTS[obj]
        choice(f"{where}.mode", settings.mode, merge_object.modes)
        choice(f"{where}.find_strategy", settings.find_strategy, merge_object.find_strategies)
        if len(settings.merge_by) > merge_object.max_merge_by:
            raise ConfigError(
                f"Setting '{where}.merge_by' has {len(settings.merge_by)} fields; Ortto takes "
                f"at most {merge_object.max_merge_by} for {obj} merges."
            )
    return settings


def parse_streams(name: str, value: Any) -> dict[str, StreamSettings]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Setting '{name}' must be an object keyed by stream name.")
    return {stream: _stream_settings(stream, raw) for stream, raw in value.items()}

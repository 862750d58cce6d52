"""Every setting, declared once, as a field of `Settings` or `StreamSettings`.

A field's name, type and `setting(...)` are all there is to a setting: the JSON schema that
`--about` shows (`config_schema`), the parsing of a config into frozen settings
(`parse_settings`), and the README tables and Meltano plugin settings (`settings_docs`)
follow from them. What a schema cannot express (key hygiene, URLs, object/mode
combinations) is a field's `parse` hook or `_stream_settings`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from target_ortto.errors import ConfigError, shown_url
from target_ortto.field_types import CHOSEN_TYPES
from target_ortto.links import parse_account_link
from target_ortto.objects import FIND_STRATEGIES, MERGE_OBJECTS, OBJECT_NAMES, infer_object
from target_ortto.setting_fields import REQUIRED, choice, object_schema, parse_fields, setting

REGION_URLS = {
    "default": "https://api.ap3api.com",
    "au": "https://api.au.ap3api.com",
    "eu": "https://api.eu.ap3api.com",
}
DELETE_BEHAVIORS = ("none", "clear", "archive", "delete")
MODES = tuple(dict.fromkeys(mode for obj in MERGE_OBJECTS.values() for mode in obj.modes))


# `parse` hooks, (setting name, value) -> value: the checks a JSON schema cannot express.


def _api_key(name: str, value: Any) -> str:
    if not value or not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"Setting '{name}' is required, as text: the private key of an Ortto custom API "
            "data source (Ortto: Data sources > Custom API). Set TARGET_ORTTO_API_KEY or "
            f"`meltano config set target-ortto {name}`."
        )
    value = value.strip()
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ConfigError(
            f"Setting '{name}' has characters no Ortto key has (spaces, line breaks or "
            "non-ASCII): copy the key again from Ortto (Data sources > Custom API)."
        )
    return value


def _api_url(name: str, value: Any) -> str | None:
    if not value:
        return None
    parts = urlsplit(str(value))
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"Setting '{name}' must be an http(s) URL, got {shown_url(value)!r}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"Setting '{name}' may use plain http:// only for a local host (127.0.0.1, "
            "localhost); use https:// so the API key is not sent in the clear."
        )
    return str(value).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _country(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"Setting '{name}' must be a two-letter country code with phone numbers, such as "
            f"'AU' or 'US' (ISO 3166), got {value!r}."
        )
    return value.upper()


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


def _streams(name: str, value: Any) -> dict[str, StreamSettings]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Setting '{name}' must be an object keyed by stream name.")
    return {stream: _stream_settings(stream, raw) for stream, raw in value.items()}


@dataclass(frozen=True)
class Settings:
    """Every top-level setting, typed; each field declares one setting."""

    api_key: str = setting(
        REQUIRED,
        "Ortto custom API private key (sent as X-Api-Key; never logged).",
        secret=True,
        parse=_api_key,
    )
    region: str = setting(
        "default",
        "Ortto region of your instance: default, au or eu.",
        choices=tuple(REGION_URLS),
    )
    api_url: str | None = setting(
        None,
        "Base URL override (a proxy, or the local sandbox). Plain http:// only for loopback hosts.",
        parse=_api_url,
    )
    async_merge: bool = setting(False, "Ask Ortto to queue merges and answer at once.")
    batch_size: int = setting(
        100, "Records per Ortto request (Ortto's maximum is 100).", minimum=1, maximum=100
    )
    max_concurrency: int = setting(8, "Requests in flight at once, across all streams.", minimum=1)
    requests_per_second: float = setting(
        10,
        "Client-side rate limit shared by all streams "
        "(Ortto: 10/s Professional, 30/s Business and Enterprise).",
        exclusive_minimum=0,
    )
    request_timeout: float = setting(
        30, "Seconds before one request times out (and is retried).", minimum=0.1
    )
    max_retries: int = setting(
        8, "Retries of one request after 5xx, timeouts and connection errors.", minimum=0
    )
    null_values: str = setting(
        "skip",
        "skip: a null leaves Ortto's value alone; clear: a null clears it.",
        choices=("skip", "clear"),
    )
    default_phone_country: str | None = setting(
        None,
        "Two-letter country (e.g. AU) for phone numbers without a +code.",
        parse=_country,
    )
    invalid_phones: str = setting(
        "reject",
        "reject: an unreadable phone makes the person invalid (on_invalid_record); drop: "
        "the person is written without it (counted as phones_dropped, warned).",
        choices=("reject", "drop"),
    )
    create_custom_fields: bool = setting(
        False, "Create missing Ortto custom fields, typed from the stream schema."
    )
    create_missing_accounts: bool = setting(
        False,
        "Account links: create (insert mode) an account a person's link column names but "
        "Ortto lacks; false: the link is reported as invalid (on_invalid_record) and the "
        "person is still written.",
    )
    subscribe_new_people: bool = setting(
        False,
        "false: people the target creates start with email permission false unless a column "
        "maps bol::p; existing people's permission is never touched. true: Ortto's default "
        "(new people are subscribed).",
    )
    skip_suppressed: bool = setting(
        True,
        "Ask Ortto to refuse creating people whose email is on its suppression list "
        "(suppression_list_field_id); each is rejected with Ortto's reason.",
    )
    on_invalid_record: str = setting(
        "fail",
        "fail: stop naming the record; reject: set it aside and go on.",
        choices=("fail", "reject"),
    )
    rejected_records_path: str = setting(
        "ortto-rejected.jsonl",
        "JSON Lines file of rejected records (stream, key, reason, record).",
    )
    max_rejected_records: int = setting(
        1000, "With reject: fail once more than this many records were rejected.", minimum=0
    )
    dry_run: bool = setting(False, "Validate, map and plan; make no write request.")
    request_log_path: str | None = setting(
        None, "JSON Lines log of every API request and response, key redacted."
    )
    ledger_path: str = setting(
        ".target-ortto/ledger.sqlite",
        "The sync ledger (SQLite) used to skip unchanged records.",
    )
    skip_unchanged: bool = setting(
        True, "Don't resend a record whose payload is unchanged since last written."
    )
    baseline: bool = setting(
        False,
        "Record every record in the ledger as already in Ortto, sending nothing (for data "
        "Ortto already holds); the next run sends only changes. Nothing is removed.",
    )
    streams: Mapping[str, StreamSettings] = setting(
        {},
        "Per-stream settings keyed by stream name: "
        f"{', '.join(f.name for f in fields(StreamSettings))}.",
        parse=_streams,
    )

    @property
    def base_url(self) -> str:
        """`api_url` when set, else the region's URL."""
        return self.api_url or REGION_URLS[self.region]

    def stream(self, stream_name: str) -> StreamSettings:
        """Settings of a stream, found by exact name, then ignoring case and schema prefix."""
        if stream_name in self.streams:
            return self.streams[stream_name]
        wanted = {stream_name.lower(), stream_name.lower().rsplit("-", 1)[-1]}
        for name, settings in self.streams.items():
            if name.lower() in wanted:
                return settings
        return StreamSettings()

    def object_for(self, stream_name: str) -> str:
        """The Ortto object a stream becomes, or an error showing the config that fixes it."""
        obj = self.stream(stream_name).object or infer_object(stream_name)
        if obj is None:
            raise ConfigError(
                f"Stream '{stream_name}': cannot tell which Ortto object it is "
                "(person, account or audience). Name it in the config, for example: "
                f'"streams": {{"{stream_name}": {{"object": "person"}}}}'
            )
        return obj


def parse_settings(config: Mapping[str, Any], also_known: Iterable[str] = ()) -> Settings:
    """Build `Settings` from the plugin config, or raise `ConfigError` saying what to fix.

    A key that is no setting of ours nor in `also_known` (the SDK's built-in settings) is
    a typo, refused rather than silently left at its default."""
    known = {f.name for f in fields(Settings)} | set(also_known)
    unknown = sorted(str(key) for key in set(config) - known)
    if unknown:
        raise ConfigError(
            f"Unknown settings {unknown} (a typo?); target-ortto's settings are listed by "
            "`target-ortto --about` and in the README."
        )
    return Settings(**parse_fields(Settings, config, ""))


def _where(exc: ValueError) -> str:
    """Where a file is not JSON, without quoting it (it may hold the key)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}"
    return str(exc)


def _not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity; JSON, and the SDK's reader, do not."""
    raise ValueError(f"{constant} is not a JSON number")


def read_config_files(paths: Iterable[str]) -> None:
    """Each `--config` file exists and holds a JSON object, or a `ConfigError` names it
    (the SDK would fail on it with a traceback)."""
    for path in paths:
        if path == "ENV":
            continue
        try:
            with open(path, encoding="utf-8") as file:
                config = json.load(file, parse_constant=_not_json)
        except OSError as exc:
            raise ConfigError(f"Config file {path!r} cannot be read: {exc.strerror}.") from None
        except ValueError as exc:
            raise ConfigError(
                f"Config file {path!r} is not JSON ({_where(exc)}); it must hold one object "
                'of settings, such as {"api_key": "…"}, with finite numbers.'
            ) from None
        if not isinstance(config, dict):
            raise ConfigError(
                f"Config file {path!r} must hold one JSON object of settings, not "
                f"{type(config).__name__}."
            )


def config_schema() -> dict[str, Any]:
    """The JSON schema `--about` shows: a new dict each call, as the SDK adds its own
    settings to it in place (so it is open to keys not declared here)."""
    return {
        **object_schema(Settings, closed=False),
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }

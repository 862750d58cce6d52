"""Every setting, declared once, as a field of `Settings` or `StreamSettings`.

A field's name, type and `setting(...)` are all there is to a setting: the JSON schema that
`--about` shows (`config_schema`), the parsing of a config into frozen settings
(`parse_settings`), and the README tables and Meltano plugin settings (`settings_docs`)
follow from them. What a schema cannot express (key hygiene, URLs, object/mode
combinations) is a field's `parse` hook or `stream_settings._stream_settings`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from target_ortto.errors import ConfigError, shown_url
from target_ortto.objects import infer_object
from target_ortto.setting_fields import REQUIRED, object_schema, parse_fields, setting
from target_ortto.stream_settings import StreamSettings, parse_streams

REGION_URLS = {
    "default": "https://api.ap3api.com",
    "au": "https://api.au.ap3api.com",
    "eu": "https://api.eu.ap3api.com",
}


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
        parse=parse_streams,
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
                "(person, account, audience or activity). Name it in the config, for example: "
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

"""Config, parsed once into frozen settings, with errors that say how to fix them.

The SDK validates types against the JSON schema in `target.py`; this module checks what
a schema cannot (combinations, URLs, per-stream keys) and coerces values that arrive as
strings from environment variables.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from target_ortto.errors import ConfigError
from target_ortto.objects import (
    FIND_STRATEGIES,
    MERGE_OBJECTS,
    OBJECT_NAMES,
    infer_object,
)

REGION_URLS = {
    "default": "https://api.ap3api.com",
    "au": "https://api.au.ap3api.com",
    "eu": "https://api.eu.ap3api.com",
}
DELETE_BEHAVIORS = ("none", "clear", "archive", "delete")
STREAM_KEYS = (
    "object",
    "mode",
    "merge_by",
    "find_strategy",
    "field_map",
    "delete_behavior",
    "full_snapshot",
    "audience",
    "max_deletes",
)


@dataclass(frozen=True)
class StreamSettings:
    """`streams.<name>` for one stream, with defaults applied."""

    object: str | None = None
    mode: str = "upsert"
    merge_by: tuple[str, ...] = ()
    find_strategy: str = "any"
    field_map: Mapping[str, str | None] = field(default_factory=dict)
    delete_behavior: str = "none"
    full_snapshot: bool = False
    audience: str | None = None
    max_deletes: int = 100


@dataclass(frozen=True)
class Settings:
    """Every top-level setting, typed."""

    api_key: str = field(repr=False)
    base_url: str = ""
    region: str = "default"
    async_merge: bool = False
    batch_size: int = 100
    max_concurrency: int = 8
    requests_per_second: float = 10.0
    request_timeout: float = 30.0
    max_retries: int = 8
    null_values: str = "skip"
    default_phone_country: str | None = None
    create_custom_fields: bool = False
    on_invalid_record: str = "fail"
    rejected_records_path: str = "ortto-rejected.jsonl"
    max_rejected_records: int = 1000
    dry_run: bool = False
    request_log_path: str | None = None
    ledger_path: str = ".target-ortto/ledger.sqlite"
    skip_unchanged: bool = True
    streams: Mapping[str, StreamSettings] = field(default_factory=dict)

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


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise ConfigError(f"Setting '{name}' must be true or false, got {value!r}.")


def _number(name: str, value: Any, kind: type, low: float, high: float | None = None) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < low or (high and number > high):
        limit = f"between {low} and {high}" if high else f"at least {low}"
        raise ConfigError(f"Setting '{name}' must be a number {limit}, got {value!r}.")
    return number


def _choice(name: str, value: Any, choices: tuple[str, ...] | Mapping[str, Any]) -> str:
    if value not in choices:
        raise ConfigError(f"Setting '{name}' must be one of {', '.join(choices)}; got {value!r}.")
    return value


def _base_url(config: Mapping[str, Any]) -> str:
    region = _choice("region", config.get("region") or "default", tuple(REGION_URLS))
    api_url = config.get("api_url")
    if not api_url:
        return REGION_URLS[region]
    parts = urlsplit(str(api_url))
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"Setting 'api_url' must be an http(s) URL, got {api_url!r}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            "Setting 'api_url' may use plain http:// only for a local host (127.0.0.1, "
            "localhost); use https:// so the API key is not sent in the clear."
        )
    return str(api_url).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stream_settings(name: str, raw: Any) -> StreamSettings:
    where = f"streams.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Setting '{where}' must be an object of per-stream settings.")
    unknown = sorted(set(raw) - set(STREAM_KEYS))
    if unknown:
        raise ConfigError(
            f"Setting '{where}' has unknown keys {unknown}; allowed: {', '.join(STREAM_KEYS)}."
        )
    obj = raw.get("object")
    if obj is not None:
        _choice(f"{where}.object", obj, OBJECT_NAMES)
    obj = obj or infer_object(name)
    mode = raw.get("mode") or "upsert"
    if obj in MERGE_OBJECTS:
        _choice(f"{where}.mode", mode, MERGE_OBJECTS[obj].modes)
    merge_by = raw.get("merge_by") or ()
    if isinstance(merge_by, str):
        merge_by = (merge_by,)
    if not isinstance(merge_by, (list, tuple)) or not 0 <= len(merge_by) <= 2:
        raise ConfigError(f"Setting '{where}.merge_by' must be a list of one or two columns.")
    field_map = raw.get("field_map") or {}
    if not isinstance(field_map, Mapping):
        raise ConfigError(f"Setting '{where}.field_map' must map column names to field IDs.")
    return StreamSettings(
        object=raw.get("object"),
        mode=mode,
        merge_by=tuple(str(m) for m in merge_by),
        find_strategy=_choice(
            f"{where}.find_strategy", raw.get("find_strategy") or "any", FIND_STRATEGIES
        ),
        field_map=dict(field_map),
        delete_behavior=_choice(
            f"{where}.delete_behavior", raw.get("delete_behavior") or "none", DELETE_BEHAVIORS
        ),
        full_snapshot=_boolean(f"{where}.full_snapshot", raw.get("full_snapshot", False)),
        audience=raw.get("audience"),
        max_deletes=_number(f"{where}.max_deletes", raw.get("max_deletes", 100), int, 0),
    )


def parse_settings(config: Mapping[str, Any]) -> Settings:
    """Build `Settings` from the plugin config, or raise `ConfigError` saying what to fix."""
    api_key = config.get("api_key")
    if not api_key or not isinstance(api_key, str) or not api_key.strip():
        raise ConfigError(
            "Setting 'api_key' is required, as text: the private key of an Ortto custom API "
            "data source (Ortto: Data sources > Custom API). Set TARGET_ORTTO_API_KEY or "
            "`meltano config target-ortto set api_key`."
        )
    api_key = api_key.strip()
    if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
        raise ConfigError(
            "Setting 'api_key' has characters no Ortto key has (spaces, line breaks or "
            "non-ASCII): copy the key again from Ortto (Data sources > Custom API)."
        )
    streams = config.get("streams") or {}
    if not isinstance(streams, Mapping):
        raise ConfigError("Setting 'streams' must be an object keyed by stream name.")
    country = config.get("default_phone_country")
    if country is not None and (not isinstance(country, str) or len(country) != 2):
        raise ConfigError(
            f"Setting 'default_phone_country' must be a two-letter country code such as "
            f"'AU' or 'US', got {country!r}."
        )

    def get(name: str, default: Any) -> Any:
        value = config.get(name)
        return default if value is None or value == "" else value

    return Settings(
        api_key=api_key,
        base_url=_base_url(config),
        region=get("region", "default"),
        async_merge=_boolean("async_merge", get("async_merge", False)),
        batch_size=_number("batch_size", get("batch_size", 100), int, 1, 100),
        max_concurrency=_number("max_concurrency", get("max_concurrency", 8), int, 1),
        requests_per_second=_number(
            "requests_per_second", get("requests_per_second", 10), float, 0.01
        ),
        request_timeout=_number("request_timeout", get("request_timeout", 30), float, 0.1),
        max_retries=_number("max_retries", get("max_retries", 8), int, 0),
        null_values=_choice("null_values", get("null_values", "skip"), ("skip", "clear")),
        default_phone_country=country.upper() if country else None,
        create_custom_fields=_boolean("create_custom_fields", get("create_custom_fields", False)),
        on_invalid_record=_choice(
            "on_invalid_record", get("on_invalid_record", "fail"), ("fail", "reject")
        ),
        rejected_records_path=str(get("rejected_records_path", "ortto-rejected.jsonl")),
        max_rejected_records=_number(
            "max_rejected_records", get("max_rejected_records", 1000), int, 0
        ),
        dry_run=_boolean("dry_run", get("dry_run", False)),
        request_log_path=get("request_log_path", None),
        ledger_path=str(get("ledger_path", ".target-ortto/ledger.sqlite")),
        skip_unchanged=_boolean("skip_unchanged", get("skip_unchanged", True)),
        streams={name: _stream_settings(name, raw) for name, raw in streams.items()},
    )

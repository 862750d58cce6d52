"""TargetOrtto: the settings it takes, and which sink kind loads each stream."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from decimal import Decimal
from functools import cached_property
from itertools import groupby
from typing import Any

import msgspec
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, SingerSDKError
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.singerlib.encoding import SimpleSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine, SingerReadError
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

from target_ortto.errors import OrttoError
from target_ortto.run import Run
from target_ortto.settings import DELETE_BEHAVIORS, REGION_URLS, parse_settings
from target_ortto.sinks import SINK_KINDS, OrttoSink

_NUMBER = th.CustomType({"type": ["number", "string"]})  # env vars arrive as strings

STREAM_SETTINGS = th.ObjectType(
    th.Property(
        "object",
        th.StringType,
        allowed_values=["person", "account", "audience"],
        description="Ortto object of the stream; inferred from the stream name when unset.",
    ),
    th.Property(
        "mode",
        th.StringType,
        allowed_values=["upsert", "update", "insert", "append"],
        description="upsert (default), update (people: existing only), insert (new only), "
        "append (fill empty fields only).",
    ),
    th.Property(
        "merge_by",
        th.ArrayType(th.StringType),
        description="One or two columns or field IDs Ortto matches records by.",
    ),
    th.Property(
        "find_strategy",
        th.StringType,
        allowed_values=["any", "next_if_empty", "all"],
        description="How two merge_by fields are used to find an existing record.",
    ),
    th.Property(
        "field_map",
        th.ObjectType(additional_properties=th.CustomType({"type": ["string", "null"]})),
        description="Column -> Ortto field ID overrides; null drops the column.",
    ),
    th.Property(
        "delete_behavior",
        th.StringType,
        allowed_values=list(DELETE_BEHAVIORS),
        description="What a deleted record or a row that left a full snapshot does.",
    ),
    th.Property("full_snapshot", th.BooleanType, description="Each run sends the whole set."),
    th.Property("audience", th.StringType, description="Audience ID or exact name."),
    th.Property("max_deletes", th.IntegerType, description="Refuse runs deleting more."),
    additional_properties=False,
)


# Decimals as the SDK's reader makes them (`parse_float=Decimal`), about 4x faster than
# `json.loads`: parsing the input is a large part of a target's CPU time per record.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


class MessageReader(SimpleSingerReader):
    """The SDK's reader, parsing with msgspec, minus the traceback for a line not JSON."""

    def deserialize_json(self, line: str) -> dict:
        try:
            return _DECODER.decode(line)
        except msgspec.DecodeError as exc:
            message = f"Input line is not valid JSON ({exc}): {line[:200]!r}"
            raise InvalidInputLine(message) from None


class TargetOrtto(Target):
    """Singer target for Ortto: people, accounts and audience subscriptions."""

    name = "target-ortto"
    message_reader_class = MessageReader
    capabilities = [  # noqa: RUF012 (the SDK's own declaration is a plain list)
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
        PluginCapabilities.ACTIVATE_VERSION,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="Ortto custom API private key (sent as X-Api-Key; never logged).",
        ),
        th.Property(
            "region",
            th.StringType,
            default="default",
            allowed_values=list(REGION_URLS),
            description="Ortto region of your instance: default, au or eu.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            description="Base URL override (a proxy, or the local sandbox). "
            "Plain http:// only for loopback hosts.",
        ),
        th.Property(
            "async_merge",
            th.BooleanType,
            default=False,
            description="Ask Ortto to queue merges and answer at once.",
        ),
        th.Property(
            "batch_size",
            th.IntegerType,
            default=100,
            description="Records per Ortto request, 1-100.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType,
            default=8,
            description="Requests in flight at once, across all streams.",
        ),
        th.Property(
            "requests_per_second",
            _NUMBER,
            default=10,
            description="Client-side rate limit shared by all streams "
            "(Ortto: 10/s Professional, 30/s Business and Enterprise).",
        ),
        th.Property(
            "request_timeout",
            _NUMBER,
            default=30,
            description="Seconds before one request times out (and is retried).",
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=8,
            description="Retries of one request after 5xx, timeouts and connection errors.",
        ),
        th.Property(
            "null_values",
            th.StringType,
            default="skip",
            allowed_values=["skip", "clear"],
            description="skip: a null leaves Ortto's value alone; clear: a null clears it.",
        ),
        th.Property(
            "default_phone_country",
            th.StringType,
            description="Two-letter country (e.g. AU) for phone numbers without a +code.",
        ),
        th.Property(
            "create_custom_fields",
            th.BooleanType,
            default=False,
            description="Create missing Ortto custom fields, typed from the stream schema.",
        ),
        th.Property(
            "on_invalid_record",
            th.StringType,
            default="fail",
            allowed_values=["fail", "reject"],
            description="fail: stop naming the record; reject: set it aside and go on.",
        ),
        th.Property(
            "rejected_records_path",
            th.StringType,
            default="ortto-rejected.jsonl",
            description="JSON Lines file of rejected records (stream, key, reason, record).",
        ),
        th.Property(
            "max_rejected_records",
            th.IntegerType,
            default=1000,
            description="With reject: fail once more than this many records were rejected.",
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            description="Validate, map and plan; make no write request.",
        ),
        th.Property(
            "request_log_path",
            th.StringType,
            description="JSON Lines log of every API request and response, key redacted.",
        ),
        th.Property(
            "ledger_path",
            th.StringType,
            default=".target-ortto/ledger.sqlite",
            description="The sync ledger (SQLite) used to skip unchanged records.",
        ),
        th.Property(
            "skip_unchanged",
            th.BooleanType,
            default=True,
            description="Don't resend a record whose payload is unchanged since last written.",
        ),
        th.Property(
            "streams",
            th.ObjectType(additional_properties=STREAM_SETTINGS),
            default={},
            description="Per-stream settings keyed by stream name: object, mode, merge_by, "
            "find_strategy, field_map, delete_behavior, full_snapshot, audience, max_deletes.",
        ),
    ).to_dict()

    # The SDK appends its built-in settings to `config_jsonschema` in place; these are ours.
    setting_names = tuple(config_jsonschema["properties"])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = parse_settings(self.config)

    @cached_property
    def run(self) -> Run:
        """Created at the first SCHEMA, so `--about` and config checks open no connection."""
        return Run(self.settings, self.logger)

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        return SINK_KINDS[self.settings.object_for(stream_name)]

    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: Any = None,
    ) -> Sink:
        """On a new SCHEMA, first send what the stream's current sink holds: the SDK would
        otherwise let the new sink drain first, and older records overwrite newer ones."""
        current = self._sinks_active.get(stream_name)
        if schema is not None and isinstance(current, OrttoSink):
            current.drain_now()
        return super().get_sink(
            stream_name, record=record, schema=schema, key_properties=key_properties
        )

    def _write_state_message(self, state: dict) -> None:
        """A dry run wrote nothing, so it must not move the tap's bookmark."""
        if self.settings.dry_run:
            self.logger.info("Dry run: STATE not emitted (nothing was written)")
            return
        super()._write_state_message(state)

    def _drain_all(self, sink_list: Iterable[Sink], parallelism: int) -> None:
        """In `drain_order` (people before their subscriptions), each group answered before
        the next; STATE follows only once everything is answered."""

        def order(sink: Sink) -> int:
            return sink.drain_order if isinstance(sink, OrttoSink) else 0

        for _, group in groupby(sorted(sink_list, key=order), key=order):
            sinks = list(group)
            super()._drain_all(sinks, parallelism)
            for sink in sinks:
                if isinstance(sink, OrttoSink):
                    sink.wait_sent()  # drains send without waiting

    def listen(self, file_input: Any = None) -> None:
        """Whatever ends the input (its end, an error, a signal), the run closes what it
        opened: requests in flight are waited for, files and connections closed."""
        try:
            super().listen(file_input)
        finally:
            if "run" in self.__dict__:
                self.run.close()

    def _handle_termination(self, signum: int, frame: Any) -> None:
        """On SIGTERM/SIGINT stop without draining (the SDK drains, which is unsafe with
        requests in flight): the last STATE emitted stays true; the rest is resent later."""
        self.logger.warning(
            "Received signal %d: stopping. Nothing after the last emitted STATE is confirmed; "
            "the next run resumes from it.",
            signum,
        )
        if "run" in self.__dict__:
            self.run.dispatcher.stop()  # queued requests are not sent
        raise SystemExit(128 + signum)

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Our errors, and the SDK's about bad input, end the run with their message and
        exit 1, without a traceback."""
        try:
            super().invoke(*args, **kwargs)
        except ConfigValidationError:
            raise  # the SDK's CLI prints each config error
        except (OrttoError, SingerSDKError, SingerReadError) as exc:
            cls.logger.error("%s", exc)
            sys.exit(1)

"""TargetOrtto: settings, routing streams to Ortto objects, and the run's shared parts."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from decimal import Decimal
from functools import cached_property
from typing import Any

import msgspec
from singer_sdk.exceptions import ConfigValidationError, SingerSDKError
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.singerlib.encoding import SimpleSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine, SingerReadError
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

from target_ortto.client import OrttoClient
from target_ortto.errors import OrttoError
from target_ortto.ledger import Ledger
from target_ortto.preflight import Preflight
from target_ortto.report import JsonLinesFile, RunReport
from target_ortto.settings import Settings, config_schema, parse_settings
from target_ortto.sinks import AudienceSink, MergeSink, drain

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


class Run:
    """What every sink of one run shares: settings, the HTTP client, the report, pre-flight."""

    def __init__(self, settings: Settings, logger: Any) -> None:
        self.settings = settings
        self.request_log = (
            JsonLinesFile(settings.request_log_path, redact=settings.api_key)
            if settings.request_log_path
            else None
        )
        self.client = OrttoClient(
            settings.base_url,
            settings.api_key,
            region=settings.region,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            requests_per_second=settings.requests_per_second,
            max_concurrency=settings.max_concurrency,
            request_log=self.request_log.write if self.request_log else None,
        )
        rejected = (
            JsonLinesFile(settings.rejected_records_path)
            if settings.on_invalid_record == "reject"
            else None
        )
        self.report = RunReport(
            logger,
            on_invalid_record=settings.on_invalid_record,
            rejected=rejected,
            max_rejected=settings.max_rejected_records,
        )
        self.preflight = Preflight(
            self.client,
            logger,
            create=settings.create_custom_fields,
            dry_run=settings.dry_run,
        )
        self.ledger = Ledger(settings.ledger_path)
        self.audience_ids: dict[str, str] = {}  # audience name -> ID, looked up once
        self.active_sinks: dict[str, Any] = {}  # stream -> its current sink
        self.finished_streams: set[str] = set()  # deletions applied once per stream
        self.snapshot_streams: set[str] = set()  # full snapshots, or ACTIVATE_VERSION seen
        self.dry_run_seen: dict[str, set[str]] = {}
        self.lock = threading.Lock()
        self.report.client_stats = self.client.stats
        self.report.start_progress()

    def close(self) -> list[str]:
        lines = self.report.finish()
        self.client.close()
        self.ledger.close()
        if self.request_log:
            self.request_log.close()
        return lines


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

    config_jsonschema = config_schema()

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
        if self.settings.object_for(stream_name) == "audience":
            return AudienceSink
        return MergeSink

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
        if schema is not None and current is not None:
            drain(current)
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
        """Merges before subscriptions, so people created in this run can be subscribed."""
        sinks = list(sink_list)
        merges = [s for s in sinks if isinstance(s, MergeSink)]
        others = [s for s in sinks if s not in merges]
        for group in (merges, others):
            super()._drain_all(group, parallelism)
            for sink in group:
                sink.wait_sent()  # drains send without waiting; STATE follows this

    def process_endofpipe(self) -> None:
        try:
            super().process_endofpipe()
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
            self.run.client.failed = True  # queued requests are not sent
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

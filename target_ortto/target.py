"""TargetOrtto: the settings it takes, and which sink kind loads each stream."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import cached_property
from itertools import groupby
from typing import Any

import click
from singer_sdk.exceptions import ConfigValidationError, SingerSDKError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.singerlib.exceptions import SingerReadError
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

from target_ortto.errors import ConfigError, OrttoError, StreamError
from target_ortto.messages import MessageReader
from target_ortto.run import Run
from target_ortto.setting_fields import environment_config
from target_ortto.settings import config_schema, parse_settings, read_config_files
from target_ortto.sinks import SINK_KINDS, LinkSink, OrttoSink

LAST = 1 << 30  # a drain order after every sink's


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

    @classproperty
    def _env_var_config(cls) -> dict[str, Any]:
        """Settings from TARGET_ORTTO_* variables, parsed strictly (`environment_config`)."""
        cls.append_builtin_config(cls.config_jsonschema)
        return environment_config(cls.config_jsonschema, cls._env_var_prefix)

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's settings, with `load_method` offering only the values we honour: so
        `--about` and the plugin definitions (generated from it) never list `overwrite`."""
        super().append_builtin_config(config_jsonschema)
        config_jsonschema["properties"]["load_method"] = {
            **config_jsonschema["properties"]["load_method"],
            "description": LOAD_METHOD_DESCRIPTION,
            "enum": list(LOAD_METHODS),
        }

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Our checks before the SDK's schema: ours name the fix, and never quote a secret
        (the SDK's schema errors quote the value, e.g. an api_key that is a number)."""
        self.append_builtin_config(self.config_jsonschema)
        _refuse_load_method(self.config.get("load_method"))
        self.settings = parse_settings(self.config, self.config_jsonschema["properties"])
        return super()._validate_config(raise_errors=raise_errors)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bookmarked = False  # the SCHEMA being processed declares an incremental stream

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
        if schema is not None:
            self._note_replication(stream_name)
            if isinstance(current, OrttoSink):
                current.drain_now()
        return super().get_sink(
            stream_name, record=record, schema=schema, key_properties=key_properties
        )

    def _process_schema_message(self, message_dict: dict) -> None:
        """A stream that cannot be loaded stops the run at its SCHEMA, saying truly what this
        run had written by then (a schema change can come after many records)."""
        self._bookmarked = bool(message_dict.get("bookmark_properties"))
        try:
            super()._process_schema_message(message_dict)
            for stream_map in self.mapper.stream_maps[message_dict["stream"]]:
                self._note_replication(stream_map.stream_alias)  # unchanged schema: no sink
        except (StreamError, ConfigError) as exc:  # routing and settings errors included
            raise type(exc)(f"{str(exc).rstrip('. ')}. {self._written_so_far()}") from None

    def _note_replication(self, stream_name: str) -> None:
        """An incremental stream (`bookmark_properties`) re-reads only changed rows: rows it
        did not read have not left, so it is never a snapshot, whatever else says so."""
        if not self._bookmarked:
            return
        self.run.streams.mark_incremental(stream_name)
        if self.settings.stream(stream_name).full_snapshot:
            raise StreamError(
                f"Stream '{stream_name}' is set to full_snapshot: true, but its tap replicates "
                "it incrementally (its SCHEMA has bookmark_properties), so every row this run "
                "does not re-read would be removed from Ortto. Replicate the stream FULL_TABLE "
                "in the tap (its SCHEMA then has no bookmark_properties; a tap that also sends "
                "ACTIVATE_VERSION needs no full_snapshot), or remove full_snapshot and let "
                "deletions come from _sdc_deleted_at."
            )

    def _written_so_far(self) -> str:
        sent = self.run.streams.sending() if "run" in self.__dict__ else []
        if not sent:
            return "No records were written."
        names = ", ".join(f"'{name}'" for name in sent)
        return (
            f"Records of {names} were already sent to Ortto earlier in this run (the Summary "
            "says what Ortto took); only what the last emitted STATE covers is confirmed, and "
            "the next run resumes from it."
        )

    def _write_state_message(self, state: dict) -> None:
        """A dry run wrote nothing, so it must not move the tap's bookmark."""
        if self.settings.dry_run:
            self.logger.info("Dry run: STATE not emitted (nothing was written)")
            return
        super()._write_state_message(state)

    def _drain_all(self, sink_list: Iterable[Sink], parallelism: int) -> None:
        """In `drain_order` (people and accounts, their links, subscriptions), each group
        answered before the next; STATE follows only once everything is answered."""

        def order(sink: Any) -> int:
            return sink.drain_order if isinstance(sink, (OrttoSink, LinkSink)) else 0

        registered = self.run.streams.draining_before(LAST) if "run" in self.__dict__ else []
        links = [s for s in registered if isinstance(s, LinkSink)]
        for _, group in groupby(sorted([*sink_list, *links], key=order), key=order):
            sinks = list(group)
            super()._drain_all([s for s in sinks if isinstance(s, Sink)], parallelism)
            for sink in sinks:
                if isinstance(sink, OrttoSink):
                    sink.wait_sent()  # drains send without waiting
                elif isinstance(sink, LinkSink):
                    sink.drain_now()  # account links, after the merges (sinks/link.py)

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
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> Any:
        """`--config` files are read here, before `invoke`: one that is missing, empty or
        not a JSON object ends the run with a message naming it, not a traceback."""
        try:
            read_config_files(value)
        except ConfigError as exc:
            cls.logger.error("%s", exc)
            ctx.exit(1)
        return super().cb_config(ctx, param, value)

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


# The SDK's `load_method` values target-ortto can honour: it merges (upserts) every record.
LOAD_METHODS = ("append-only", "upsert")
LOAD_METHOD_DESCRIPTION = (
    "append-only or upsert: both merge each record into the Ortto person or account with its "
    "key. overwrite is refused: the target never empties Ortto first (see full_snapshot)."
)


def _refuse_load_method(value: Any) -> None:
    """`overwrite` would promise to replace what Ortto holds with the input: refused, not
    silently treated as an upsert."""
    if value is None or value in LOAD_METHODS:
        return
    raise ConfigError(
        f"Setting 'load_method' is {value!r}, which target-ortto cannot honour: it merges "
        "each record into the Ortto person or account with its key (an upsert) and never "
        "empties Ortto first. Use upsert (`meltano config set target-ortto load_method "
        "upsert`) or unset it. To remove people whose rows left a full extract, set "
        "streams.<stream>.full_snapshot and streams.<stream>.delete_behavior (e.g. "
        "`meltano config set target-ortto streams.people.full_snapshot true`)."
    )

"""Reading the tap's output: each line parsed and its shape checked before the SDK sees it.

The SDK indexes into messages as the Singer spec says they are; a tap (or anything else
writing to its stdout) that sends another shape would otherwise end the run with a
traceback, or, for a RECORD whose `record` is null, drop the record silently.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
from singer_sdk.singerlib.encoding import SimpleSingerReader

from target_ortto.errors import InputError

# Decimals as the SDK's reader makes them (`parse_float=Decimal`), about 4x faster than
# `json.loads`: parsing the input is a large part of a target's CPU time per record.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def _decode(line: str) -> Any:
    """msgspec first (fast); the standard library for integers beyond 64 bits, which are
    valid JSON (a 30-digit ID), so the record they are in is judged, not the line."""
    try:
        return _DECODER.decode(line)
    except msgspec.DecodeError as exc:
        if "out of range" not in str(exc):
            raise
        return json.loads(line, parse_float=Decimal)


TYPES = ("SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH")
_FIX = "Fix the tap (or whatever else writes to its output)."


class MessageReader(SimpleSingerReader):
    """The SDK's reader, parsing with msgspec, that stops at the first line it cannot
    read with a message naming the line and stream."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self._with_schema: set[str] = set()

    def deserialize_json(self, line: str) -> dict:
        self.line_number += 1
        try:
            message = _decode(line)
        except (msgspec.DecodeError, ValueError) as exc:
            raise self._error(f"not valid JSON ({exc}): {line[:200]!r}") from None
        except RecursionError:
            raise self._error(f"nested too deeply to read: {line[:200]!r}") from None
        if (  # most lines: a well-formed RECORD, checked inline as it is the hot path
            type(message) is dict
            and message.get("type") == "RECORD"
            and type(message.get("record")) is dict
            and type(message.get("stream")) is str
        ):
            return message
        self._check(message)
        return message

    def _check(self, message: Any) -> None:
        """The fields of each message type that the SDK and the target rely on."""
        if not isinstance(message, dict):
            raise self._error(
                f'not a Singer message (a JSON object with a "type"): {message!r:.200}'
            )
        kind = message.get("type")
        if kind == "RECORD" and isinstance(message.get("stream"), str):
            stream = message["stream"]
            raise self._error(
                f"the RECORD of stream '{stream}' is {message.get('record')!r:.200}, "
                "not an object of columns"
            )
        if kind not in TYPES:
            found = "no message 'type'" if kind is None else f"unknown message type {kind!r:.80}"
            raise self._error(f"{found}; target-ortto reads {', '.join(TYPES)}")
        if kind == "STATE":
            if "value" not in message:
                raise self._error("a STATE message without a 'value'")
            return
        stream = message.get("stream")
        if not isinstance(stream, str):
            raise self._error(f"the {kind}'s 'stream' must be a stream name, not {stream!r:.80}")
        if kind == "BATCH":
            raise self._error(
                f"stream '{stream}' sent a BATCH message, which target-ortto does not read "
                "(each record is mapped and acknowledged one by one). Turn off the tap's batch "
                "mode (its `batch_config`).",
                fix="",
            )
        if kind == "SCHEMA":
            self._check_schema(stream, message)
            self._with_schema.add(stream)
        elif kind == "ACTIVATE_VERSION":
            if stream not in self._with_schema:
                raise self._error(f"ACTIVATE_VERSION for stream '{stream}' before its SCHEMA")
            version = message.get("version")
            if not isinstance(version, int) or isinstance(version, bool):
                raise self._error(
                    f"ACTIVATE_VERSION for stream '{stream}' has no integer 'version' "
                    f"({version!r:.80})"
                )

    def _check_schema(self, stream: str, message: dict) -> None:
        schema = message.get("schema")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict):
            raise self._error(
                f"SCHEMA for stream '{stream}' has no 'schema' object with 'properties'"
            )
        for column, column_schema in properties.items():
            if not isinstance(column_schema, dict):
                raise self._error(
                    f"SCHEMA for stream '{stream}': column '{column}' has the schema "
                    f"{column_schema!r:.80}; target-ortto needs an object with its 'type'"
                )
        keys = message.get("key_properties")
        if keys is not None and not _names(keys):
            raise self._error(
                f"SCHEMA for stream '{stream}': 'key_properties' must be a list of column "
                f'names such as ["id"], not {keys!r:.80}'
            )
        bookmarks = message.get("bookmark_properties")
        if bookmarks is not None and not isinstance(bookmarks, str) and not _names(bookmarks):
            raise self._error(
                f"SCHEMA for stream '{stream}': 'bookmark_properties' must be a list of "
                f"column names, not {bookmarks!r:.80}"
            )

    def _error(self, problem: str, fix: str = _FIX) -> InputError:
        """The run stops at this line: what came before it stays as STATE says."""
        ending = "Only what the last emitted STATE covers is confirmed."
        advice = " ".join(part for part in (fix, ending) if part)
        return InputError(f"Input line {self.line_number}: {problem.rstrip('.')}. {advice}")


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)

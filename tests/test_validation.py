"""Validation against the stream schema: schemas refused at SCHEMA, reasons for records."""

from __future__ import annotations

import datetime as dt
import urllib.request
from typing import Any

import pytest

from target_ortto.errors import StreamError
from target_ortto.validation import RecordValidator, check_schema, timestamp_problem

DATE = {"type": ["string", "null"], "format": "date"}


def schema(properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ({"x": {"$ref": "http://example.com/s.json"}}, "column 'x' refers to"),
        ({"x": {"items": {"$ref": "https://example.com/s.json#/a"}}}, "column 'x' refers to"),
        ({"x": {"$ref": "file:///etc/passwd"}}, "column 'x' refers to"),
        ({"x": {"$ref": "defs.json#/a"}}, "column 'x' refers to"),
        ({"x": {"type": "string", "pattern": "(["}}, "column 'x' has the pattern"),
        ({"x": {"anyOf": [{"type": "string", "pattern": "a{2,1}"}]}}, "column 'x' has the pattern"),
        ({"x": {"patternProperties": {"+": {}}}}, "column 'x' has the pattern"),
    ],
)
def test_a_schema_the_target_cannot_use_is_a_stream_error_naming_stream_and_column(
    properties, words
):
    with pytest.raises(StreamError, match=r"^Stream 'people'") as caught:
        check_schema("people", schema(properties))
    assert words in str(caught.value)


def test_local_refs_patterns_and_nested_columns_named_like_keywords_are_accepted():
    check_schema(
        "people",
        {
            "properties": {
                "x": {"$ref": "#/definitions/x"},
                "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "meta": {"type": "object", "properties": {"pattern": {"type": "string"}}},
            },
            "definitions": {"x": {"type": "string"}},
        },
    )


def test_the_validator_never_fetches_a_remote_ref(monkeypatch):
    fetched: list[Any] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: fetched.append(a))
    remote = {**schema({}), "allOf": [{"$ref": "http://127.0.0.1:9/base.json"}]}
    with pytest.raises(StreamError, match=r"^Stream 'people': .*fetches no schema"):
        RecordValidator(remote, "people")
    assert fetched == []


@pytest.mark.parametrize(
    ("prop", "value", "words"),
    [
        (DATE, "0000-01-01", "'0000-01-01' cannot be read as a date (year 0 is out of range)"),
        ({"type": "string", "format": "date-time"}, "2024-06-30T23:59:60Z", "as a date-time"),
        ({"anyOf": [{"type": "string", "format": "time"}, {"type": "null"}]}, "24:00", "time"),
        (DATE, 20240501, "20240501 cannot be read as a date"),
    ],
)
def test_an_unreadable_date_names_its_column_and_why(prop, value, words):
    record = {"ok": dt.date(2024, 5, 1), "when": value, "other": None}
    problem = timestamp_problem(record, schema({"ok": DATE, "when": prop, "other": DATE}))
    assert problem.startswith("column 'when': ") and words in problem

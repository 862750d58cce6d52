"""Whole runs fed values and schemas at the edges: each record is written, or rejected with
a reason naming its column, or the run stops with a clear message (issue 13, points 5-6)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import record_messages, run_cli, run_target, schema_message

from target_ortto.errors import StreamError

DATE = {"type": ["string", "null"], "format": "date"}
DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
TIME = {"type": ["string", "null"], "format": "time"}
NUMBER = {"type": ["number", "null"]}
EMAIL = "ann@example.com"


def rejected(config: dict[str, Any]) -> list[dict[str, Any]]:
    path = Path(config["rejected_records_path"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def person_fields(sandbox) -> dict[str, Any]:
    person = sandbox.store.find_person(EMAIL)
    return person.fields if person else {}


# Dates the SDK's parser cannot hold (its NULL treatment made them None), and a date-time
# whose conversion to UTC passes year 9999.
UNREADABLE = [
    pytest.param(DATE, "2024-05-01", "0000-01-01", "year 0 is out of range", id="date-year-0"),
    pytest.param(DATE_TIME, "2024-05-01T13:45:00Z", "0000-01-01T00:00:00Z", "year 0", id="dt-0"),
    pytest.param(DATE_TIME, "2024-05-01T13:45:00Z", "2024-06-30T23:59:60Z", "second", id="leap"),
    pytest.param(TIME, "13:45:00", "23:59:60", "second must be in 0..59", id="time-leap"),
    pytest.param(
        DATE_TIME,
        "2024-05-01T13:45:00Z",
        "9999-12-31T23:00:00-05:00",
        "outside the years 1 to 9999 once converted to UTC",
        id="utc-year-10000",
    ),
]


@pytest.mark.parametrize(("prop", "good", "bad", "reason"), UNREADABLE)
def test_an_unreadable_date_is_rejected_naming_its_column_and_never_clears_the_field(
    sandbox, config, prop, good, bad, reason
):
    config.update(null_values="clear", on_invalid_record="reject")
    schema = schema_message("people", {"email": {"type": "string"}, "when": prop})
    run_target(config, [schema, *record_messages("people", [{"email": EMAIL, "when": good}])])
    written = person_fields(sandbox)

    result = run_target(
        config, [schema, *record_messages("people", [{"email": EMAIL, "when": bad}])]
    )

    assert result.error is None
    assert person_fields(sandbox) == written  # not cleared by a silent null
    [row] = rejected(config)
    assert "column 'when'" in row["reason"] and reason in row["reason"]


@pytest.mark.parametrize(
    "config_change",
    [
        pytest.param({"validate_records": False}, id="validation-off"),
        pytest.param({}, id="draft-04-schema-without-date-format-checks"),
    ],
)
def test_a_date_the_validator_does_not_check_is_still_rejected_when_unreadable(
    sandbox, config, config_change
):
    config.update(config_change, on_invalid_record="reject")
    schema = schema_message("people", {"email": {"type": "string"}, "when": DATE})
    schema["schema"]["$schema"] = "http://json-schema.org/draft-04/schema#"
    records = record_messages("people", [{"email": EMAIL, "when": "not a date"}])

    result = run_target(config, [schema, *records])

    assert result.error is None
    assert person_fields(sandbox) == {}
    [row] = rejected(config)
    assert row["reason"].startswith("column 'when': 'not a date' cannot be read as a date")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1e999999999", "outside the range of an Ortto decimal"),
        ("-1E+999999999", "outside the range of an Ortto decimal"),
    ],
)
def test_an_overflowing_number_is_rejected_naming_its_column_without_a_traceback(
    sandbox, config, tmp_path, raw, reason
):
    config["on_invalid_record"] = "reject"
    schema = json.dumps(schema_message("people", {"email": {"type": "string"}, "ltv": NUMBER}))
    record = f'{{"type": "RECORD", "stream": "people", "record": {{"email": "{EMAIL}", '
    record += f'"ltv": {raw}}}}}'

    done = run_cli(config, f"{schema}\n{record}\n", tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    [row] = rejected(config)
    assert row["reason"].startswith("column 'ltv' -> int:cm:ltv:") and reason in row["reason"]


def test_a_deeply_nested_object_value_is_rejected_naming_its_column(sandbox, config):
    config.update(
        on_invalid_record="reject", streams={"people": {"field_map": {"doc": "obj:cm:doc"}}}
    )
    deep: Any = "leaf"
    for _ in range(500):
        deep = [deep]
    schema = schema_message("people", {"email": {"type": "string"}, "doc": {}})
    records = record_messages("people", [{"email": EMAIL, "doc": deep}])

    assert run_target(config, [schema, *records]).error is None
    assert person_fields(sandbox) == {}
    [row] = rejected(config)
    assert row["reason"].startswith("column 'doc' -> obj:cm:doc: the value is nested more than")


INVISIBLE = ["\u200b", "\ufeff", "\u00ad", "\u200e", "\u200f", "\u202e", "\u2066", "\x07", "\x00"]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_an_email_with_an_invisible_or_control_character_is_rejected_in_people_streams(
    sandbox, config, char
):
    config["on_invalid_record"] = "reject"
    email = f"ann{char}@example.com"
    schema = schema_message("people", {"email": {"type": "string"}})

    assert (
        run_target(config, [schema, *record_messages("people", [{"email": email}])]).error is None
    )
    assert sandbox.store.people == {}
    [row] = rejected(config)
    assert f"U+{ord(char):04X}" in row["reason"] and "column 'email'" in row["reason"]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_an_email_with_an_invisible_or_control_character_is_rejected_in_audience_streams(
    sandbox, config, char
):
    audience = sandbox.store.add_audience("Newsletter")
    config.update(on_invalid_record="reject", streams={"members": {"object": "audience"}})
    config["streams"]["members"]["audience"] = "Newsletter"
    schema = schema_message("members", {"email": {"type": "string"}})
    records = record_messages("members", [{"email": f"{char}ann@example.com"}])

    assert run_target(config, [schema, *records]).error is None
    assert sandbox.store.subscriptions(audience) == {}
    [row] = rejected(config)
    assert f"U+{ord(char):04X}" in row["reason"]


@pytest.mark.parametrize(
    ("prop", "field_map", "value", "field_id", "sent"),
    [
        (TIME, {}, "13:45:00", "str:cm:at", "13:45:00"),
        (TIME, {}, "13:45:00.5+02:00", "str:cm:at", "13:45:00.500000+02:00"),
        (DATE, {"at": "str:cm:at"}, "2024-05-01", "str:cm:at", "2024-05-01"),
        (DATE_TIME, {"at": "str:cm:at"}, "2024-05-01T13:45:00Z", "str:cm:at", None),
        (DATE_TIME, {"at": "txt:cm:at"}, "2024-05-01T13:45:00+10:00", "txt:cm:at", None),
        (TIME, {"at": "txt:cm:at"}, "13:45:00", "txt:cm:at", "13:45:00"),
    ],
)
def test_time_columns_and_dates_mapped_to_text_fields_are_sent_as_iso_text(
    sandbox, config, prop, field_map, value, field_id, sent
):
    config["streams"] = {"people": {"field_map": field_map}}
    schema = schema_message("people", {"email": {"type": "string"}, "at": prop})

    result = run_target(
        config, [schema, *record_messages("people", [{"email": EMAIL, "at": value}])]
    )

    assert result.error is None
    expected = sent or value.replace("Z", "+00:00")
    assert person_fields(sandbox)[field_id] == expected


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"x": {"$ref": "http://127.0.0.1:9/x.json"}}, "column 'x' refers to 'http://"),
        ({"x": {"anyOf": [{"$ref": "https://example.com/s.json#/a"}]}}, "column 'x' refers to"),
        ({"x": {"$ref": "file:///etc/passwd"}}, "column 'x' refers to 'file:///etc/passwd'"),
        ({"x": {"$ref": "other.json"}}, "column 'x' refers to 'other.json'"),
        ({"x": {"type": "string", "pattern": "(["}}, "column 'x' has the pattern '(['"),
        ({"x": {"type": "object", "patternProperties": {"*a": {}}}}, "column 'x' has the pattern"),
    ],
)
def test_a_schema_that_would_fetch_or_crash_is_a_stream_error_and_nothing_is_fetched(
    sandbox, config, monkeypatch, properties, message
):
    fetched: list[Any] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: fetched.append(a))
    schema = schema_message("people", {})
    schema["schema"]["properties"] = properties

    result = run_target(config, [schema, *record_messages("people", [{"email": EMAIL}])])

    assert isinstance(result.error, StreamError)
    assert str(result.error).startswith("Stream 'people':") and message in str(result.error)
    assert fetched == []
    assert sandbox.store.people == {}


def test_a_ref_outside_the_columns_is_refused_without_a_fetch(sandbox, config, monkeypatch):
    fetched: list[Any] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: fetched.append(a))
    schema = schema_message("people", {"email": {"type": "string"}})
    schema["schema"]["allOf"] = [{"$ref": "http://127.0.0.1:9/base.json"}]

    result = run_target(config, [schema, *record_messages("people", [{"email": EMAIL}])])

    assert isinstance(result.error, StreamError)
    assert "fetches no schema over the network" in str(result.error)
    assert fetched == []


STR_LIST = {"type": ["array", "null"], "items": {"type": "string"}}
JSONB = {"type": ["string", "object", "array", "number", "boolean", "null"]}


def test_with_flattening_tags_and_a_mapped_multi_select_column_arrive_as_lists(sandbox, config):
    # The SDK's flattener turns every list into JSON text (and its schema into a string).
    config.update(
        on_invalid_record="reject",
        flattening_enabled=True,
        flattening_max_depth=1,
        streams={"people": {"field_map": {"plans": "sst:cm:plans"}}},
    )
    sandbox.store.add_custom_field(
        "person", "sst:cm:plans", "Plans", "multi_select", values=["pro", "team"]
    )
    properties = {"email": {"type": "string"}, "tags": STR_LIST, "plans": STR_LIST}
    record = {"email": EMAIL, "tags": ["vip", "beta"], "plans": ["pro", "team"]}

    result = run_target(
        config, [schema_message("people", properties), *record_messages("people", [record])]
    )

    assert result.error is None
    assert rejected(config) == []
    person = sandbox.store.find_person(EMAIL)
    assert person is not None and person.tags == {"vip", "beta"}
    assert person.fields["sst:cm:plans"] == ["pro", "team"]
    fields = {f.id: f.display_type for f in sandbox.store.custom_fields("person")}
    assert fields == {"sst:cm:plans": "multi_select"}


@pytest.mark.parametrize(
    "prop",
    [JSONB, {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]}],
    ids=["type-list", "anyOf"],
)
def test_a_json_column_is_refused_at_schema_before_any_custom_field_is_created(
    sandbox, config, prop
):
    schema = schema_message(
        "people", {"email": {"type": "string"}, "a": {"type": "string"}, "payload": prop}
    )
    records = record_messages("people", [{"email": EMAIL, "a": "x", "payload": {"k": 1}}])

    result = run_target(config, [schema, *records])

    assert isinstance(result.error, StreamError)
    message = str(result.error)
    assert "Column 'payload'" in message
    for fix in ["json.dumps(payload)", '{"payload": null}', "flattening_enabled"]:
        assert fix in message
    assert sandbox.store.custom_fields("person") == []
    assert sandbox.store.people == {}


def test_a_json_column_mapped_to_null_or_an_object_field_is_not_refused(sandbox, config):
    config["streams"] = {"people": {"field_map": {"payload": None, "doc": "obj:cm:doc"}}}
    properties = {"email": {"type": "string"}, "payload": JSONB, "doc": JSONB}
    records = record_messages("people", [{"email": EMAIL, "payload": {"k": 1}, "doc": {"k": 2}}])

    assert run_target(config, [schema_message("people", properties), *records]).error is None
    assert person_fields(sandbox)["obj:cm:doc"] == {"k": 2}
    assert "payload" not in json.dumps(person_fields(sandbox))


def test_field_types_large_text_creates_a_large_text_field_that_takes_long_values(sandbox, config):
    config.update(
        on_invalid_record="reject", streams={"people": {"field_types": {"bio": "large_text"}}}
    )
    schema = schema_message("people", {"email": {"type": "string"}, "bio": {"type": "string"}})
    records = record_messages("people", [{"email": EMAIL, "bio": "x" * 3000}])

    assert run_target(config, [schema, *records]).error is None
    assert rejected(config) == []
    fields = {f.id: f.display_type for f in sandbox.store.custom_fields("person")}
    assert fields == {"txt:cm:bio": "large_text"}
    assert person_fields(sandbox)["txt:cm:bio"] == "x" * 3000


def test_text_too_long_for_a_text_field_is_rejected_naming_the_setting_that_fixes_it(
    sandbox, config
):
    config["on_invalid_record"] = "reject"
    schema = schema_message("people", {"email": {"type": "string"}, "bio": {"type": "string"}})
    records = record_messages("people", [{"email": EMAIL, "bio": "x" * 256}])

    assert run_target(config, [schema, *records]).error is None
    [row] = rejected(config)
    assert row["reason"].startswith("column 'bio' -> str:cm:bio: text of 256 characters")
    assert 'streams.people.field_types: {"bio": "large_text"}' in row["reason"]
    assert "existing txt: field" in row["reason"]


def test_field_types_keeps_the_clash_report_for_a_same_named_field_of_another_type(sandbox, config):
    sandbox.store.add_custom_field("person", "str:cm:bio", "Bio", "text")
    config["streams"] = {"people": {"field_types": {"bio": "large_text"}}}
    schema = schema_message("people", {"email": {"type": "string"}, "bio": {"type": "string"}})
    records = record_messages("people", [{"email": EMAIL, "bio": "x" * 300}])

    result = run_target(config, [schema, *records])

    assert isinstance(result.error, StreamError) and "another type" in str(result.error)
    assert "txt:cm:bio" in str(result.error)
    assert sandbox.store.people == {}

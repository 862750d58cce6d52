"""Input a tap should never send: each line is written, rejected with a reason, or stops the
run with one message naming its line or stream — never a traceback, never a silent drop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import record_messages, run_cli, run_target, schema_message, state_message

from target_ortto.errors import ConfigError, InvalidRecordError, StreamError

PEOPLE = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}
SCHEMA = schema_message("people", PEOPLE, ["email"])
GOOD = {"type": "RECORD", "stream": "people", "record": {"email": "a@example.com"}}
AV = {"type": "ACTIVATE_VERSION", "stream": "people", "version": 1}


def people(*emails: str) -> list[dict]:
    return record_messages("people", [{"email": e, "first_name": "P"} for e in emails])


def archived(sandbox) -> set[str]:
    return {p.fields["str::email"] for p in sandbox.store.people.values() if p.archived}


# (what is wrong, the lines after line 1's SCHEMA or the whole text, what the message names)
MALFORMED = [
    ("unknown type", [{"type": "FOO", "stream": "people"}], "'FOO'"),
    ("type null", [{"type": None, "stream": "people"}], "no message 'type'"),
    ("type a list", [{"type": ["RECORD"], "stream": "people"}], "['RECORD']"),
    ("no type", [{"stream": "people"}], "no message 'type'"),
    ("record a list", [{**GOOD, "record": [1, 2]}], "stream 'people'"),
    ("record null", [{**GOOD, "record": None}], "stream 'people'"),
    ("record a string", [{**GOOD, "record": "a@example.com"}], "stream 'people'"),
    ("no record", [{"type": "RECORD", "stream": "people"}], "stream 'people'"),
    ("record stream a number", [{**GOOD, "stream": 5}], "'stream'"),
    ("record stream a list", [{**GOOD, "stream": ["people"]}], "'stream'"),
    ("schema stream a number", [{**SCHEMA, "stream": 5}], "'stream'"),
    ("activate version before schema", [{**AV, "stream": "other"}], "stream 'other'"),
    ("activate version without version", [{**AV, "version": None}], "'version'"),
    ("activate version with a text version", [{**AV, "version": "2"}], "'version'"),
    ("batch", [{"type": "BATCH", "stream": "people"}], "batch_config"),
    ("batch before schema", [{"type": "BATCH", "stream": "other"}], "stream 'other'"),
    ("key_properties a string", [{**SCHEMA, "key_properties": "email"}], "key_properties"),
    ("key_properties a number", [{**SCHEMA, "key_properties": 1}], "key_properties"),
    ("key_properties of numbers", [{**SCHEMA, "key_properties": [1]}], "key_properties"),
    ("bookmark_properties a number", [{**SCHEMA, "bookmark_properties": 1}], "bookmark"),
    ("schema a list", [{**SCHEMA, "schema": [1]}], "stream 'people'"),
    ("properties a list", [{**SCHEMA, "schema": {"properties": [1]}}], "stream 'people'"),
    ("no properties", [{**SCHEMA, "schema": {"type": "object"}}], "stream 'people'"),
    ("a column schema true", [{**SCHEMA, "schema": {"properties": {"e": True}}}], "'e'"),
    ("a column schema a number", [{**SCHEMA, "schema": {"properties": {"e": 5}}}], "'e'"),
    ("state without value", [{"type": "STATE"}], "'value'"),
    ("a line not an object", "[1, 2]\n", "Singer message"),
    ("a line a string", '"RECORD"\n', "Singer message"),
    ("a line not JSON", '{"type": "RECORD",\n', "not valid JSON"),
]


@pytest.mark.parametrize(
    ("lines", "named"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_every_malformed_line_stops_the_run_naming_its_line_and_what_is_wrong(
    sandbox, config, tmp_path, lines, named
):
    text = lines if isinstance(lines, str) else json.dumps(SCHEMA) + "\n"
    text += "" if isinstance(lines, str) else "".join(json.dumps(m) + "\n" for m in lines)
    text += json.dumps(GOOD) + "\n"
    line = 1 if isinstance(lines, str) else 2

    done = run_cli(config, text, tmp_path)

    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert f"Input line {line}: " in message
    assert named in message
    assert not sandbox.store.people


@pytest.mark.parametrize("key_in_schema", [True, False], ids=["key in schema", "key not in it"])
def test_a_record_missing_its_key_property_is_rejected_and_the_rest_loaded(
    sandbox, config, tmp_path, key_in_schema
):
    schema = {**PEOPLE, "id": {"type": "integer"}} if key_in_schema else PEOPLE
    records = [{"id": 1, "email": "a@example.com"}, {"email": "b@example.com"}]
    config["on_invalid_record"] = "reject"

    done = run_cli(
        config,
        [schema_message("people", schema, ["id"]), *record_messages("people", records)],
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert sandbox.store.find_person("a@example.com") is not None
    assert sandbox.store.find_person("b@example.com") is None
    lines = Path(config["rejected_records_path"]).read_text().splitlines()
    (rejected,) = [json.loads(line) for line in lines]
    assert rejected["record"] == {"email": "b@example.com"}
    assert "no key property 'id'" in rejected["reason"]
    assert ("not a column of the stream's schema" in rejected["reason"]) is not key_in_schema


def test_a_record_missing_its_key_property_fails_the_run_naming_stream_line_and_key(
    sandbox, config
):
    result = run_target(
        config,
        [
            schema_message("people", PEOPLE, ["email", "first_name"]),
            *record_messages("people", [{"email": "a@example.com"}]),
        ],
    )

    assert isinstance(result.error, InvalidRecordError)
    message = str(result.error)
    assert "Stream 'people'" in message
    assert "input line 2" in message
    assert "no key property 'first_name'" in message
    assert not sandbox.store.people


@pytest.mark.parametrize(
    "schemas",
    [
        [{**SCHEMA, "bookmark_properties": ["updated_at"]}],
        [{**SCHEMA, "bookmark_properties": "updated_at"}],
        [SCHEMA, {**SCHEMA, "bookmark_properties": ["updated_at"]}],  # same schema, later
        [{**SCHEMA, "stream": "src", "bookmark_properties": ["updated_at"]}],  # a stream map
    ],
    ids=["list", "string", "in a repeated schema", "through a stream map alias"],
)
def test_full_snapshot_of_an_incremental_stream_is_refused_at_its_schema(sandbox, config, schemas):
    config["streams"] = {"people": {"full_snapshot": True, "delete_behavior": "archive"}}
    config["stream_maps"] = {"src": {"__alias__": "people"}}
    run_target(config, [SCHEMA, *people("a@example.com", "b@example.com")])
    stream = schemas[-1]["stream"]

    result = run_target(config, [*schemas, *record_messages(stream, [GOOD["record"]])])

    assert isinstance(result.error, StreamError)
    message = str(result.error)
    assert "Stream 'people'" in message
    assert "bookmark_properties" in message
    assert "FULL_TABLE" in message
    assert not archived(sandbox)


@pytest.mark.parametrize(
    "run",
    [
        [{**SCHEMA, "bookmark_properties": ["u"]}, AV, *people("a@example.com")],
        [{**SCHEMA, "bookmark_properties": ["u"]}, *people("a@example.com"), AV],
        [SCHEMA, AV, *people("a@example.com"), {**SCHEMA, "bookmark_properties": ["u"]}],
    ],
    ids=["version first", "version last", "bookmarks in a later schema"],
)
def test_activate_version_on_an_incremental_stream_removes_no_row_it_did_not_read(
    sandbox, config, caplog, run
):
    config["streams"] = {"people": {"delete_behavior": "archive"}}
    run_target(config, [SCHEMA, *people("a@example.com", "b@example.com", "c@example.com")])

    result = run_target(config, run)

    assert result.error is None
    assert not archived(sandbox)
    assert "ACTIVATE_VERSION ignored for removals" in caplog.text


def test_activate_version_on_a_full_table_stream_still_removes_rows_that_left(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "archive"}}
    run_target(config, [SCHEMA, *people("a@example.com", "b@example.com")])

    run_target(config, [SCHEMA, AV, *people("a@example.com")])

    assert archived(sandbox) == {"b@example.com"}


WITH_SCORE = {**PEOPLE, "score": {"type": ["integer", "null"]}}
SCHEMA_ERRORS = {
    "custom field missing": [schema_message("people", WITH_SCORE, ["email"])],
    "object column": [schema_message("people", {**PEOPLE, "o": {"type": "object"}}, ["email"])],
    "unroutable stream": [schema_message("mystery", PEOPLE)],
}


@pytest.mark.parametrize("schema", SCHEMA_ERRORS.values(), ids=SCHEMA_ERRORS.keys())
def test_a_schema_refused_after_records_were_sent_says_they_were(sandbox, config, schema):
    config |= {"create_custom_fields": False, "batch_size_rows": 1}  # each record sent at once
    before = [SCHEMA, *people("a@example.com", "b@example.com"), state_message({"n": 2})]

    result = run_target(config, [*before, *schema, *people("c@example.com")])

    assert isinstance(result.error, (StreamError, ConfigError))
    message = str(result.error)
    assert "No records were written" not in message
    assert "Records of 'people' were already sent to Ortto earlier in this run" in message
    assert "last emitted STATE" in message
    assert sandbox.store.find_person("a@example.com") is not None


@pytest.mark.parametrize("schema", SCHEMA_ERRORS.values(), ids=SCHEMA_ERRORS.keys())
def test_a_schema_refused_before_anything_was_sent_says_nothing_was(sandbox, config, schema):
    config["create_custom_fields"] = False

    result = run_target(config, [*schema, *people("c@example.com")])

    assert isinstance(result.error, (StreamError, ConfigError))
    assert str(result.error).endswith("No records were written.")
    assert not sandbox.store.people


def test_an_integer_beyond_64_bits_is_judged_as_a_value_not_as_a_broken_line(
    sandbox, config, tmp_path
):
    config["on_invalid_record"] = "reject"
    schema = {"email": {"type": "string"}, "score": {"type": "integer"}}
    records = [{"email": "a@example.com", "score": 10**30}, {"email": "b@example.com", "score": 1}]

    done = run_cli(
        config, [schema_message("people", schema), *record_messages("people", records)], tmp_path
    )

    assert done.returncode == 0, done.stderr
    assert "score" in Path(config["rejected_records_path"]).read_text(encoding="utf-8")
    assert sandbox.store.find_person("b@example.com") is not None


def test_a_line_nested_too_deeply_to_read_stops_the_run_naming_its_line(config, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    text = '{"type": "RECORD", "stream": "people", "record": {"x": ' + deep + "}}\n"

    done = run_cli(config, text, tmp_path)

    assert done.returncode == 1
    assert "Input line 1" in done.stderr and "nested too deeply" in done.stderr

"""The target as users run it: CLI exit codes, clear errors, routing, secrets, STATE."""

from __future__ import annotations

import io
import json

import pytest
from conftest import (
    API_KEY,
    record_messages,
    run_cli,
    run_target,
    schema_message,
    state_message,
)

from target_ortto.errors import ConfigError, InvalidRecordError, StreamError

PEOPLE = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}


def people_messages(count: int = 3) -> list[dict]:
    records = [{"email": f"p{i}@example.com", "first_name": f"P{i}"} for i in range(count)]
    return [
        schema_message("people", PEOPLE),
        *record_messages("people", records),
        state_message({"done": True}),
    ]


def test_cli_loads_records_and_prints_the_state(sandbox, config, tmp_path):
    done = run_cli(config, people_messages(), tmp_path)

    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [{"done": True}]
    assert len(sandbox.store.people) == 3


def test_wrong_key_stops_at_once_naming_key_and_region(sandbox, config, tmp_path):
    done = run_cli({**config, "api_key": "not-the-key-0000"}, people_messages(), tmp_path)

    assert done.returncode == 1
    assert "api_key" in done.stderr and "region" in done.stderr
    assert "Traceback" not in done.stderr
    assert "not-the-key-0000" not in done.stderr + done.stdout
    assert done.stdout == ""
    assert len(sandbox.requests) <= 2
    assert not sandbox.store.people


def test_the_api_key_never_appears_in_output(sandbox, config, tmp_path):
    done = run_cli(
        {**config, "request_log_path": str(tmp_path / "requests.jsonl")},
        people_messages(),
        tmp_path,
    )

    assert done.returncode == 0
    assert API_KEY not in done.stdout + done.stderr
    assert API_KEY not in (tmp_path / "requests.jsonl").read_text()


def test_unroutable_stream_is_an_error_at_its_schema_showing_the_fix(sandbox, config, tmp_path):
    messages = [schema_message("things", PEOPLE), *record_messages("things", [{"email": "a@b.co"}])]

    done = run_cli(config, messages, tmp_path)

    assert done.returncode == 1
    assert "'things'" in done.stderr
    assert '"streams": {"things": {"object": "person"}}' in done.stderr
    assert "Traceback" not in done.stderr
    assert not sandbox.requests


def test_object_setting_routes_any_stream_name(sandbox, config):
    config["streams"] = {"crm_leads": {"object": "person"}}
    messages = [
        schema_message("crm_leads", PEOPLE),
        *record_messages("crm_leads", [{"email": "lead@example.com"}]),
    ]

    assert run_target(config, messages).error is None
    assert sandbox.store.find_person("lead@example.com") is not None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"api_key": ""}, "api_key"),
        ({"batch_size": 500}, "batch_size"),
        ({"api_url": "http://ortto.example.com"}, "api_url"),
        ({"streams": {"people": {"merge_key": ["email"]}}}, "merge_key"),
    ],
)
def test_bad_config_is_a_clear_error_before_anything_is_read(config, tmp_path, change, named):
    done = run_cli({**config, **change}, people_messages(), tmp_path)

    assert done.returncode == 1
    assert named in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_record_fails_the_run_naming_stream_key_and_field(sandbox, config):
    messages = [
        schema_message("people", PEOPLE),
        *record_messages("people", [{"email": "good@example.com"}]),
        state_message({"line": 1}),
        *record_messages("people", [{"email": "not-an-email"}]),
        state_message({"line": 2}),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, InvalidRecordError)
    message = str(result.error)
    assert "'people'" in message and "not-an-email" in message and "str::email" in message
    assert {"line": 2} not in result.states


def test_record_rejected_by_ortto_fails_the_run_with_orttos_reason(sandbox, config):
    sandbox.store.suppress("blocked@example.com")
    messages = [
        schema_message("people", PEOPLE),
        *record_messages("people", [{"email": "ok@example.com"}, {"email": "blocked@example.com"}]),
        state_message({"line": 2}),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, InvalidRecordError)
    assert "blocked@example.com" in str(result.error)
    assert "suppressed" in str(result.error)
    assert result.states == []


def test_schema_with_an_object_column_is_refused_naming_the_column(sandbox, config):
    schema = {**PEOPLE, "address": {"type": "object", "properties": {}}}
    result = run_target(config, [schema_message("people", schema)])

    assert isinstance(result.error, StreamError)
    assert "'address'" in str(result.error)


def test_a_record_with_no_merge_key_value_is_invalid(sandbox, config):
    schema = {**PEOPLE, "email": {"type": ["string", "null"]}}
    messages = [
        schema_message("people", schema),
        *record_messages("people", [{"email": None, "first_name": "Nobody"}]),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, InvalidRecordError)
    assert "merge_by" in str(result.error)


def test_a_record_that_does_not_match_its_schema_is_invalid_not_a_traceback(sandbox, config):
    messages = [
        schema_message("people", {**PEOPLE, "orders": {"type": "integer"}}),
        *record_messages("people", [{"email": "a@example.com", "orders": "many"}]),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, InvalidRecordError)
    assert "column 'orders' does not match the stream schema" in str(result.error)
    assert not sandbox.store.people


def test_a_malformed_date_is_an_invalid_record(sandbox, config):
    schema = {**PEOPLE, "signup": {"type": "string", "format": "date-time"}}
    messages = [
        schema_message("people", schema),
        *record_messages("people", [{"email": "a@example.com", "signup": "yesterday"}]),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, InvalidRecordError)
    assert "'signup'" in str(result.error)


def test_env_var_config_with_numbers_as_strings(sandbox, config, tmp_path, monkeypatch):
    monkeypatch.setenv("TARGET_ORTTO_API_KEY", API_KEY)
    monkeypatch.setenv("TARGET_ORTTO_API_URL", config["api_url"])
    monkeypatch.setenv("TARGET_ORTTO_REQUESTS_PER_SECOND", "25.5")
    monkeypatch.setenv("TARGET_ORTTO_BATCH_SIZE", "50")
    monkeypatch.setenv("TARGET_ORTTO_CREATE_CUSTOM_FIELDS", "true")
    monkeypatch.setenv("TARGET_ORTTO_LEDGER_PATH", str(tmp_path / "ledger.sqlite"))
    done = run_cli(None, people_messages(), tmp_path)

    assert done.returncode == 0, done.stderr
    assert len(sandbox.store.people) == 3


def test_config_errors_are_config_errors():
    from target_ortto.settings import parse_settings

    with pytest.raises(ConfigError):
        parse_settings({"api_key": "k", "region": "mars"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"type": "RECORD", "stream": "people", "record": {"email": "a@b.co"}}\n', "schema"),
        ('{"type": "SCHEMA", "stream": "people", "schema": {"properties": {}\n', "line"),
    ],
)
def test_malformed_input_is_a_clear_error_not_a_traceback(config, tmp_path, text, named):
    done = run_cli(config, text, tmp_path)

    assert done.returncode == 1
    assert named in done.stderr.lower()


def test_a_key_with_a_line_break_is_refused_without_echoing_it(config, tmp_path):
    done = run_cli({**config, "api_key": "secretKEY123\nx"}, people_messages(), tmp_path)

    assert done.returncode == 1
    assert "api_key" in done.stderr
    assert "secretKEY123" not in done.stderr + done.stdout


def test_settings_repr_never_shows_the_key(config):
    from target_ortto.settings import parse_settings

    assert API_KEY not in repr(parse_settings(config))


def test_dry_run_emits_no_state(sandbox, config):
    result = run_target({**config, "dry_run": True}, people_messages())

    assert result.error is None
    assert result.states == []


def test_a_termination_signal_stops_without_draining_or_state(sandbox, config):
    from target_ortto.target import TargetOrtto

    target = TargetOrtto(config=config)
    target.process_lines(io.StringIO("".join(json.dumps(m) + "\n" for m in people_messages())))

    with pytest.raises(SystemExit) as stopped:
        target._handle_termination(15, None)

    assert stopped.value.code == 143
    assert target.run.dispatcher.failed
    assert not sandbox.store.people


@pytest.mark.parametrize(
    "failure",
    ["invalid record", "ortto refuses the key", "rejects over the limit"],
)
def test_a_failed_run_closes_every_file_and_connection_it_opened(
    sandbox, config, tmp_path, failure
):
    config = {**config, "request_log_path": str(tmp_path / "requests.jsonl")}
    messages = people_messages()
    if failure == "invalid record":
        messages.insert(1, record_messages("people", [{"email": "not-an-email"}])[0])
    elif failure == "ortto refuses the key":
        config["api_key"] = "not-the-key-0000"
    else:
        config |= {"on_invalid_record": "reject", "max_rejected_records": 0}
        messages.insert(1, record_messages("people", [{"email": "not-an-email"}])[0])
    done = run_cli(config, messages, tmp_path, python_args=("-W", "default"))

    assert done.returncode == 1
    assert "ResourceWarning" not in done.stderr, done.stderr

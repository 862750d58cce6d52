"""What the operator sees: rejected records, fail vs reject, dry runs, progress, summary."""

from __future__ import annotations

import json
import logging

from conftest import (
    API_KEY,
    ORGANIZATIONS_SCHEMA,
    PEOPLE_SCHEMA,
    demo_records,
    record_messages,
    run_target,
    schema_message,
    state_message,
)

from target_ortto import report as report_module
from target_ortto.errors import InvalidRecordError

PEOPLE = {
    "id": {"type": "integer"},
    "email": {"type": ["string", "null"]},
    "first_name": {"type": ["string", "null"]},
}
WRITES = ("/merge", "/create", "/subscribe", "/archive", "/delete")


def good_and_bad() -> list[dict]:
    good = [{"id": i, "email": f"good{i}@example.com", "first_name": "Ok"} for i in range(10)]
    bad = [
        {"id": 10, "email": "not-an-email", "first_name": "Bad"},
        {"id": 11, "email": "long@example.com", "first_name": "x" * 400},
        {"id": 12, "email": None, "first_name": "No Email"},
    ]
    return [
        schema_message("people", PEOPLE, ["id"]),
        *record_messages("people", good[:5] + bad[:1] + good[5:] + bad[1:]),
        state_message({"line": 13}),
    ]


def test_reject_lands_the_good_records_and_sets_the_bad_aside_with_reasons(
    sandbox, config, tmp_path
):
    config["on_invalid_record"] = "reject"

    result = run_target(config, good_and_bad())

    assert result.error is None
    assert len(sandbox.store.people) == 10
    rows = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [row["record"]["id"] for row in rows] == [10, 11, 12]
    assert all(row["stream"] == "people" for row in rows)
    reasons = [row["reason"] for row in rows]
    assert "not a valid email" in reasons[0]
    assert "400 characters" in reasons[1] and "str::first" in reasons[1]
    assert "merge_by" in reasons[2]
    assert rows[0]["key"] == "email='not-an-email'"
    assert result.states == [{"line": 13}]


def test_fail_stops_naming_the_bad_record_and_emits_no_state(sandbox, config):
    result = run_target(config, good_and_bad())

    assert isinstance(result.error, InvalidRecordError)
    assert "'people'" in str(result.error) and "not-an-email" in str(result.error)
    assert "on_invalid_record: reject" in str(result.error)
    assert result.states == []


def test_records_ortto_refuses_are_rejected_with_orttos_reason(sandbox, config, tmp_path):
    config["on_invalid_record"] = "reject"
    sandbox.store.suppress("good3@example.com")

    result = run_target(config, good_and_bad()[:6] + good_and_bad()[-1:])

    assert result.error is None
    rows = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [row["key"] for row in rows] == ["email='good3@example.com'"]
    assert "suppressed" in rows[0]["reason"]


def test_more_rejections_than_max_rejected_records_fail_the_run(sandbox, config):
    config.update(on_invalid_record="reject", max_rejected_records=2)

    result = run_target(config, good_and_bad())

    assert isinstance(result.error, InvalidRecordError)
    assert "max_rejected_records=2" in str(result.error)
    assert result.states == []


def test_dry_run_makes_no_write_request_and_states_what_it_would_send(sandbox, config, caplog):
    config["dry_run"] = True
    messages = [
        schema_message("people", PEOPLE_SCHEMA, ["id"]),
        *record_messages("people", demo_records("people")),
        schema_message("organizations", ORGANIZATIONS_SCHEMA, ["id"]),
        *record_messages("organizations", demo_records("organizations")),
    ]

    with caplog.at_level(logging.INFO):
        result = run_target(config, messages)

    assert result.error is None
    assert not [r for r in sandbox.requests if r.path.endswith(WRITES)]
    assert not sandbox.store.people
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary")]
    assert any("'people': 251 read" in line and "would send 250" in line for line in summary)
    assert any("'organizations'" in line and "would send 120" in line for line in summary)
    samples = [r.getMessage() for r in caplog.records if "Dry run: would send" in r.getMessage()]
    assert any("'people'" in m and "str::email" in m for m in samples)
    assert any("'organizations'" in m and "str:o:name" in m for m in samples)


def test_request_log_has_every_request_and_no_key(sandbox, config, tmp_path):
    config["request_log_path"] = str(tmp_path / "requests.jsonl")

    run_target(config, good_and_bad()[:1] + good_and_bad()[1:6])

    entries = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        (r.method, r.path, r.status) for r in sandbox.requests
    ]
    merge = next(e for e in entries if e["path"] == "/v1/person/merge")
    assert merge["request"]["people"][0]["fields"]["str::email"] == "good0@example.com"
    assert merge["response"]["people"][0]["status"] == "created"
    assert merge["duration_ms"] >= 0
    assert API_KEY not in (tmp_path / "requests.jsonl").read_text()


def test_summary_counts_each_outcome_per_stream(sandbox, config, caplog):
    config["on_invalid_record"] = "reject"
    with caplog.at_level(logging.INFO):
        run_target(config, good_and_bad())

    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary")]
    assert summary == ["Summary: Stream 'people': 13 read; created 10, rejected 3"]


def test_progress_lines_appear_on_long_runs(sandbox, config, caplog, monkeypatch):
    monkeypatch.setattr(report_module, "PROGRESS_EVERY", 0.05)
    sandbox.set_faults(latency=0.3)

    with caplog.at_level(logging.INFO):
        run_target(config, good_and_bad()[:6])

    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress")]
    assert progress and "records read" in progress[-1]


def test_the_request_log_redacts_the_key_where_it_stands_alone_not_inside_words(tmp_path):
    log = report_module.JsonLinesFile(str(tmp_path / "requests.jsonl"), redact="e")
    log.write({"method": "POST", "path": "/v1/person/merge", "key": "e", "said": "key e here"})
    log.close()

    line = (tmp_path / "requests.jsonl").read_text()
    entry = json.loads(line)
    assert entry == {
        "method": "POST",
        "path": "/v1/person/merge",
        "key": "[REDACTED]",
        "said": "key [REDACTED] here",
    }


def test_the_request_log_redacts_a_key_json_escapes(tmp_path):
    key = 'k"ey\\with/quotes'
    log = report_module.JsonLinesFile(str(tmp_path / "requests.jsonl"), redact=key)
    log.write({"header": key, "body": {"error": f"bad key {key}"}})
    log.close()

    line = (tmp_path / "requests.jsonl").read_text()
    assert "ey" not in line.replace("key", "")
    assert json.loads(line) == {"header": "[REDACTED]", "body": {"error": "bad key [REDACTED]"}}


def phone_people() -> list[dict]:
    schema = {**PEOPLE, "phone": {"type": ["string", "null"]}, "country": {"type": "string"}}
    rows = [
        {"id": 1, "email": "au@example.com", "phone": "0401 234 567", "country": "Australia"},
        {"id": 2, "email": "us@example.com", "phone": "(650) 253-0000", "country": "US"},
        {"id": 3, "email": "bad@example.com", "phone": "12", "country": "AU"},
        {"id": 4, "email": "bad2@example.com", "phone": "call me", "country": "AU"},
    ]
    return [schema_message("people", schema, ["id"]), *record_messages("people", rows)]


def test_invalid_phones_drop_writes_people_without_them_counted_and_warned_once(
    sandbox, config, caplog
):
    config["invalid_phones"] = "drop"

    with caplog.at_level(logging.INFO):
        result = run_target(config, phone_people())

    assert result.error is None
    people = {p.fields["str::email"]: p.fields for p in sandbox.store.people.values()}
    assert people["au@example.com"]["phn::phone"] == {"c": "61", "n": "401234567"}
    assert people["us@example.com"]["phn::phone"] == {"c": "1", "n": "6502530000"}
    assert "phn::phone" not in people["bad@example.com"]
    assert "phn::phone" not in people["bad2@example.com"]
    warnings = [r.getMessage() for r in caplog.records if "invalid_phones: drop" in r.getMessage()]
    assert len(warnings) == 1 and "bad@example.com" in warnings[0] and "'12'" in warnings[0]
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary")]
    assert summary == ["Summary: Stream 'people': 4 read; created 4, phones_dropped 2"]


def test_an_unreadable_phone_rejects_the_person_by_default(sandbox, config):
    config["on_invalid_record"] = "reject"

    result = run_target(config, phone_people())

    assert result.error is None
    assert {p.fields["str::email"] for p in sandbox.store.people.values()} == {
        "au@example.com",
        "us@example.com",
    }

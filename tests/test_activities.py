"""Activity streams, run through the target against the sandbox: each rule of issue 16."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from conftest import record_messages, run_cli, run_target, schema_message, state_message

from target_ortto.settings import parse_settings

DEAL = "act:cm:deal-stage-changed"
SCHEMA = {
    "id": {"type": "integer"},
    "email": {"type": ["string", "null"]},
    "first_name": {"type": ["string", "null"]},
    "occurred_at": {"type": ["string", "null"], "format": "date-time"},
    "stage": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]},
    "closing_on": {"type": ["string", "null"], "format": "date"},
}
RECENT = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).replace(microsecond=0)


def event(i: int, email: str = "ada@example.com", **values) -> dict:
    when = RECENT - dt.timedelta(minutes=i)
    return {
        "id": i,
        "email": email,
        "first_name": "Ada",
        "occurred_at": when.isoformat(),
        "stage": "Won",
        "amount": 1250.5,
        "closing_on": "2026-12-24",
        **values,
    }


def stream(records, schema=None, keys=("id",), name="events", state=None) -> list[dict]:
    return [
        schema_message(name, schema or SCHEMA, list(keys)),
        *record_messages(name, records),
        state_message(state or {"bookmarks": {name: {"id": len(records)}}}),
    ]


@pytest.fixture
def deals(config):
    config["streams"] = {"events": {"activity": "Deal stage changed"}}
    return config


def requests_to(sandbox, path):
    return [r for r in sandbox.requests if r.path == path]


def activities(sandbox):
    return sandbox.store.snapshot()["activities"]


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("activities", "activity"),
        ("activity", "activity"),
        ("events", "activity"),
        ("event", "activity"),
        ("public-events", "activity"),
        ("activity_deals", "activity"),
        ("event_signups", "activity"),
        ("eventual", None),
    ],
)
def test_activity_streams_are_inferred_from_their_names(name, obj):
    settings = parse_settings({"api_key": "k"})
    if obj is None:
        with pytest.raises(Exception, match="activity"):
            settings.object_for(name)
    else:
        assert settings.object_for(name) == obj


def test_events_land_typed_back_dated_keyed_on_the_right_people_and_subscribe_nobody(
    sandbox, deals
):
    result = run_target(deals, stream([event(1), event(2, "bob@example.com")]))

    assert result.error is None
    assert result.states == [{"bookmarks": {"events": {"id": 2}}}]
    ada = sandbox.store.find_person("ada@example.com")
    assert ada.fields["str::first"] == "Ada"
    assert ada.fields["bol::p"] is False
    assert sandbox.store.snapshot()["subscribers"] == []
    (kept,) = sandbox.store.activities_of(ada.id)
    assert kept["activity_id"] == DEAL
    assert kept["key"] == "1"
    assert kept["created"] == (RECENT - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kept["attributes"] == {
        "int:cm:id": 1,
        "str:cm:stage": "Won",
        "int:cm:amount": 1250500,
        "dtz:cm:closing-on": {"year": 2026, "month": 12, "day": 24, "timezone": "UTC"},
    }
    sent = requests_to(sandbox, "/v1/activities/create")[0].body["activities"][0]
    assert set(sent) == {"activity_id", "attributes", "person_id", "created", "key"}
    assert sandbox.store.dropped_activities == []


def test_people_are_made_sure_of_before_activities_and_existing_subscribers_stay(sandbox, deals):
    sandbox.store.merge("person", {"people": [{"fields": {"str::email": "old@example.com"}}]})
    assert sandbox.store.find_person("old@example.com").fields["bol::p"] is True

    run_target(deals, stream([event(1, "old@example.com"), event(2, "new@example.com")]))

    paths = [r.path for r in sandbox.requests if r.path.startswith("/v1/")]
    assert paths.index("/v1/person/merge") < paths.index("/v1/activities/create")
    create = requests_to(sandbox, "/v1/person/merge")[0].body
    assert create["merge_strategy"] == 1
    assert all(p["fields"]["bol::p"] is False for p in create["people"])
    assert create["suppression_list_field_id"] == "str::email"
    assert sandbox.store.find_person("old@example.com").fields["bol::p"] is True
    assert sandbox.store.find_person("new@example.com").fields["bol::p"] is False


def test_subscribe_new_people_true_lets_ortto_subscribe_them(sandbox, deals):
    deals["subscribe_new_people"] = True

    run_target(deals, stream([event(1, "new@example.com")]))

    assert sandbox.store.find_person("new@example.com").fields["bol::p"] is True


def test_a_rerun_of_the_same_rows_sends_nothing(sandbox, deals, caplog):
    messages = stream([event(i, f"p{i % 3}@example.com") for i in range(10)])
    run_target(deals, messages)
    sent = len(sandbox.requests)

    with caplog.at_level(logging.INFO):
        result = run_target({**deals, "skip_unchanged": False}, messages)

    assert result.error is None
    writes = [r.path for r in sandbox.requests[sent:]]
    assert writes == ["/v1/instance-schema/get"]
    assert len(activities(sandbox)) == 10
    assert any("10 read; unchanged 10" in r.getMessage() for r in caplog.records)


def test_a_per_row_activity_column_feeds_many_activities(sandbox, config):
    schema = {**SCHEMA, "activity": {"type": "string"}}
    rows = [event(1, activity="Deal won"), event(2, activity="act:cm:deal-lost")]

    result = run_target(config, stream(rows, schema=schema))

    assert result.error is None
    assert set(sandbox.store.activity_definitions) == {"act:cm:deal-won", "act:cm:deal-lost"}
    assert sorted(a["activity_id"] for a in activities(sandbox)) == [
        "act:cm:deal-lost",
        "act:cm:deal-won",
    ]


def test_a_stream_that_does_not_say_which_activity_is_refused_at_schema(sandbox, config):
    result = run_target(config, stream([event(1)]))

    assert "which activity?" in str(result.error)
    assert requests_to(sandbox, "/v1/activities/create") == []


def test_a_stream_named_otherwise_is_an_activity_stream_by_its_object_setting(sandbox, config):
    config["streams"] = {"deal_history": {"object": "activity", "activity": "Deal moved"}}

    result = run_target(config, stream([event(1)], name="deal_history"))

    assert result.error is None
    assert [a["activity_id"] for a in activities(sandbox)] == ["act:cm:deal-moved"]


def test_a_missing_definition_stops_cleanly_before_anything_of_it_is_sent(sandbox, deals, tmp_path):
    deals["create_custom_fields"] = False

    done = run_cli(deals, stream([event(1)]), tmp_path)

    assert done.returncode == 1
    message = done.stderr
    assert f"Ortto has no custom activity {DEAL}" in message
    assert "str:cm:stage (text) from column 'stage'" in message
    assert "int:cm:amount (decimal) from column 'amount'" in message
    assert "create_custom_fields: true" in message and "Settings > Activities" in message
    assert [r.path for r in sandbox.requests] == ["/v1/instance-schema/get"]
    assert done.stdout == ""  # no STATE


def test_an_existing_definition_is_used_and_an_attribute_of_another_type_stops(sandbox, deals):
    sandbox.store.add_activity_definition(
        "deal-stage-changed",
        {"id": "integer", "stage": "text", "amount": "decimal", "closing-on": "date"},
    )
    assert run_target(deals, stream([event(1)])).error is None
    assert requests_to(sandbox, "/v1/definitions/activity/create") == []

    sandbox.reset()
    sandbox.store.add_activity_definition(
        "deal-stage-changed",
        {"id": "integer", "stage": "integer", "amount": "decimal", "closing-on": "date"},
    )
    result = run_target(deals, stream([event(2)]))

    assert "column 'stage' needs str:cm:stage (text)" in str(result.error)
    assert requests_to(sandbox, "/v1/activities/create") == []


def test_a_definition_ortto_says_exists_is_read_again_and_used(sandbox, deals):
    route = sandbox._routes["/v1/instance-schema/get"]
    reads = []

    def hide_it_the_first_time(body):
        reads.append(body)
        if len(reads) == 1:
            sandbox.store.add_activity_definition(
                "deal-stage-changed",
                {"id": "integer", "stage": "text", "amount": "decimal", "closing-on": "date"},
            )
            return {"namespaces": {"cm": {"id": "cm", "fields": {}}}}
        return route[1](body)

    sandbox._routes["/v1/instance-schema/get"] = (route[0], hide_it_the_first_time)
    try:
        result = run_target(deals, stream([event(1)]))
    finally:
        sandbox._routes["/v1/instance-schema/get"] = route

    assert result.error is None
    assert [r.status for r in requests_to(sandbox, "/v1/definitions/activity/create")] == [423]
    assert len(activities(sandbox)) == 1


def test_a_plan_limit_refusal_says_so(sandbox, deals):
    sandbox.store.set_activity_limit(0)

    result = run_target(deals, stream([event(1)]))

    assert "plan limits the number of custom activities" in str(result.error)
    assert requests_to(sandbox, "/v1/activities/create") == []


def test_more_than_15_attributes_is_an_error_at_schema_naming_the_columns(sandbox, deals):
    schema = {**SCHEMA, **{f"extra_{n}": {"type": "string"} for n in range(12)}}

    result = run_target(deals, stream([event(1)], schema=schema))

    assert "16 attributes" in str(result.error) and "'extra_11'" in str(result.error)
    assert sandbox.requests == []


@pytest.mark.parametrize(
    ("created", "why"),
    [
        ("yesterday", "not an ISO 8601 date-time"),
        ("0000-01-01T00:00:00Z", "not an ISO 8601 date-time"),
        ("2999-01-01T00:00:00Z", "in the future"),
        (None, "no value in column 'occurred_at'"),
    ],
)
def test_unreadable_year_zero_future_or_missing_created_is_an_invalid_record(
    sandbox, deals, tmp_path, created, why
):
    deals["on_invalid_record"] = "reject"
    schema = {**SCHEMA, "occurred_at": {"type": ["string", "null"]}}

    result = run_target(deals, stream([event(1, occurred_at=created), event(2)], schema=schema))

    assert result.error is None
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    assert [r["record"]["id"] for r in rejected] == [1]
    assert why in rejected[0]["reason"]
    assert [a["key"] for a in activities(sandbox)] == ["2"]


def test_created_is_converted_to_utc_and_may_come_from_created_column(sandbox, deals):
    deals["streams"]["events"]["created_column"] = "happened"
    schema = {**SCHEMA, "happened": {"type": "string"}}

    run_target(deals, stream([event(1, happened="2026-11-20T12:00:00+02:00")], schema=schema))

    (kept,) = activities(sandbox)
    assert kept["created"] == "2026-11-20T10:00:00Z"
    assert "str:cm:occurred-at" not in str(kept)  # not the created column: an attribute
    assert kept["attributes"]["tme:cm:occurred-at"]


def test_keys_come_from_key_properties_hashed_when_long_else_from_the_record(sandbox, deals):
    schema = {**SCHEMA, "ref": {"type": "string", "maxLength": 1000}}
    long_ref = "x" * 300

    first = run_target(
        deals, stream([event(1, ref="a"), event(2, ref=long_ref)], schema, ("id", "ref"))
    )
    assert first.error is None
    run_target(deals, stream([event(3)], name="events", keys=()))

    keys = [a["key"] for a in activities(sandbox)]
    assert keys[0] == "1:a"
    assert keys[1].startswith("h:") and len(keys[1]) <= 255
    assert keys[2].startswith("r:")


def test_a_record_over_16_kb_is_invalid(sandbox, deals, tmp_path):
    deals["on_invalid_record"] = "reject"
    schema = {**SCHEMA, "notes": {"type": "string", "maxLength": 4000}}
    big = {f"note_{n}": {"type": "string", "maxLength": 4000} for n in range(4)}

    run_target(
        deals,
        stream(
            [event(1, **{f"note_{n}": "n" * 4000 for n in range(4)}), event(2)], {**schema, **big}
        ),
    )

    (rejected,) = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    assert "16 kB" in rejected["reason"]
    assert [a["key"] for a in activities(sandbox)] == ["2"]


@pytest.mark.parametrize("since", [30, "30", (RECENT - dt.timedelta(days=27)).date().isoformat()])
def test_events_older_than_since_are_skipped_and_counted(sandbox, deals, caplog, since):
    deals["streams"]["events"]["since"] = since
    old = (RECENT - dt.timedelta(days=40)).isoformat()

    with caplog.at_level(logging.INFO):
        run_target(deals, stream([event(1), event(2, occurred_at=old)]))

    assert [a["key"] for a in activities(sandbox)] == ["1"]
    assert any("skipped_old 1" in r.getMessage() for r in caplog.records)


def test_events_older_than_90_days_are_sent_with_one_warning_counting_them(sandbox, deals, caplog):
    old = (RECENT - dt.timedelta(days=120)).isoformat()

    with caplog.at_level(logging.WARNING):
        run_target(deals, stream([event(1, occurred_at=old), event(2, occurred_at=old)]))

    assert len(activities(sandbox)) == 2
    warned = [r.getMessage() for r in caplog.records if "older than 90 days" in r.getMessage()]
    assert len(warned) == 1 and "2 events" in warned[0]


def test_more_than_50_of_one_activity_per_person_a_day_are_rejected_in_and_across_runs(
    sandbox, deals, tmp_path
):
    deals["on_invalid_record"] = "reject"

    run_target(deals, stream([event(i) for i in range(55)]))
    run_target(deals, stream([event(i) for i in range(100, 103)] + [event(200, "bob@example.com")]))

    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    assert len(rejected) == 8
    assert "more than 50 events of one activity for one person in 24 hours" in rejected[0]["reason"]
    assert len(activities(sandbox)) == 51
    assert sandbox.store.dropped_activities == []


def test_requests_carry_at_most_100_activities_and_async_merge_applies(sandbox, deals):
    deals["async_merge"] = True
    rows = [event(i, f"p{i % 60}@example.com") for i in range(250)]

    run_target(deals, stream(rows))

    sent = requests_to(sandbox, "/v1/activities/create")
    assert max(r.records for r in sent) <= 100 and sum(r.records for r in sent) == 250
    assert all(r.body["async"] is True for r in sent)
    assert len(activities(sandbox)) == 250


def test_no_state_is_emitted_past_activities_ortto_did_not_acknowledge(sandbox, deals):
    deals["max_retries"] = 0
    messages = [
        schema_message("events", SCHEMA, ["id"]),
        *record_messages("events", [event(1)]),
        state_message({"done": 1}),
    ]

    def break_activities():
        route = sandbox._routes["/v1/activities/create"]

        def refuse(body):
            from target_ortto.sandbox import ApiError

            raise ApiError("injected", status=503)

        sandbox._routes["/v1/activities/create"] = (route[0], refuse)
        breaks.append(route)

    breaks: list = []
    try:
        result = run_target(deals, messages, after_first_schema=break_activities)
    finally:
        if breaks:
            sandbox._routes["/v1/activities/create"] = breaks[0]

    assert result.error is not None
    assert result.states == []


def test_a_dry_run_plans_definitions_people_and_activities_and_writes_nothing(
    sandbox, deals, caplog
):
    deals["dry_run"] = True

    with caplog.at_level(logging.INFO):
        result = run_target(deals, stream([event(1), event(2, "bob@example.com")]))

    assert result.error is None and result.states == []
    assert [r.path for r in sandbox.requests] == ["/v1/instance-schema/get"]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"would create custom activity {DEAL}" in said
    assert "would send 2" in said and "planned_people 2" in said


def test_person_columns_update_the_person_and_field_map_renames(sandbox, deals):
    deals["streams"]["events"]["field_map"] = {"stage": "str:cm:deal-stage", "amount": None}

    run_target(deals, stream([event(1, first_name="Ada")]))
    run_target(deals, stream([event(2, first_name="Adaline")]))

    person = sandbox.store.find_person("ada@example.com")
    assert person.fields["str::first"] == "Adaline"
    assert person.fields["bol::p"] is False
    last = activities(sandbox)[-1]["attributes"]
    assert "str:cm:deal-stage" in last and "int:cm:amount" not in last


def test_an_activity_stream_needs_a_person_column(sandbox, deals):
    schema = {k: v for k, v in SCHEMA.items() if k != "email"}

    result = run_target(deals, stream([event(1)], schema=schema))

    assert "no email, external_id or ortto_person_id column" in str(result.error)


def test_ortto_person_ids_go_straight_to_the_activity(sandbox, deals):
    sandbox.store.merge("person", {"people": [{"fields": {"str::email": "x@example.com"}}]})
    person_id = sandbox.store.find_person("x@example.com").id
    schema = {k: v for k, v in SCHEMA.items() if k not in ("email", "first_name")}
    schema["ortto_person_id"] = {"type": "string"}
    row = {k: v for k, v in event(1).items() if k not in ("email", "first_name")}

    result = run_target(deals, stream([{**row, "ortto_person_id": person_id}], schema=schema))

    assert result.error is None
    assert requests_to(sandbox, "/v1/person/merge") == []
    assert len(sandbox.store.activities_of(person_id)) == 1


def test_a_suppressed_new_person_rejects_their_events_with_the_reason(sandbox, deals, tmp_path):
    deals["on_invalid_record"] = "reject"
    sandbox.store.suppress("gone@example.com")

    run_target(deals, stream([event(1, "gone@example.com"), event(2)]))

    (rejected,) = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    assert "its person could not be written first" in rejected["reason"]
    assert "suppressed" in rejected["reason"]
    assert [a["key"] for a in activities(sandbox)] == ["2"]


def test_people_merges_drain_before_activities_in_one_run(sandbox, deals):
    people_schema = {"id": {"type": "integer"}, "email": {"type": "string"}}
    messages = [
        schema_message("people", people_schema, ["id"]),
        *record_messages("people", [{"id": 1, "email": "ada@example.com"}]),
        *stream([event(1)]),
    ]

    result = run_target(deals, messages)

    assert result.error is None
    paths = [r.path for r in sandbox.requests]
    assert paths.index("/v1/person/merge") < paths.index("/v1/activities/create")


def test_deleted_event_rows_are_kept_not_sent(sandbox, deals, caplog):
    schema = {**SCHEMA, "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}

    with caplog.at_level(logging.INFO):
        run_target(deals, stream([event(1, _sdc_deleted_at=RECENT.isoformat()), event(2)], schema))

    assert [a["key"] for a in activities(sandbox)] == ["2"]
    assert any("kept (deleted at source" in r.getMessage() for r in caplog.records)


def test_the_readme_worked_example_sends_what_the_readme_shows(sandbox, config):
    config["streams"] = {
        "analytics-deal_stage_changes": {
            "object": "activity",
            "activity": "Deal stage changed",
            "created_column": "changed_at",
            "since": 90,
        }
    }
    schema = {
        "change_id": {"type": "integer"},
        "email": {"type": "string"},
        "deal_name": {"type": "string"},
        "stage": {"type": "string"},
        "amount": {"type": "number"},
        "changed_at": {"type": "string", "format": "date-time"},
    }
    row = {
        "change_id": 7741,
        "email": "ada@example.com",
        "deal_name": "Acme renewal",
        "stage": "Won",
        "amount": 12500.00,
        "changed_at": RECENT.isoformat(),  # as tap-postgres sends it; recent: since is 90
    }

    name = "analytics-deal_stage_changes"
    result = run_target(config, stream([row], schema, ("change_id",), name=name))

    assert result.error is None
    sent = requests_to(sandbox, "/v1/activities/create")[0].body["activities"][0]
    assert sent == {
        "activity_id": DEAL,
        "person_id": sandbox.store.find_person("ada@example.com").id,
        "created": RECENT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key": "7741",
        "attributes": {
            "int:cm:change-id": 7741,
            "str:cm:deal-name": "Acme renewal",
            "str:cm:stage": "Won",
            "int:cm:amount": 12500000,
        },
    }


def test_field_types_choose_an_attributes_type_and_consent_is_set_only_when_mapped(sandbox, deals):
    deals["streams"]["events"]["field_types"] = {"stage": "large_text"}
    deals["streams"]["events"]["field_map"] = {"opted_in": "bol::p"}
    schema = {**SCHEMA, "opted_in": {"type": ["boolean", "null"]}}

    result = run_target(deals, stream([event(1, opted_in=True)], schema))

    assert result.error is None
    assert "txt:cm:stage" in activities(sandbox)[0]["attributes"]
    assert sandbox.store.find_person("ada@example.com").fields["bol::p"] is True


def test_an_activity_stream_takes_no_full_snapshot_or_delete_behavior(sandbox, deals):
    deals["streams"]["events"]["full_snapshot"] = True

    result = run_target(deals, stream([event(1)]))

    assert "nothing is removed for rows that leave" in str(result.error)
    assert requests_to(sandbox, "/v1/activities/create") == []


def test_baseline_records_events_as_sent_so_the_next_run_sends_none_of_them(sandbox, deals):
    sandbox.store.add_activity_definition(
        "deal-stage-changed",
        {"id": "integer", "stage": "text", "amount": "decimal", "closing-on": "date"},
    )
    messages = stream([event(1), event(2)])
    run_target({**deals, "baseline": True}, messages)

    result = run_target(deals, stream([event(1), event(2), event(3)]))

    assert result.error is None
    assert [a["key"] for a in activities(sandbox)] == ["3"]


def test_a_refused_batch_is_split_to_find_the_activities_at_fault(sandbox, deals):
    run_target(deals, stream([event(1)]))  # Ada is known: the next run sends no merge

    result = run_target(
        deals,
        stream([event(2), event(3), event(4)]),
        after_first_schema=lambda: sandbox.fail_next(1, 400),
    )

    assert result.error is None
    creates = requests_to(sandbox, "/v1/activities/create")
    assert [(r.status, r.records) for r in creates[1:]] == [(400, 3), (200, 1), (200, 2)]
    assert sorted(a["key"] for a in activities(sandbox)) == ["1", "2", "3", "4"]


def test_a_year_zero_date_time_column_is_an_invalid_record_too(sandbox, deals, tmp_path):
    deals["on_invalid_record"] = "reject"

    run_target(deals, stream([event(1, occurred_at="0000-01-01T00:00:00Z"), event(2)]))

    (rejected,) = [json.loads(line) for line in (tmp_path / "rejected.jsonl").open()]
    assert "occurred_at" in rejected["reason"]
    assert [a["key"] for a in activities(sandbox)] == ["2"]

"""Whole runs of the target against the sandbox: what lands, in which requests, and STATE."""

from __future__ import annotations

import pytest
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


def demo_messages() -> list[dict]:
    people = demo_records("people")
    orgs = demo_records("organizations")
    return [
        schema_message("people", PEOPLE_SCHEMA, ["id"]),
        *record_messages("people", people[:120]),
        state_message({"bookmarks": {"people": {"line": 120}}}),
        *record_messages("people", people[120:]),
        state_message({"bookmarks": {"people": {"line": len(people)}}}),
        schema_message("public-organizations", ORGANIZATIONS_SCHEMA, ["id"]),
        *record_messages("public-organizations", orgs),
        state_message({"bookmarks": {"people": {"line": len(people)}, "orgs": {"line": 120}}}),
    ]


def test_people_and_organizations_land_exactly_typed(sandbox, config):
    result = run_target(config, demo_messages())

    assert result.error is None
    people = {p.fields["str::email"]: p for p in sandbox.store.people.values()}
    assert len(people) == 250
    first = people["person1@example.com"]
    source = demo_records("people")[0]
    assert first.fields["str::first"] == source["first_name"]
    assert first.fields["phn::phone"]["c"] == "61"
    assert first.fields["geo::city"] == {"name": source["city"]}
    assert first.fields["int:cm:lifetime-value"] == round(source["lifetime_value"] * 1000)
    assert first.fields["int:cm:orders-count"] == source["orders_count"]
    assert first.fields["bol:cm:is-vip"] is source["is_vip"]
    year, month, day = map(int, source["signup_date"].split("-"))
    assert first.fields["dtz:cm:signup-date"] == {
        "year": year,
        "month": month,
        "day": day,
        "timezone": "UTC",
    }
    assert first.fields["int:cm:id"] == 1


def test_a_person_updated_later_in_the_stream_keeps_the_later_values(sandbox, config):
    run_target(config, demo_messages())

    updated = sandbox.store.find_person("person5@example.com")
    assert updated.fields["str::first"] == "Renamed"
    assert updated.fields["int:cm:lifetime-value"] == 1234500
    assert "vip" in updated.tags


def test_nulls_are_not_sent_by_default(sandbox, config):
    run_target(config, demo_messages())

    no_last_name = sandbox.store.find_person("person17@example.com")
    assert "str::last" not in no_last_name.fields
    merges = [r for r in sandbox.requests if r.path == "/v1/person/merge"]
    assert all(None not in person["fields"].values() for r in merges for person in r.body["people"])


def test_organizations_become_accounts(sandbox, config):
    run_target(config, demo_messages())

    accounts = {a.fields["str:o:name"]: a for a in sandbox.store.accounts.values()}
    assert len(accounts) == 120
    company = accounts["Company 001"]
    source = demo_records("organizations")[0]
    assert company.fields["int:o:employees"] == source["employees"]
    assert company.fields["str:o:website"] == source["website"]
    assert company.fields["geo:o:country"] == {"name": source["country"]}
    assert company.fields["int:oc:annual-revenue"] == source["annual_revenue"]


def test_records_travel_in_requests_of_at_most_batch_size(sandbox, config):
    run_target(config, demo_messages())

    person_merges = [r.records for r in sandbox.requests if r.path == "/v1/person/merge"]
    account_merges = [r.records for r in sandbox.requests if r.path == "/v1/accounts/merge"]
    assert sorted(person_merges) == [50, 100, 100]
    assert sorted(account_merges) == [20, 100]


def test_batch_size_setting_is_honoured(sandbox, config):
    run_target({**config, "batch_size": 40}, demo_messages())

    sizes = [r.records for r in sandbox.requests if r.path == "/v1/person/merge"]
    assert max(sizes) == 40
    assert sum(sizes) == 250


def test_the_taps_last_state_is_emitted_last(sandbox, config):
    result = run_target(config, demo_messages())

    assert result.states[-1] == {"bookmarks": {"people": {"line": 251}, "orgs": {"line": 120}}}


def test_the_api_key_is_sent_as_a_header_and_never_in_bodies(sandbox, config):
    run_target(config, demo_messages())

    assert sandbox.requests
    assert all(API_KEY not in repr(r.body) for r in sandbox.requests)


PERSON = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}


def people_run(config, records, stream="people"):
    return run_target(config, [schema_message(stream, PERSON), *record_messages(stream, records)])


def test_update_mode_changes_existing_people_and_creates_none(sandbox, config):
    people_run(config, [{"email": "old@example.com", "first_name": "Old"}])
    config["streams"] = {"people": {"mode": "update"}}

    result = people_run(
        config,
        [
            {"email": "old@example.com", "first_name": "Updated"},
            {"email": "new@example.com", "first_name": "New"},
        ],
    )

    assert result.error is None
    assert sandbox.store.find_person("old@example.com").fields["str::first"] == "Updated"
    assert sandbox.store.find_person("new@example.com") is None
    merge = [r for r in sandbox.requests if r.path == "/v1/person/merge"][-1]
    assert merge.body["merge_strategy"] == 2 and merge.body["skip_non_existing"] is True


def test_insert_mode_creates_new_people_and_leaves_existing_untouched(sandbox, config):
    people_run(config, [{"email": "old@example.com", "first_name": "Old"}])
    config["streams"] = {"people": {"mode": "insert"}}

    people_run(
        config,
        [
            {"email": "old@example.com", "first_name": "Changed"},
            {"email": "new@example.com", "first_name": "New"},
        ],
    )

    assert sandbox.store.find_person("old@example.com").fields["str::first"] == "Old"
    assert sandbox.store.find_person("new@example.com").fields["str::first"] == "New"


def test_append_mode_only_fills_empty_fields(sandbox, config):
    schema = {**PERSON, "last_name": {"type": ["string", "null"]}}
    run_target(
        config,
        [
            schema_message("people", schema),
            *record_messages("people", [{"email": "a@example.com", "first_name": "Ann"}]),
        ],
    )
    config["streams"] = {"people": {"mode": "append"}}

    run_target(
        config,
        [
            schema_message("people", schema),
            *record_messages(
                "people", [{"email": "a@example.com", "first_name": "Bob", "last_name": "Lee"}]
            ),
        ],
    )

    fields = sandbox.store.find_person("a@example.com").fields
    assert (fields["str::first"], fields["str::last"]) == ("Ann", "Lee")


def test_null_values_clear_sends_nulls_that_clear_fields(sandbox, config):
    people_run(config, [{"email": "a@example.com", "first_name": "Ann"}])
    config["null_values"] = "clear"

    people_run(config, [{"email": "a@example.com", "first_name": None}])

    assert "str::first" not in sandbox.store.find_person("a@example.com").fields


def test_async_merges_are_accepted_as_queued(sandbox, config, caplog):
    config["async_merge"] = True
    people_run(config, [{"email": "a@example.com", "first_name": "Ann"}])

    with caplog.at_level("INFO"):
        result = people_run(config, [{"email": "a@example.com", "first_name": "Anne"}])

    assert result.error is None
    assert sandbox.requests[-1].body["async"] is True
    assert any("accepted 1" in r.getMessage() for r in caplog.records)


def test_creating_people_is_answered_even_with_async_merge(sandbox, config):
    config["async_merge"] = True

    people_run(config, [{"email": "a@example.com", "first_name": "Ann"}])

    merges = [r.body for r in sandbox.requests if r.path == "/v1/person/merge"]
    assert [(b["merge_strategy"], b["async"]) for b in merges] == [(1, False)]


def test_accounts_merge_by_website_with_two_keys_and_find_strategy(sandbox, config):
    config["streams"] = {
        "companies": {"merge_by": ["website", "name"], "find_strategy": "next_if_empty"}
    }
    schema = {"name": {"type": "string"}, "website": {"type": ["string", "null"]}}

    run_target(
        config,
        [
            schema_message("companies", schema),
            *record_messages("companies", [{"name": "Acme", "website": "https://acme.test"}]),
        ],
    )

    merge = [r for r in sandbox.requests if r.path == "/v1/accounts/merge"][-1]
    assert merge.body["merge_by"] == ["str:o:website", "str:o:name"]
    assert merge.body["find_strategy"] == 1
    assert sandbox.store.find_account("Acme").fields["str:o:website"] == "https://acme.test"


def test_consent_columns_only_set_permissions_when_mapped_explicitly(sandbox, config):
    schema = {**PERSON, "email_permission": {"type": "boolean"}, "opted_in": {"type": "boolean"}}
    config["streams"] = {"people": {"field_map": {"opted_in": "bol::p"}}}

    run_target(
        config,
        [
            schema_message("people", schema),
            *record_messages(
                "people", [{"email": "a@example.com", "email_permission": True, "opted_in": False}]
            ),
        ],
    )

    fields = sandbox.store.find_person("a@example.com").fields
    assert fields["bol::p"] is False
    assert fields["bol:cm:email-permission"] is True
    assert "bol::sp" not in fields


def test_after_a_schema_change_later_records_still_win(sandbox, config):
    config.update(batch_size=1, max_concurrency=1)  # the new sink fills (and drains) first
    wider = {**PERSON, "last_name": {"type": ["string", "null"]}}

    run_target(
        config,
        [
            schema_message("people", PERSON),
            *record_messages("people", [{"email": "a@example.com", "first_name": "Old"}]),
            schema_message("people", wider),
            *record_messages(
                "people",
                [
                    {"email": "a@example.com", "first_name": "New"},
                    {"email": "c@example.com", "first_name": "C"},
                ],
            ),
        ],
    )

    assert sandbox.store.find_person("a@example.com").fields["str::first"] == "New"


def test_an_audience_drain_first_sends_people_buffered_before_it(sandbox, config):
    audience = sandbox.store.add_audience("Newsletter")
    config.update(batch_size=1, max_concurrency=1)
    config["streams"] = {"audience_members": {"audience": "Newsletter"}}
    members = {"email": {"type": "string"}}

    result = run_target(
        config,
        [
            schema_message("people", PERSON),
            schema_message("audience_members", members),
            *record_messages("people", [{"email": "p1@example.com"}]),
            *record_messages("audience_members", [{"email": "p1@example.com"}] * 3),
        ],
    )

    assert result.error is None
    assert len(sandbox.store.subscriptions(audience)) == 1


def test_the_same_person_under_another_merge_key_is_never_raced_across_drains(sandbox, config):
    sandbox.set_faults(latency=0.2)
    config.update(batch_size=1, max_concurrency=2)  # drains of 4 records, sent while reading
    config["streams"] = {"people": {"merge_by": ["email", "external_id"]}}
    schema = {**PERSON, "email": {"type": ["string", "null"]}, "external_id": {"type": "string"}}
    records = [
        {"email": "a@example.com", "external_id": "X", "first_name": "Old"},
        *[{"email": f"f{i}@example.com", "external_id": f"F{i}"} for i in range(3)],
        {"email": None, "external_id": "X", "first_name": "New"},
    ]

    run_target(config, [schema_message("people", schema), *record_messages("people", records)])

    assert sandbox.store.find_person("a@example.com").fields["str::first"] == "New"


def test_batch_messages_are_refused_with_a_clear_error(sandbox, config, tmp_path):
    batch = {
        "type": "BATCH",
        "stream": "people",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": [str(tmp_path / "part.jsonl")],
    }
    (tmp_path / "part.jsonl").write_text('{"email": "a@example.com"}\n')

    result = run_target(config, [schema_message("people", PERSON), batch])

    assert "BATCH" in str(result.error)
    assert not sandbox.store.people


@pytest.mark.parametrize(
    ("answer", "counted", "resent"),
    [
        ("null-list", "unconfirmed", 3),
        ("no-list", "unconfirmed", 3),
        ("fewer-results", "unconfirmed", 3),
        ("unknown-status", "pending", 3),
        ("status-only", "created", 0),
    ],
)
def test_an_unrecorded_answer_shape_never_aborts_a_run_and_what_it_left_unsure_is_resent(
    sandbox, config, caplog, answer, counted, resent
):
    records = [{"email": f"p{i}@example.com", "first_name": "P"} for i in range(3)]
    messages = [
        schema_message("people", PERSON),
        *record_messages("people", records),
        state_message({"done": True}),
    ]

    result = run_target(
        config, messages, after_first_schema=lambda: sandbox.set_faults(merge_answer=answer)
    )
    sandbox.set_faults(merge_answer="documented")
    mark = len(sandbox.requests)
    rerun = run_target(config, messages)

    assert result.error is None and result.states == [{"done": True}]
    assert result.target.run.report.counts["people"][counted] == 3
    assert len(sandbox.store.people) == 3
    assert (f"answered '{counted}'" in caplog.text) == (counted != "created")
    assert rerun.error is None
    rerun_merges = [r.body for r in sandbox.requests[mark:] if r.path == "/v1/person/merge"]
    resent_emails = {p["fields"]["str::email"] for b in rerun_merges for p in b["people"]}
    assert len(resent_emails) == resent


def test_requests_stay_under_ortto_2mb_payload_limit(sandbox, config):
    notes = {f"note_{n}": {"type": ["string", "null"], "maxLength": 4000} for n in range(6)}
    text = "ü" * 4000  # 4000 characters: the most Ortto's large text takes, 8000 bytes
    records = [{"email": f"p{i}@example.com", **dict.fromkeys(notes, text)} for i in range(100)]

    result = run_target(
        config, [schema_message("people", {**PERSON, **notes}), *record_messages("people", records)]
    )

    merges = [r for r in sandbox.requests if r.path == "/v1/person/merge"]
    assert result.error is None
    assert len(merges) > 1 and all(r.status == 200 for r in merges)
    assert sum(r.records for r in merges) == 100 and len(sandbox.store.people) == 100

"""Audience streams: each record sets one person's subscription to one audience."""

from __future__ import annotations

import pytest
from conftest import record_messages, run_target, schema_message, state_message

from target_ortto.errors import InvalidRecordError, StreamError
from target_ortto.items import Invalid, Subscription
from target_ortto.subscriptions import SubscriptionPlan

PEOPLE = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}
MEMBERS = {"email": {"type": "string"}, "subscribed": {"type": ["boolean", "null"]}}


def people_and_members(rows: list[dict], stream: str = "audience_members") -> list[dict]:
    people = [{"email": r["email"], "first_name": "X"} for r in rows]
    return [
        schema_message("people", PEOPLE),
        *record_messages("people", people),
        schema_message(stream, MEMBERS),
        *record_messages(stream, rows),
        state_message({"done": True}),
    ]


def subscriptions_by_email(sandbox, audience_id: str) -> dict[str, bool]:
    emails = {pid: p.fields["str::email"] for pid, p in sandbox.store.people.items()}
    return {
        emails[pid]: s.subscribed for pid, s in sandbox.store.subscriptions(audience_id).items()
    }


def test_forty_rows_set_exactly_forty_states_on_the_named_audience_only(sandbox, config):
    newsletter = sandbox.store.add_audience("Newsletter")
    others = [sandbox.store.add_audience(n) for n in ("Welcome", "Newsletter VIP")]
    rows = [{"email": f"m{i}@example.com", "subscribed": i % 4 != 0} for i in range(40)]
    config["streams"] = {"audience_members": {"audience": "Newsletter"}}

    result = run_target(config, people_and_members(rows))

    assert result.error is None
    assert subscriptions_by_email(sandbox, newsletter) == {
        r["email"]: r["subscribed"] for r in rows
    }
    assert all(sandbox.store.subscriptions(a) == {} for a in others)
    assert result.states == [{"done": True}]


def test_unknown_audience_name_stops_before_any_write(sandbox, config):
    sandbox.store.add_audience("Newsletter")
    config["streams"] = {"audience_members": {"audience": "Newsleter"}}
    messages = [
        schema_message("audience_members", MEMBERS),
        *record_messages("audience_members", [{"email": "a@example.com"}]),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, StreamError)
    assert "'Newsleter'" in str(result.error)
    assert [r.path for r in sandbox.requests] == ["/v1/audiences/get"]


def test_audience_names_are_exact_and_case_sensitive(sandbox, config):
    sandbox.store.add_audience("newsletter")
    config["streams"] = {"audience_members": {"audience": "Newsletter"}}

    result = run_target(config, [schema_message("audience_members", MEMBERS)])

    assert "no audience named exactly 'Newsletter'" in str(result.error)


def test_ambiguous_audience_name_is_an_error(sandbox, config):
    sandbox.store.add_audience("Newsletter")
    sandbox.store.add_audience("Newsletter")
    config["streams"] = {"audience_members": {"audience": "Newsletter"}}

    result = run_target(config, [schema_message("audience_members", MEMBERS)])

    assert "2 audiences named exactly 'Newsletter'" in str(result.error)


def test_a_name_is_found_past_the_first_page_of_search_results(sandbox, config):
    for i in range(45):
        sandbox.store.add_audience(f"Newsletter {i:02d}")
    wanted = sandbox.store.add_audience("Newsletter")
    config["streams"] = {"newsletter": {"object": "audience", "audience": "Newsletter"}}
    rows = [{"email": "late@example.com", "subscribed": True}]

    result = run_target(config, people_and_members(rows, stream="newsletter"))

    assert result.error is None
    assert subscriptions_by_email(sandbox, wanted) == {"late@example.com": True}
    assert len([r for r in sandbox.requests if r.path == "/v1/audiences/get"]) == 2


def test_audience_by_id_and_per_row_audience_columns(sandbox, config):
    first = sandbox.store.add_audience("First")
    second = sandbox.store.add_audience("Second")
    schema = {
        **MEMBERS,
        "audience_id": {"type": ["string", "null"]},
        "audience_name": {"type": ["string", "null"]},
    }
    rows = [
        {"email": "a@example.com", "audience_id": first, "subscribed": True},
        {"email": "b@example.com", "audience_name": "Second", "subscribed": False},
    ]
    messages = [
        schema_message("people", PEOPLE),
        *record_messages("people", [{"email": r["email"]} for r in rows]),
        schema_message("audiences", schema),
        *record_messages("audiences", rows),
    ]

    result = run_target(config, messages)

    assert result.error is None
    assert subscriptions_by_email(sandbox, first) == {"a@example.com": True}
    assert subscriptions_by_email(sandbox, second) == {"b@example.com": False}


def test_people_ortto_cannot_find_are_invalid_with_orttos_status(sandbox, config):
    sandbox.store.add_audience("Newsletter")
    config["streams"] = {"audience_members": {"audience": "Newsletter"}}
    messages = [
        schema_message("audience_members", MEMBERS),
        *record_messages("audience_members", [{"email": "ghost@example.com", "subscribed": True}]),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, InvalidRecordError)
    assert "ghost@example.com" in str(result.error) and "not-found" in str(result.error)


def test_requests_carry_at_most_100_people_of_one_audience(sandbox, config):
    audience = sandbox.store.add_audience("Big")
    config["streams"] = {"audience_members": {"audience": audience}}
    rows = [{"email": f"m{i}@example.com", "subscribed": True} for i in range(250)]

    run_target(config, people_and_members(rows))

    sizes = sorted(r.records for r in sandbox.requests if r.path == "/v1/audience/subscribe")
    assert sizes == [50, 100, 100]
    assert len(sandbox.store.subscriptions(audience)) == 250


def test_deleted_rows_unsubscribe(sandbox, config):
    audience = sandbox.store.add_audience("Newsletter")
    config["streams"] = {"audience_members": {"audience": audience}}
    schema = {**MEMBERS, "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
    rows = [
        {"email": "stay@example.com", "subscribed": True},
        {"email": "gone@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"},
    ]
    messages = [
        schema_message("people", PEOPLE),
        *record_messages("people", [{"email": r["email"]} for r in rows]),
        schema_message("audience_members", schema),
        *record_messages("audience_members", rows),
    ]

    run_target(config, messages)

    assert subscriptions_by_email(sandbox, audience) == {
        "stay@example.com": True,
        "gone@example.com": False,
    }


def plan(audience: str | None = "Newsletter", **extra) -> SubscriptionPlan:
    properties = {"email": {"type": "string"}, **extra}
    return SubscriptionPlan.build("members", {"properties": properties}, audience)


def test_plan_without_a_subscribed_column_subscribes_and_reads_the_sms_flag():
    item = plan().apply({"email": "A@Example.com"})
    with_sms = plan(subscribed={"type": "boolean"}, sms_opted_in={"type": "boolean"})
    both = with_sms.apply({"email": "a@b.co", "subscribed": False, "sms_opted_in": True})

    assert item == Subscription(("name", "Newsletter"), "email", "A@Example.com", True)
    assert item.body() == {"email": "A@Example.com", "subscribed": True}
    assert item.key == (("name", "Newsletter"), "email", "a@example.com")
    assert both.body() == {"email": "a@b.co", "subscribed": False, "sms_opted_in": True}


@pytest.mark.parametrize("record", [{"email": "a@b.co"}, {"email": "a@b.co", "subscribed": None}])
def test_a_stream_with_a_subscribed_column_refuses_rows_that_do_not_state_it(record):
    item = plan(subscribed={"type": ["boolean", "null"]}).apply(record)

    assert isinstance(item, Invalid)
    assert "must say true or false" in item.reason


def test_a_deleted_row_unsubscribes_whatever_its_subscribed_column_says():
    built = plan(subscribed={"type": ["boolean", "null"]})
    deleted = "2026-11-01T00:00:00Z"

    for row in ({"subscribed": True}, {"subscribed": None}, {}):
        item = built.apply({"email": "a@b.co", "_sdc_deleted_at": deleted, **row})
        assert item.subscribed is False


def test_an_sms_only_stream_is_refused_because_it_could_subscribe_people_to_email():
    with pytest.raises(StreamError, match="bol::sp"):
        plan(sms_opted_in={"type": "boolean"})


@pytest.mark.parametrize(
    "column", ["unsubscribed", "opted_out", "is_subscribed", "email_consent", "optIn", "gdpr"]
)
def test_a_column_that_looks_like_consent_is_refused_at_schema_showing_the_fix(column):
    with pytest.raises(StreamError) as refused:
        plan(**{column: {"type": "boolean"}})

    assert column in str(refused.value) and "field_map" in str(refused.value)
    assert "stream map" in str(refused.value)


def test_a_consent_column_mapped_to_subscribed_is_read_and_one_mapped_to_null_ignored():
    properties = {"email": {}, "is_subscribed": {}, "opted_out": {}}
    field_map = {"is_subscribed": "subscribed", "opted_out": None}
    built = SubscriptionPlan.build("members", {"properties": properties}, "A", field_map)

    item = built.apply({"email": "a@b.co", "is_subscribed": False, "opted_out": True})

    assert item.subscribed is False


@pytest.mark.parametrize(
    "field_map", [{"missing": "subscribed"}, {"email": "str::first"}, {"email": "bol::p"}]
)
def test_a_field_map_entry_that_does_not_fit_an_audience_stream_is_refused(field_map):
    with pytest.raises(StreamError, match="does not fit an audience stream"):
        SubscriptionPlan.build("members", {"properties": {"email": {}}}, "A", field_map)


def test_ordinary_columns_are_ignored_and_listed():
    built = plan(id={"type": "integer"}, updated_at={"type": "string"})

    assert built.ignored_columns == ("id", "updated_at")
    assert built.apply({"email": "a@b.co", "id": 1}).body() == {
        "email": "a@b.co",
        "subscribed": True,
    }


def test_plan_takes_ortto_person_id_or_external_id_when_there_is_no_email():
    built = SubscriptionPlan.build(
        "members",
        {"properties": {"ortto_person_id": {}, "externalId": {}}},
        "6904f4fbf0cc08364094a968",
    )

    by_id = built.apply({"ortto_person_id": "006913c5b70abf827f703c00", "externalId": "x1"})
    by_external = built.apply({"externalId": "x1"})

    assert by_id.audience == ("id", "6904f4fbf0cc08364094a968")
    assert (by_id.identity, by_external.identity) == ("person_id", "external_id")


def test_a_warehouse_person_id_column_does_not_identify_an_ortto_person():
    with pytest.raises(StreamError, match="no email, ortto_person_id or external_id"):
        SubscriptionPlan.build("members", {"properties": {"person_id": {}}}, "A")


def test_an_ortto_person_id_that_is_not_24_hex_characters_is_invalid():
    built = SubscriptionPlan.build("members", {"properties": {"ortto_person_id": {}}}, "A")

    item = built.apply({"ortto_person_id": "00abc"})

    assert isinstance(item, Invalid) and "24 hex" in item.reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"email": "nope"}, "not a valid email"),
        ({"email": None}, "no value in email"),
        ({"email": "a@b.co", "subscribed": "maybe"}, "not true or false"),
        ({"email": "a@b.co", "subscribed": None}, "must say true or false"),
    ],
)
def test_plan_refuses_records_it_cannot_subscribe(record, reason):
    item = plan(subscribed={"type": "string"}).apply(record)

    assert isinstance(item, Invalid)
    assert reason in item.reason


def test_plan_needs_an_identity_column_and_an_audience():
    with pytest.raises(StreamError, match="no email, ortto_person_id or external_id"):
        SubscriptionPlan.build("members", {"properties": {"name": {}}}, "A")
    with pytest.raises(StreamError, match="which audience"):
        SubscriptionPlan.build("members", {"properties": {"email": {}}}, None)

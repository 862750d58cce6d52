"""Ortto's answers, as recorded from the real API, become the right per-record outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_ortto import api
from target_ortto.client import OrttoClient
from target_ortto.errors import ApiError
from target_ortto.objects import ACCOUNT, PERSON

RECORDED = Path(__file__).resolve().parent / "recorded"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / f"{name}.json").read_text())["body"]


def test_created_and_merged_people_are_written_with_their_ids():
    created = api.merge_outcomes(recorded("person-merge/created"), PERSON, 1)
    merged = api.merge_outcomes(recorded("person-merge/merged"), PERSON, 1)

    assert created == [api.Outcome("created", "006913c5b70abf827f703c00")]
    assert merged == [api.Outcome("merged", "006913c5b9ca58778a137d00")]
    assert created[0].acknowledged and merged[0].acknowledged


def test_a_bulk_answer_gives_one_outcome_per_person_in_order():
    outcomes = api.merge_outcomes(recorded("person-merge/bulk-54"), PERSON, 54)

    assert len(outcomes) == 54 and all(o.status == "created" for o in outcomes)
    assert outcomes[0].ortto_id == "006913c76c0abf827f714400"


@pytest.mark.parametrize(
    "answer",
    [
        recorded("person-merge/created"),  # fewer results than records
        {"people": None},
        {},
        None,
        {"people": [{"status": "created"}, {"status": "created"}, {"status": "created"}]},
    ],
)
def test_an_answer_that_does_not_itemise_every_record_leaves_them_unconfirmed_not_guessed(
    answer,
):
    outcomes = api.merge_outcomes(answer, PERSON, 2)

    assert outcomes == [api.Outcome("unconfirmed")] * 2
    assert all(o.acknowledged and o.status not in api.APPLIED for o in outcomes)


@pytest.mark.parametrize("answer", [{"people": None}, {"people": [{"status": "subscribed"}]}])
def test_a_subscribe_answer_that_does_not_itemise_every_person_leaves_them_unconfirmed(answer):
    assert api.subscribe_outcomes(answer, 2) == [api.Outcome("unconfirmed")] * 2


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("person-merge/invalid-field-400", "invalid", "Object not found"),
        ("person-merge/suppressed-400", "suppressed", "Email is suppressed"),
    ],
)
def test_400_details_become_invalid_records_with_orttos_reason(name, status, reason):
    (detail,) = recorded(name)["details"]

    outcome = api.outcome(detail, PERSON)

    assert outcome.status == status and reason in outcome.error
    assert not outcome.acknowledged


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"status": "queued"}, api.Outcome("queued")),
        ({"status": "ignored", "person_id": "00a"}, api.Outcome("ignored", "00a")),
        ({"status": "invalid", "error": "bad"}, api.Outcome("invalid", None, "bad")),
        ({"status": "weird"}, api.Outcome("weird")),
        ({"status": "suppressed"}, api.Outcome("suppressed", None, "Ortto status 'suppressed'")),
        ({"status": "pending", "error": "x"}, api.Outcome("pending", None, "x")),
        ({}, api.Outcome("unconfirmed")),
        ("created", api.Outcome("unconfirmed")),
    ],
)
def test_unrecorded_statuses_are_read_tolerantly(entry, expected):
    assert api.outcome(entry, PERSON) == expected


def test_account_answers_are_read_under_accounts_or_the_legacy_organizations_key():
    current = {"accounts": [{"account_id": "10a", "status": "created"}]}
    legacy = {"organizations": [{"organization_id": "10b", "status": "merged"}]}

    assert api.merge_outcomes(current, ACCOUNT, 1) == [api.Outcome("created", "10a")]
    assert api.merge_outcomes(legacy, ACCOUNT, 1) == [api.Outcome("merged", "10b")]


def test_custom_fields_are_read_from_both_recorded_shapes():
    people = api.parse_custom_fields(recorded("person-custom-field/get"))
    accounts = api.parse_custom_fields(recorded("accounts-custom-field/get"))

    assert people["str:cm:job-title"] == "text"
    assert people["str:cm:test-select-1762383075"] == "single_select"
    assert accounts["str:oc:test-account-field"] == "text"
    assert len(accounts) == 7


def test_audiences_are_matched_by_exact_name():
    page = recorded("audiences-get/all")

    assert [a["id"] for a in api.named(page, "Subscribers")] == ["6904f4faf0cc08364094a964"]
    assert api.named(page, "subscribers") == []
    assert recorded("audiences-get/retention-null") is None


def test_subscribe_answers_by_email_and_by_id():
    by_email = api.subscribe_outcomes(recorded("audience-subscribe/by-email"), 1)
    by_id = api.subscribe_outcomes(recorded("audience-subscribe/by-person-id"), 2)

    assert by_email == [api.Outcome("subscribed", "0069091a7c13f062f778ad00")]
    assert [o.status for o in by_id] == ["subscribed", "unsubscribed"]
    assert all(o.acknowledged for o in by_email + by_id)


def test_people_ortto_cannot_find_are_not_acknowledged():
    answer = {"people": [{"person_status": "not-found", "status": "not-found"}]}

    (outcome,) = api.subscribe_outcomes(answer, 1)

    assert not outcome.acknowledged and "not-found" in outcome.error


def test_ids_are_read_from_get_answers_including_null_contacts():
    assert api.first_id(recorded("person-get/basic"), PERSON) == "00690646665c94874b98c100"
    assert api.first_id(recorded("accounts-get/basic"), ACCOUNT) == "106905f9252dad244f055800"
    assert api.first_id(recorded("person-get/offset"), PERSON) is None


def client_answering(status: int, body: Any) -> OrttoClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return OrttoClient("https://api.ap3api.com", "k", transport=transport, max_retries=0)


@pytest.mark.parametrize(
    ("status", "error"),
    [(423, "Locked"), (409, "Conflict"), (400, "Custom field already exists: Score")],
)
def test_creating_a_custom_field_that_exists_is_not_an_error(status, error):
    client = client_answering(status, {"code": status, "error": error})

    assert api.create_custom_field(client, PERSON, "Score", "decimal") is None


def test_other_refusals_of_a_custom_field_create_are_errors():
    client = client_answering(400, {"code": 400, "error": "custom field limit reached"})

    with pytest.raises(ApiError, match="limit reached"):
        api.create_custom_field(client, PERSON, "Score", "decimal")

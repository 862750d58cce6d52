"""The Ortto sandbox behaves like Ortto: the documented rules and the recorded response shapes.

Every test talks HTTP to a real sandbox on a free port; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_ortto.sandbox import Faults, Sandbox
from target_ortto.sandbox.__main__ import main

KEY = "test-key"
REPO = Path(__file__).resolve().parents[1]
RECORDED = Path(__file__).resolve().parent / "recorded"


def recorded(name: str) -> Any:
    """The body of a real Ortto response (tests/recorded, copied from shared/reference)."""
    return json.loads((RECORDED / f"{name}.json").read_text())["body"]


def same_keys(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(actual) == set(expected)


def client(url: str, key: str | None = KEY) -> httpx.Client:
    """A plain-HTTP client; verify=False skips loading CA certificates (~60 ms a client)."""
    headers = {} if key is None else {"X-Api-Key": key}
    return httpx.Client(base_url=url, headers=headers, timeout=5, verify=False)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(KEY, faults=Faults(ban_seconds=0.3)) as running:
        yield running


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with client(sandbox.url) as api_client:
        yield api_client


def person(email: str | None, extra: dict[str, Any] | None = None, **item: Any) -> dict[str, Any]:
    fields = {} if email is None else {"str::email": email}
    return {"fields": {**fields, **(extra or {})}, **item}


def merge(api: httpx.Client, *people: dict[str, Any], **options: Any) -> httpx.Response:
    return api.post("/v1/person/merge", json={"people": list(people), **options})


def statuses(response: httpx.Response, key: str = "people") -> list[str]:
    return [entry["status"] for entry in response.json()[key]]


# ----- person merge -----


def test_a_payload_over_2mb_is_refused_whole(api: httpx.Client, sandbox: Sandbox) -> None:
    big = person("a@example.com", {"str::first": "x" * 2_000_000})

    response = merge(api, big)

    assert response.status_code == 413
    assert not sandbox.store.people


@pytest.mark.parametrize(
    "fields",
    [{"int:cm:n": 2**63}, {"str::person_id": "p-1"}],
)
def test_int64_and_ortto_id_limits_make_a_record_invalid(
    api: httpx.Client, sandbox: Sandbox, fields: dict[str, Any]
) -> None:
    sandbox.store.add_custom_field("person", "int:cm:n", "N", "integer")

    response = merge(api, person("a@example.com", fields))

    assert response.status_code == 400
    assert response.json()["details"][0]["status"] == "invalid"


def test_a_scheduled_archive_answers_scheduled_and_happens_later(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    person_id = merge(api, person("a@example.com")).json()["people"][0]["person_id"]
    sandbox.store.schedule_archives = True

    answer = api.put("/v1/person/archive", json={"inclusion_ids": [person_id]}).json()

    assert answer == {"scheduled_contacts": 1, "archived_contacts": 0}
    assert not sandbox.store.people[person_id].archived
    sandbox.store.archive_scheduled()
    assert sandbox.store.people[person_id].archived


def test_emails_match_regardless_of_letter_case(api: httpx.Client, sandbox: Sandbox) -> None:
    assert statuses(merge(api, person("Ann.Lee@Example.com"))) == ["created"]
    assert statuses(merge(api, person("ann.lee@example.COM", {"str::first": "Ann"}))) == ["merged"]
    assert len(sandbox.store.people) == 1


def test_merge_creates_then_merges_with_the_recorded_shapes(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    created = merge(api, person("ann@example.com", {"str::first": "Ann"}))
    assert created.status_code == 200
    entry = created.json()["people"][0]
    same_keys(created.json(), recorded("person-merge/created"))
    same_keys(entry, recorded("person-merge/created")["people"][0])
    assert entry["status"] == "created"
    assert len(entry["person_id"]) == 24 and entry["person_id"].startswith("00")
    int(entry["person_id"], 16)

    merged = merge(api, person("ann@example.com", {"str::last": "Lee"}))
    assert merged.json() == {"people": [{"person_id": entry["person_id"], "status": "merged"}]}
    stored = sandbox.store.find_person("ann@example.com")
    assert stored is not None
    assert stored.fields == {
        "str::email": "ann@example.com",
        "str::first": "Ann",
        "str::last": "Lee",
        "bol::p": True,  # Ortto's default for a person created without a permission
    }


def test_overwrite_replaces_sent_fields_clears_nulls_and_keeps_unsent(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    merge(
        api, person("a@example.com", {"str::first": "Ann", "str::last": "Lee", "str::postal": "1"})
    )
    merge(api, person("a@example.com", {"str::first": "Anne", "str::last": None}), merge_strategy=2)
    stored = sandbox.store.find_person("a@example.com")
    assert stored is not None
    assert stored.fields == {
        "str::email": "a@example.com",
        "str::first": "Anne",
        "str::postal": "1",
        "bol::p": True,
    }


def test_append_only_fills_empty_fields_and_ignores_nulls(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    merge(api, person("a@example.com", {"str::first": "Ann"}))
    response = merge(
        api,
        person("a@example.com", {"str::first": "Other", "str::last": "Lee", "str::postal": None}),
        merge_strategy=1,
    )
    assert statuses(response) == ["merged"]
    stored = sandbox.store.find_person("a@example.com")
    assert stored is not None
    assert stored.fields == {
        "str::email": "a@example.com",
        "str::first": "Ann",
        "str::last": "Lee",
        "bol::p": True,
    }


def test_ignore_leaves_existing_untouched_but_creates_new(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    old_id = merge(api, person("old@example.com", {"str::first": "Old"})).json()["people"][0]
    response = merge(
        api,
        person("old@example.com", {"str::first": "Changed"}, tags=["t"]),
        person("new@example.com", {"str::first": "New"}),
        merge_strategy=3,
    )
    assert response.json()["people"][0] == {"person_id": old_id["person_id"], "status": "ignored"}
    assert statuses(response) == ["ignored", "created"]
    old = sandbox.store.find_person("old@example.com")
    assert old is not None and old.fields["str::first"] == "Old" and old.tags == set()


def test_skip_non_existing_only_updates(api: httpx.Client, sandbox: Sandbox) -> None:
    merge(api, person("known@example.com"))
    response = merge(
        api,
        person("known@example.com", {"str::first": "K"}),
        person("stranger@example.com"),
        skip_non_existing=True,
    )
    assert response.json()["people"][1] == {"status": "ignored"}
    assert statuses(response) == ["merged", "ignored"]
    assert sandbox.store.find_person("stranger@example.com") is None
    assert len(sandbox.store.people) == 1


TWO_KEYS = ["str::email", "str::ei"]


def test_find_any_tries_each_key_in_order(api: httpx.Client, sandbox: Sandbox) -> None:
    first = merge(api, person("a@example.com", {"str::ei": "A"})).json()["people"][0]
    response = merge(api, person("new@example.com", {"str::ei": "A"}), merge_by=TWO_KEYS)
    assert response.json()["people"][0] == {"person_id": first["person_id"], "status": "merged"}
    assert sandbox.store.find_person("new@example.com") is not None
    assert len(sandbox.store.people) == 1


def test_find_next_if_empty_uses_the_second_key_only_without_a_first(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    merge(api, person("a@example.com", {"str::ei": "A"}))
    unmatched = merge(
        api, person("b@example.com", {"str::ei": "A"}), merge_by=TWO_KEYS, find_strategy=1
    )
    assert statuses(unmatched) == ["created"]
    by_second = merge(api, person(None, {"str::ei": "A"}), merge_by=TWO_KEYS, find_strategy=1)
    assert statuses(by_second) == ["merged"]
    assert len(sandbox.store.people) == 2


def test_find_all_needs_every_key_on_the_same_person(api: httpx.Client, sandbox: Sandbox) -> None:
    merge(api, person("a@example.com", {"str::ei": "A"}))
    both = merge(api, person("a@example.com", {"str::ei": "A"}), merge_by=TWO_KEYS, find_strategy=2)
    assert statuses(both) == ["merged"]
    mixed = merge(
        api, person("a@example.com", {"str::ei": "B"}), merge_by=TWO_KEYS, find_strategy=2
    )
    assert statuses(mixed) == ["created"]


def test_tags_unset_tags_and_location(api: httpx.Client, sandbox: Sandbox) -> None:
    merge(api, person("a@example.com", tags=["one", "two"], location={"source_ip": "1.2.3.4"}))
    merge(api, person("a@example.com", tags=["three"], unset_tags=["one", "never-set"]))
    stored = sandbox.store.find_person("a@example.com")
    assert stored is not None
    assert stored.tags == {"two", "three"}
    assert stored.location == {"source_ip": "1.2.3.4"}


def test_an_invalid_record_in_a_mixed_batch_is_reported_and_the_rest_applied(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    response = merge(api, person("ok@example.com"), person("bad@example.com", {"str:cm:nope": 1}))
    assert response.status_code == 200
    ok, bad = response.json()["people"]
    assert ok["status"] == "created"
    assert bad == {
        "status": "invalid",
        "error": "failed to validate field str:cm:nope in schema: str:cm:nope: Object not found",
    }
    assert sandbox.store.find_person("bad@example.com") is None


def test_a_batch_with_no_valid_record_is_a_400_like_the_recording(api: httpx.Client) -> None:
    response = merge(api, person("a@example.com", {"str::invalid_field_that_does_not_exist": "x"}))
    expected = recorded("person-merge/invalid-field-400")
    assert response.status_code == 400
    body = response.json()
    same_keys(body, expected)
    same_keys(body["details"][0], expected["details"][0])
    assert body["error"] == expected["error"]
    assert body["details"] == expected["details"]


@pytest.mark.parametrize(
    ("field_id", "value"),
    [
        ("str::first", "x" * 256),
        ("str::first", 5),
        ("str::email", "not-an-email"),
        ("bol::gdpr", "yes"),
        ("dtz::b", {"year": 2024, "month": 2, "day": 30, "timezone": "UTC"}),
        ("dtz::b", "2024-01-01"),
        ("phn::phone", "+61401234567"),
        ("phn::phone", {"c": "+61", "n": "401234567"}),
        ("geo::city", "Melbourne"),
    ],
)
def test_values_must_match_the_field_type(api: httpx.Client, field_id: str, value: Any) -> None:
    response = merge(api, person("ok@example.com"), person("a@example.com", {field_id: value}))
    invalid = response.json()["people"][1]
    assert invalid["status"] == "invalid"
    assert field_id in invalid["error"]


def test_typed_values_and_custom_fields_are_accepted(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.store.add_custom_field("person", "int:cm:score", "Score", "integer")
    sandbox.store.add_custom_field("person", "sst:cm:hobbies", "Hobbies", "multi_select")
    sandbox.store.add_custom_field("person", "tme:cm:seen", "Seen", "time")
    sandbox.store.add_custom_field("person", "txt:cm:bio", "Bio", "large_text")
    fields = {
        "int:cm:score": 12346,
        "sst:cm:hobbies": ["chess"],
        "tme:cm:seen": "2024-05-01T13:45:00Z",
        "txt:cm:bio": "b" * 4000,
        "dtz::b": {"year": 1980, "month": 3, "day": 4, "timezone": "Australia/Sydney"},
        "phn::phone": {"c": "61", "n": "401234567"},
        "geo::city": {"name": "Melbourne"},
        "bol::gdpr": False,
    }
    response = merge(api, person("a@example.com", fields))
    assert statuses(response) == ["created"]
    wrong_type = merge(api, person("b@example.com", {"int:cm:score": True}))
    assert wrong_type.status_code == 400
    other_prefix = merge(api, person("b@example.com", {"str:cm:score": "1"}))
    assert "Object not found" in other_prefix.json()["error"]


def test_a_person_needs_an_email_or_external_id(api: httpx.Client) -> None:
    response = merge(api, person("ok@example.com"), person(None, {"str::first": "Nobody"}))
    assert response.json()["people"][1]["status"] == "invalid"
    assert "str::email or str::ei" in response.json()["people"][1]["error"]
    assert statuses(merge(api, person(None, {"str::ei": "ext-1"}))) == ["created"]


def test_a_suppressed_email_refuses_a_new_person_but_merges_an_existing_one(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    def merge_checking(*people: dict[str, Any]) -> httpx.Response:
        return merge(api, *people, suppression_list_field_id="str::email")

    merge(api, person("existing@example.com"))
    sandbox.store.suppress("existing@example.com")
    sandbox.store.suppress("new@example.com")
    refused = merge_checking(person("new@example.com"))
    expected = recorded("person-merge/suppressed-400")
    assert refused.status_code == 400
    same_keys(refused.json(), expected)
    assert refused.json()["error"] == expected["error"]
    assert refused.json()["details"] == expected["details"]
    existing = merge_checking(person("existing@example.com"))
    assert statuses(existing) == ["merged"]
    same_keys(
        existing.json()["people"][0], recorded("person-merge/suppressed-existing")["people"][0]
    )
    mixed = merge_checking(person("new@example.com"), person("ok@example.com"))
    assert mixed.json()["people"][0] == {"status": "suppressed", "error": "Email is suppressed"}
    # Without the parameter Ortto does not check the list (recorded).
    assert statuses(merge(api, person("new@example.com"))) == ["created"]


def test_a_new_person_is_subscribed_unless_the_merge_says_otherwise(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    merge(api, person("default@example.com"))
    merge(api, person("unsubscribed@example.com", {"bol::p": False}))
    merge(api, person("default@example.com", {"bol::p": False}), merge_strategy=1)
    merge(api, person("default@example.com", {"bol::p": False}), merge_strategy=3)

    assert sandbox.store.find_person("default@example.com").fields["bol::p"] is True
    assert sandbox.store.find_person("unsubscribed@example.com").fields["bol::p"] is False
    assert sandbox.store.snapshot()["subscribers"] == ["default@example.com"]
    merge(api, person("default@example.com", {"bol::p": False}), merge_strategy=2)
    assert sandbox.store.snapshot()["subscribers"] == []


def test_people_only_options_on_accounts_are_ignored_or_refused(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    account = {"fields": {"str:o:name": "Acme"}}
    body = {"accounts": [account], "merge_by": ["str:o:name"]}

    created = api.post("/v1/accounts/merge", json={**body, "skip_non_existing": True})
    all_keys = api.post("/v1/accounts/merge", json={**body, "find_strategy": 2})

    assert statuses(created, "accounts") == ["created"]  # skip_non_existing is not for accounts
    assert all_keys.status_code == 400


def test_async_merge_answers_queued_without_ids_and_still_applies(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    response = merge(
        api, person("a@example.com"), person("b@example.com", {"str:cm:x": 1}), **{"async": True}
    )
    assert response.status_code == 200
    queued, invalid = response.json()["people"]
    assert queued == {"status": "queued"}
    assert invalid["status"] == "invalid"
    assert sandbox.store.find_person("a@example.com") is not None


@pytest.mark.parametrize(
    "body",
    [
        {"people": []},
        {"people": [person(f"p{i}@example.com") for i in range(101)]},
        {
            "people": [person("a@example.com")],
            "merge_by": ["str::email", "str::ei", "str::first", "str::last"],
        },
        {"people": [person("a@example.com")], "merge_by": ["str:cm:unknown"]},
        {"people": [person("a@example.com")], "merge_by": ["str::person_id", "str::email"]},
        {"people": [person("a@example.com")], "merge_strategy": 4},
        {"people": [person("a@example.com")], "merge_strategy": True},
        {"people": [person("a@example.com")], "find_strategy": 3},
    ],
)
def test_malformed_merge_requests_are_refused_whole(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any]
) -> None:
    response = api.post("/v1/person/merge", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"request_id", "code", "error"}
    assert sandbox.store.people == {}


def test_merge_by_person_id_updates_that_person(api: httpx.Client, sandbox: Sandbox) -> None:
    person_id = merge(api, person("a@example.com")).json()["people"][0]["person_id"]
    by_id = {"str::person_id": person_id, "str::first": "Ann"}
    response = merge(
        api,
        person(None, by_id),
        person(None, {"str::person_id": "00" + "f" * 22}),
        merge_by=["str::person_id"],
    )
    assert response.json()["people"][0] == {"person_id": person_id, "status": "merged"}
    assert response.json()["people"][1]["status"] == "invalid"
    assert sandbox.store.people[person_id].fields["str::first"] == "Ann"


def test_an_archived_person_is_not_matched_so_a_resend_creates_a_new_one(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    old = merge(api, person("a@example.com")).json()["people"][0]["person_id"]
    api.put("/v1/person/archive", json={"inclusion_ids": [old]})
    new = merge(api, person("a@example.com")).json()["people"][0]
    assert new["status"] == "created" and new["person_id"] != old
    assert sandbox.store.people[old].archived


# ----- accounts -----


def test_account_merge_and_the_legacy_organizations_path(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    body = {
        "accounts": [{"fields": {"str:o:name": "Acme", "int:o:employees": 5}}],
        "merge_by": ["str:o:name"],
    }
    created = api.post("/v1/accounts/merge", json=body).json()
    entry = created["accounts"][0]
    assert set(entry) == {"account_id", "status"} and entry["status"] == "created"
    assert entry["account_id"].startswith("10") and len(entry["account_id"]) == 24

    legacy = {
        "organizations": [{"fields": {"str:o:name": "Acme", "str:o:industry": "SaaS"}}],
        "merge_by": ["str:o:name"],
    }
    merged = api.post("/v1/organizations/merge", json=legacy).json()
    assert merged == {
        "organizations": [{"organization_id": entry["account_id"], "status": "merged"}]
    }
    acme = sandbox.store.find_account("Acme")
    assert acme is not None
    assert acme.fields == {"str:o:name": "Acme", "int:o:employees": 5, "str:o:industry": "SaaS"}

    by_id = {
        "accounts": [{"fields": {"str:o:account_id": entry["account_id"], "str:o:postal": "3000"}}],
        "merge_by": ["str:o:account_id"],
    }
    assert api.post("/v1/accounts/merge", json=by_id).json()["accounts"][0]["status"] == "merged"


def test_accounts_need_merge_by_and_a_value_for_it(api: httpx.Client) -> None:
    no_merge_by = api.post(
        "/v1/accounts/merge", json={"accounts": [{"fields": {"str:o:name": "A"}}]}
    )
    assert no_merge_by.status_code == 400
    no_value = {"accounts": [{"fields": {"str:o:industry": "x"}}], "merge_by": ["str:o:name"]}
    response = api.post("/v1/accounts/merge", json=no_value)
    assert response.status_code == 400
    assert response.json()["details"][0]["status"] == "invalid"
    person_field = {
        "accounts": [{"fields": {"str:o:name": "A", "str::first": "x"}}],
        "merge_by": ["str:o:name"],
    }
    assert api.post("/v1/accounts/merge", json=person_field).status_code == 400


# ----- custom fields -----


def test_custom_field_get_is_wrapped_for_people_and_flat_for_accounts(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    api.post(
        "/v1/person/custom-field/create",
        json={"name": "Job Title", "type": "text", "track_changes": True},
    )
    api.post("/v1/accounts/custom-field/create", json={"name": "Tier", "type": "text"})
    people = api.post("/v1/person/custom-field/get", json={}).json()
    expected_person = recorded("person-custom-field/get")["fields"][1]
    same_keys(people, recorded("person-custom-field/get"))
    same_keys(people["fields"][0], expected_person)
    same_keys(people["fields"][0]["field"], expected_person["field"])
    assert people["fields"][0] == {
        "field": {
            "id": "str:cm:job-title",
            "name": "Job Title",
            "display_type": "text",
            "liquid_name": "people.custom.job-title",
        },
        "tracked_value": True,
    }
    accounts = api.post("/v1/accounts/custom-field/get", json={}).json()
    same_keys(accounts["fields"][0], recorded("accounts-custom-field/get")["fields"][0])
    assert accounts["fields"][0]["liquid_name"] == "account.custom.tier"


@pytest.mark.parametrize(
    ("field_type", "field_id"),
    [
        ("text", "str:cm:lifetime-value"),
        ("large_text", "txt:cm:lifetime-value"),
        ("integer", "int:cm:lifetime-value"),
        ("decimal", "int:cm:lifetime-value"),
        ("currency", "int:cm:lifetime-value"),
        ("date", "dtz:cm:lifetime-value"),
        ("time", "tme:cm:lifetime-value"),
        ("bool", "bol:cm:lifetime-value"),
        ("phone", "phn:cm:lifetime-value"),
        ("link", "str:cm:lifetime-value"),
        ("object", "obj:cm:lifetime-value"),
    ],
)
def test_custom_field_create_names_the_id_by_type(
    api: httpx.Client, field_type: str, field_id: str
) -> None:
    response = api.post(
        "/v1/person/custom-field/create", json={"name": "Lifetime Value", "type": field_type}
    )
    assert response.json() == {
        "name": "Lifetime Value",
        "field_id": field_id,
        "display_type": field_type,
    }
    same_keys(response.json(), recorded("person-custom-field/create"))


def test_custom_field_create_selects_and_refusals(api: httpx.Client, sandbox: Sandbox) -> None:
    select = {"name": "Plan", "type": "single_select", "values": ["A", "B"]}
    created = api.post("/v1/person/custom-field/create", json=select).json()
    same_keys(created, recorded("person-custom-field/create-select"))
    assert created["field_id"] == "str:cm:plan" and created["values"] == ["A", "B"]
    multi = {"name": "Hobbies", "type": "multi_select", "values": ["x"]}
    assert (
        api.post("/v1/person/custom-field/create", json=multi).json()["field_id"]
        == "sst:cm:hobbies"
    )
    account = api.post(
        "/v1/accounts/custom-field/create", json={"name": "Seats", "type": "integer"}
    )
    same_keys(account.json(), recorded("accounts-custom-field/create"))
    assert account.json()["field_id"] == "int:oc:seats"

    duplicate = {"name": "plan", "type": "text"}
    assert api.post("/v1/person/custom-field/create", json=duplicate).status_code == 423
    for refused in (
        {"name": "Colour", "type": "colour"},
        {"name": "Tags", "type": "multi_select"},
        {"name": "!!!", "type": "text"},
    ):
        assert api.post("/v1/person/custom-field/create", json=refused).status_code == 400
    assert [f.id for f in sandbox.store.custom_fields("person")] == [
        "str:cm:plan",
        "sst:cm:hobbies",
    ]


def test_custom_field_limits_are_configurable() -> None:
    with (
        Sandbox(KEY, person_field_limit=1, account_field_limit=1) as small,
        client(small.url) as small_api,
    ):
        for path in ("/v1/person/custom-field/create", "/v1/accounts/custom-field/create"):
            assert small_api.post(path, json={"name": "One", "type": "text"}).status_code == 200
            over = small_api.post(path, json={"name": "Two", "type": "text"})
            assert over.status_code == 400
            assert "limit" in over.json()["error"] and "1" in over.json()["error"]


# ----- audiences -----


def test_audiences_get_searches_pages_and_answers_null(api: httpx.Client, sandbox: Sandbox) -> None:
    names = ["My team", "Slipping subscribers", "Engaged subscribers", "SMS subscribers"]
    ids = [sandbox.store.add_audience(name) for name in names]
    everything = api.post("/v1/audiences/get", json={}).json()
    assert [a["name"] for a in everything] == names
    assert set(everything[0]) == set(recorded("audiences-get/all")[0])
    assert everything[0]["id"] == ids[0] and len(ids[0]) == 24
    found = api.post("/v1/audiences/get", json={"search_term": "SUBSCRIBERS"}).json()
    assert [a["name"] for a in found] == names[1:]
    page = api.post("/v1/audiences/get", json={"limit": 2, "offset": 1}).json()
    assert [a["name"] for a in page] == names[1:3]
    nothing = api.post("/v1/audiences/get", json={"search_term": "retention"})
    assert nothing.status_code == 200 and nothing.content == b"null"
    assert recorded("audiences-get/retention-null") is None


def test_subscribe_by_email_and_by_person_id_like_the_recordings(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    audience = sandbox.store.add_audience("Newsletter")
    ann = merge(api, person("ann@example.com")).json()["people"][0]["person_id"]
    bob = merge(api, person("bob@example.com")).json()["people"][0]["person_id"]
    body = {"audience_id": audience, "people": [{"email": "ann@example.com", "sms_opted_in": True}]}
    by_email = api.put("/v1/audience/subscribe", json=body).json()
    same_keys(by_email, recorded("audience-subscribe/by-email"))
    assert by_email == {
        "audience_id": audience,
        "people": [{"person_status": "merged", "status": "subscribed", "person_id": ann}],
    }
    by_id_body = {
        "audience_id": audience,
        "people": [{"person_id": ann}, {"person_id": bob, "subscribed": False}],
    }
    by_id = api.put("/v1/audience/subscribe", json=by_id_body).json()
    assert by_id["people"] == recorded("audience-subscribe/by-person-id")["people"]
    state = sandbox.store.subscriptions(audience)
    assert state[ann].subscribed and state[ann].sms_opted_in
    assert not state[bob].subscribed
    listed = api.post("/v1/audiences/get", json={}).json()[0]
    assert (listed["members"], listed["subscribers"], listed["sms_opted_in"]) == (2, 1, 1)


def test_subscribe_reports_people_it_cannot_change(api: httpx.Client, sandbox: Sandbox) -> None:
    vip = sandbox.store.add_audience("VIP", member_emails=["vip@example.com"])
    merge(api, person("vip@example.com"), person("plain@example.com"))
    people = [
        {"email": "nobody@example.com"},
        {"email": "plain@example.com"},
        {"external_id": "zz"},
    ]
    response = api.put("/v1/audience/subscribe", json={"audience_id": vip, "people": people})
    assert response.status_code == 200
    missing, outsider, unknown_ei = response.json()["people"]
    assert missing == {"person_status": "not-found", "status": "not-found"}
    assert outsider["status"] == "not-a-member" and outsider["person_status"] == "merged"
    assert outsider["person_id"].startswith("00")
    assert unknown_ei["status"] == "not-found"
    assert sandbox.store.subscriptions(vip) == {}

    unknown = api.put("/v1/audience/subscribe", json={"audience_id": "f" * 24, "people": people})
    assert unknown.status_code == 400 and unknown.json()["error"] == "audience not found"
    too_many = [{"email": "vip@example.com"}] * 101
    over = api.put("/v1/audience/subscribe", json={"audience_id": vip, "people": too_many})
    assert over.status_code == 400


# ----- archive, restore, delete -----


def test_person_archive_restore_delete_answer_like_the_recordings(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    ids = [
        merge(api, person(f"p{i}@example.com")).json()["people"][0]["person_id"] for i in range(3)
    ]
    assert api.request("DELETE", "/v1/person/delete", json={"inclusion_ids": ids}).json() == {
        "scheduled_contacts": 0,
        "deleted_contacts": 0,
    }
    archived = api.put("/v1/person/archive", json={"inclusion_ids": ids[:2]}).json()
    assert archived == {"scheduled_contacts": 0, "archived_contacts": 2}
    same_keys(archived, recorded("person-archive/by-ids"))
    restored = api.put("/v1/person/restore", json={"inclusion_ids": ids[:1]}).json()
    assert restored == {"scheduled_contacts": 0, "archived_contacts": 1}
    same_keys(restored, recorded("person-restore/restore"))
    deleted = api.request("DELETE", "/v1/person/delete", json={"inclusion_ids": ids}).json()
    assert deleted == {"scheduled_contacts": 0, "deleted_contacts": 1}
    same_keys(deleted, recorded("person-delete/by-ids"))
    assert set(sandbox.store.people) == {ids[0], ids[2]}
    too_many = {"inclusion_ids": ids * 34}
    assert api.put("/v1/person/archive", json=too_many).status_code == 400


def test_account_archive_restore_delete_use_their_own_key_names(api: httpx.Client) -> None:
    body = {"accounts": [{"fields": {"str:o:name": "Acme"}}], "merge_by": ["str:o:name"]}
    account = api.post("/v1/accounts/merge", json=body).json()["accounts"][0]["account_id"]
    ids = {"inclusion_ids": [account]}
    for method, action, name in [
        ("PUT", "archive", "accounts-archive/single"),
        ("PUT", "restore", "accounts-restore/single"),
        ("PUT", "archive", "accounts-archive/single"),
        ("DELETE", "delete", "accounts-delete/single"),
    ]:
        answer = api.request(method, f"/v1/accounts/{action}", json=ids).json()
        assert answer == recorded(name)


# ----- reads -----


def test_person_get_filters_pages_and_returns_only_valued_requested_fields(
    api: httpx.Client,
) -> None:
    for i in range(3):
        merge(api, person(f"p{i}@example.com", {"str::first": f"P{i}"} if i else {}))
    fields = ["str::email", "str::first", "str::last"]
    first = api.post("/v1/person/get", json={"limit": 2, "fields": fields}).json()
    same_keys(first, recorded("person-get/basic"))
    same_keys(first["meta"], recorded("person-get/basic")["meta"])
    assert [c["fields"] for c in first["contacts"]] == [
        {"str::email": "p0@example.com"},
        {"str::email": "p1@example.com", "str::first": "P1"},
    ]
    assert (first["has_more"], first["next_offset"], first["meta"]["total_contacts"]) == (
        True,
        2,
        3,
    )
    past_end = api.post("/v1/person/get", json={"offset": 3, "fields": fields}).json()
    assert past_end["contacts"] is None and past_end["has_more"] is False
    one = {"$str::is": {"field_id": "str::email", "value": "p2@example.com"}}
    filtered = api.post("/v1/person/get", json={"fields": ["str::first"], "filter": one}).json()
    assert [c["fields"] for c in filtered["contacts"]] == [{"str::first": "P2"}]
    assert api.post("/v1/person/get", json={"limit": 501}).status_code == 400


def test_accounts_get_has_the_recorded_shape(api: httpx.Client) -> None:
    body = {"accounts": [{"fields": {"str:o:name": "Acme"}}], "merge_by": ["str:o:name"]}
    api.post("/v1/accounts/merge", json=body)
    answer = api.post("/v1/accounts/get", json={"fields": ["str:o:name"]}).json()
    expected = recorded("accounts-get/basic")
    same_keys(answer, expected)
    same_keys(answer["accounts"][0], expected["accounts"][0])
    assert answer["accounts"][0]["fields"] == {"str:o:name": "Acme"}
    assert answer["meta"]["total_organizations"] == 1


# ----- HTTP: auth, routing -----


def test_a_wrong_key_is_a_401_that_never_echoes_the_key(sandbox: Sandbox) -> None:
    for key in ("secret-guess-123", None):
        with client(sandbox.url, key=key) as unauthorised:
            response = unauthorised.post("/v1/person/merge", json={})
        assert response.status_code == 401
        assert set(response.json()) == {"request_id", "code", "error"}
        assert "secret-guess-123" not in response.text
    assert sandbox.store.people == {}


def test_unknown_paths_wrong_methods_and_bad_json(api: httpx.Client) -> None:
    assert api.post("/v1/nope").json() == {"code": 404, "error": "not found"}
    assert api.get("/v1/person/merge").status_code == 405
    bad = api.post(
        "/v1/person/merge", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    assert api.post("/v1/person/merge", json=[1]).status_code == 400


# ----- faults -----


def test_latency_delays_each_answer(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.faults.latency = 0.15
    started = time.monotonic()
    api.post("/v1/audiences/get", json={})
    assert 0.15 <= time.monotonic() - started < 2
    assert sandbox.requests[-1].duration >= 0.15


def test_rate_limit_answers_429_with_try_in_seconds_and_changes_nothing(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.set_faults(rate_limit=2, try_in_seconds=0.25)
    answers = [merge(api, person(f"p{i}@example.com")) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {
        "error": {"code": "rate-limit", "message": "rate limit", "try-in-seconds": 0.25}
    }
    assert sandbox.store.find_person("p2@example.com") is None
    assert sandbox.requests[-1].fault == "rate_limit"
    time.sleep(1.05)
    assert merge(api, person("p2@example.com")).status_code == 200


def test_error_rate_answers_5xx_without_applying(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(error_rate=1.0)
    answers = [merge(api, person(f"p{i}@example.com")) for i in range(5)]
    assert {a.status_code for a in answers} <= {500, 502, 503}
    assert sandbox.store.people == {}
    assert all(r.fault == "error" for r in sandbox.requests)


def test_the_seed_makes_random_faults_reproducible() -> None:
    def run(sandbox: Sandbox) -> list[int]:
        with client(sandbox.url) as seeded:
            return [seeded.post("/v1/audiences/get", json={}).status_code for _ in range(12)]

    with Sandbox(KEY, faults=Faults(error_rate=0.5, seed=7)) as sandbox:
        first = run(sandbox)
        sandbox.reset()
        assert run(sandbox) == first
    assert 200 in first and set(first) - {200}


def test_error_after_apply_answers_500_but_the_change_is_made(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.set_faults(error_after_apply_rate=1.0)
    response = merge(api, person("a@example.com"))
    assert response.status_code == 500
    assert sandbox.store.find_person("a@example.com") is not None
    sandbox.set_faults(error_after_apply_rate=0.0)
    assert statuses(merge(api, person("a@example.com"))) == ["merged"]
    assert len(sandbox.store.people) == 1


def test_drop_closes_the_connection_without_an_answer(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        merge(api, person("a@example.com"))
    sandbox.set_faults(drop_rate=0.0)
    assert sandbox.store.people == {}
    assert sandbox.requests[-1].status is None and sandbox.requests[-1].fault == "drop"
    assert merge(api, person("a@example.com")).status_code == 200


def test_fail_next_forces_statuses_then_recovers(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.fail_next(2, 503)
    sandbox.fail_next(1, 403)
    codes = [merge(api, person("a@example.com")).status_code for _ in range(4)]
    assert codes == [503, 503, 403, 200]
    assert [r.fault for r in sandbox.requests] == ["fail_next"] * 3 + [None]


def test_more_than_15_bad_requests_ban_every_request_for_a_while(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    for _ in range(15):
        assert api.post("/v1/nope").status_code == 404
    assert sandbox.bans == 0
    assert api.post("/v1/audiences/get", json={}).status_code == 200
    assert api.post("/v1/nope").status_code == 404
    assert sandbox.bans == 1
    banned = api.post("/v1/audiences/get", json={})
    assert banned.status_code == 429
    error = banned.json()["error"]
    assert error["code"] == "rate-limit" and "banned" in error["message"]
    assert 0 < error["try-in-seconds"] <= 0.3
    time.sleep(0.35)
    assert api.post("/v1/audiences/get", json={}).status_code == 200


def test_max_in_flight_counts_concurrent_requests(sandbox: Sandbox) -> None:
    sandbox.faults.latency = 0.2

    def call() -> None:
        with client(sandbox.url) as caller:
            caller.post("/v1/audiences/get", json={})

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sandbox.max_in_flight >= 3


# ----- bookkeeping, robustness, admin, CLI -----


def test_every_request_is_recorded(api: httpx.Client, sandbox: Sandbox) -> None:
    merge(api, person("a@example.com"), person("b@example.com"))
    api.put("/v1/person/archive", json={"inclusion_ids": ["00" + "0" * 22]})
    first, second = sandbox.requests
    assert (first.method, first.path, first.status, first.records) == (
        "POST",
        "/v1/person/merge",
        200,
        2,
    )
    assert first.body["people"][0]["fields"]["str::email"] == "a@example.com"
    assert first.fault is None and first.duration >= 0
    assert (second.method, second.records) == ("PUT", 1)


def test_thousands_of_keep_alive_requests_from_many_threads(sandbox: Sandbox) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with client(sandbox.url) as worker_api:
                for i in range(125):
                    answer = merge(worker_api, person(f"w{n}-{i}@example.com"))
                    assert answer.status_code == 200
        except BaseException as error:  # reported below, from the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sandbox.requests) == 1000
    assert len(sandbox.store.people) == 1000


def test_stop_returns_even_with_idle_keep_alive_connections() -> None:
    sandbox = Sandbox(KEY).start()
    with client(sandbox.url) as idle:
        assert idle.post("/v1/audiences/get", json={}).status_code == 200
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.TransportError):
            idle.post("/v1/audiences/get", json={})


def test_admin_endpoints_seed_inspect_and_reset(
    sandbox: Sandbox, api: httpx.Client, request: pytest.FixtureRequest
) -> None:
    admin = client(f"{sandbox.url}/_sandbox", key=None)
    request.addfinalizer(admin.close)
    audience = admin.post("/audiences", json={"name": "VIP", "member_emails": ["a@example.com"]})
    field = {"kind": "person", "field_id": "str:cm:tier", "name": "Tier"}
    assert admin.post("/custom-fields", json=field).status_code == 200
    assert statuses(merge(api, person("a@example.com", {"str:cm:tier": "gold"}))) == ["created"]
    assert admin.post("/faults", json={"latency": 0.01, "seed": 3}).json()["latency"] == 0.01
    assert admin.post("/faults", json={"nonsense": 1}).status_code == 400

    state = admin.get("/state").json()
    assert state["people"][0]["fields"]["str:cm:tier"] == "gold"
    assert state["audiences"][0]["id"] == audience.json()["id"]
    assert state["audiences"][0]["members"] == 1
    assert state["custom_fields"]["person"][0]["id"] == "str:cm:tier"
    assert state["requests"] == 1 and state["faults"]["latency"] == 0.01

    assert admin.post("/reset").status_code == 200
    assert admin.get("/state").json()["people"] == []
    assert sandbox.requests == [] and sandbox.faults.latency == 0


def test_cli_serves_until_sigterm_and_show_prints_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "target_ortto.sandbox", "--port", "0", "--api-key", "cli-key"]
    with subprocess.Popen(
        [*command, "--audience", "Newsletter"], stdout=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            assert url.startswith("http://127.0.0.1:")
            with client(url, key="cli-key") as cli_api:
                merge(cli_api, person("ann@example.com", {"str::first": "Ann", "str::last": "Lee"}))
                audience = cli_api.post("/v1/audiences/get", json={}).json()[0]["id"]
                subscribe = {"audience_id": audience, "people": [{"email": "ann@example.com"}]}
                cli_api.put("/v1/audience/subscribe", json=subscribe)
            assert main(["show", "--url", url]) == 0
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
    shown = capsys.readouterr().out
    assert "People: 1" in shown and "ann@example.com" in shown and "Ann Lee" in shown
    assert "Newsletter" in shown and "1 subscribed" in shown
    assert main(["show", "--url", url]) == 1

"""The sandbox's activities behave like Ortto's (documented and recorded), and as badly as
Ortto plausibly could: every event is answered `queued`, kept or not.

Every test talks HTTP to a real sandbox on a free port; nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_ortto.sandbox import Sandbox
from target_ortto.sandbox.__main__ import render

KEY = "test-key"
RECORDED = Path(__file__).resolve().parent / "recorded"
DEFINITION = {
    "name": "deal-won",
    "icon_id": "moneys-illustration-icon",
    "track_conversion_value": False,
    "touch": True,
    "filterable": True,
    "visible_in_feeds": True,
    "display_style": {"type": "activity"},
    "attributes": [
        {"name": "stage", "display_type": "text", "field_id": "do-not-map"},
        {"name": "amount", "display_type": "decimal"},
    ],
}


def recorded(name: str) -> Any:
    return json.loads((RECORDED / f"{name}.json").read_text())["body"]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(KEY) as running:
        yield running


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    headers = {"X-Api-Key": KEY}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5, verify=False) as client:
        yield client


def person_id(api: httpx.Client, email: str) -> str:
    body = {"people": [{"fields": {"str::email": email}}], "merge_by": ["str::email"]}
    return api.post("/v1/person/merge", json=body).json()["people"][0]["person_id"]


def activity(pid: str, key: str | None = "k1", **extra: Any) -> dict[str, Any]:
    return {
        "activity_id": "act:cm:deal-won",
        "person_id": pid,
        "attributes": {"str:cm:stage": "Won", "int:cm:amount": 125000},
        "created": "2026-11-20T10:00:00Z",
        **({"key": key} if key else {}),
        **extra,
    }


def send(api: httpx.Client, *activities: dict[str, Any], **top: Any) -> httpx.Response:
    return api.post("/v1/activities/create", json={"activities": list(activities), **top})


def test_a_definition_is_created_as_recorded_and_a_duplicate_refused_with_423(sandbox, api):
    made = api.post("/v1/definitions/activity/create", json=DEFINITION)

    assert made.status_code == 200
    body, expected = (
        made.json()["custom_activity"],
        recorded("activity-definition-create/with-attributes")["custom_activity"],
    )
    assert set(body) == set(expected)
    assert body["activity_field_id"] == "act:cm:deal-won"
    assert body["state"] == "awaiting_implementation"
    assert [(a["field_id"], a["display_type"]) for a in body["attributes"]] == [
        ("str:cm:stage", "text"),
        ("int:cm:amount", "decimal"),
    ]
    assert set(body["attributes"][0]) == set(expected["attributes"][0])
    assert api.post("/v1/definitions/activity/create", json=DEFINITION).status_code == 423


def test_creating_definitions_is_plan_limited(sandbox, api):
    sandbox.store.set_activity_limit(0)

    refused = api.post("/v1/definitions/activity/create", json=DEFINITION)

    assert refused.status_code == 400 and "limit" in refused.json()["error"]


def test_the_instance_schema_lists_custom_activities_in_cm_like_the_recorded_namespaces(api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)

    answer = api.post("/v1/instance-schema/get", json={"namespaces": ["cm"]}).json()

    assert list(answer["namespaces"]) == ["cm"]
    shape = recorded("instance-schema-get/system-namespaces")["namespaces"][""]
    cm = answer["namespaces"]["cm"]
    assert set(cm) <= set(shape) and isinstance(cm["fields"], dict)
    entry = cm["fields"]["act:cm:deal-won"]
    assert entry["display_type"] == "activity"
    assert {a["id"]: a["display_type"] for a in entry["attributes"]} == {
        "str:cm:stage": "text",
        "int:cm:amount": "decimal",
    }
    every = api.post("/v1/instance-schema/get", json={"namespaces": []}).json()
    assert set(every["namespaces"]) == {"", "cm"}


def test_activities_are_answered_queued_as_recorded_and_kept_on_the_person(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")

    answer = send(api, activity(pid), activity(pid, "k2"), **{"async": True})

    assert answer.status_code == 200
    expected = recorded("activities-create/bulk-by-person-id")["activities"][0]
    assert [set(a) for a in answer.json()["activities"]] == [set(expected)] * 2
    assert answer.json()["activities"][0]["status"] == "queued"
    kept = sandbox.store.activities_of(pid)
    assert [(a["key"], a["created"]) for a in kept] == [
        ("k1", "2026-11-20T10:00:00Z"),
        ("k2", "2026-11-20T10:00:00Z"),
    ]
    assert sandbox.store.activity_definitions["act:cm:deal-won"]["state"] == "live"


def test_an_unknown_definition_or_attribute_is_answered_queued_then_silently_dropped(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")
    unknown = activity(pid, activity_id="act:cm:never-defined")
    stray = activity(pid, "k2", attributes={"str:cm:colour": "red"})

    answer = send(api, unknown, stray)

    assert [a["status"] for a in answer.json()["activities"]] == ["queued", "queued"]
    assert sandbox.store.activities_of(pid) == []
    reasons = [why for why, _ in sandbox.store.dropped_activities]
    assert reasons == ["unknown activity 'act:cm:never-defined'", "unknown attribute str:cm:colour"]


def test_a_repeat_of_key_and_created_is_deduplicated(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")

    send(api, activity(pid), activity(pid), activity(pid, created="2026-11-21T10:00:00Z"))

    assert len(sandbox.store.activities_of(pid)) == 2


def test_at_most_50_of_one_activity_per_person_a_day_are_kept(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")

    send(api, *[activity(pid, f"k{n}") for n in range(51)][:100])

    assert len(sandbox.store.activities_of(pid)) == 50
    assert sandbox.store.dropped_activities[0][0].startswith("over 50 events")


def test_a_person_an_activity_creates_is_subscribed_by_default(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    new = {
        "activity_id": "act:cm:deal-won",
        "fields": {"str::email": "new@example.com", "str::first": "Nea"},
        "attributes": {},
    }

    answer = send(api, new, merge_by=["str::email"])

    expected = recorded("activities-create/with-merge")["activities"][0]
    assert set(answer.json()["activities"][0]) == set(expected)
    created = sandbox.store.find_person("new@example.com")
    assert created.fields["bol::p"] is True
    assert sandbox.store.snapshot()["subscribers"] == ["new@example.com"]
    assert len(sandbox.store.activities_of(created.id)) == 1


def test_by_person_id_the_fields_are_ignored(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")

    send(api, activity(pid, fields={"str::email": "other@example.com", "str::first": "X"}))

    assert sandbox.store.find_person("other@example.com") is None
    assert "str::first" not in sandbox.store.people[pid].fields


def test_show_lists_custom_activities_and_each_persons_activities(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")
    send(api, activity(pid))

    shown = render(sandbox.store.snapshot() | {"requests": 3, "bans": 0})

    assert "Custom activities: 1" in shown and "act:cm:deal-won" in shown
    assert "Activities: 1 on 1 people" in shown
    assert "ada@example.com: 1" in shown and "2026-11-20T10:00:00Z" in shown
    assert "int:cm:amount=125000" in shown


def test_a_persons_activities_are_read_over_http(sandbox, api):
    api.post("/v1/definitions/activity/create", json=DEFINITION)
    pid = person_id(api, "ada@example.com")
    send(api, activity(pid), activity(pid, "k2"))

    read = httpx.post(f"{sandbox.url}/_sandbox/activities", json={"person_id": pid})

    assert [a["key"] for a in read.json()["activities"]] == ["k1", "k2"]

"""The target reads Ortto's recorded activity answers: outcomes, definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from target_ortto.client import OrttoClient
from target_ortto.definitions import read_definitions
from target_ortto.sinks.activity import activity_outcomes

RECORDED = Path(__file__).resolve().parent / "recorded"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / f"{name}.json").read_text())["body"]


def test_queued_answers_acknowledge_each_activity_with_its_person():
    outcomes = activity_outcomes(recorded("activities-create/bulk-by-person-id"), 3)

    assert [o.status for o in outcomes] == ["queued"] * 3
    assert all(o.acknowledged for o in outcomes)
    assert outcomes[0].ortto_id == "00690a5033a2e942cb9ffc00"
    (merged,) = activity_outcomes(recorded("activities-create/with-merge"), 1)
    assert merged.acknowledged and merged.ortto_id is None


def test_answers_that_do_not_itemise_or_refuse_are_told_apart():
    assert [o.status for o in activity_outcomes({"activities": None}, 2)] == ["unconfirmed"] * 2
    refused, ingested = activity_outcomes(
        {"activities": [{"status": "invalid", "error": "bad"}, {"status": "ingested"}]}, 2
    )
    assert not refused.acknowledged and refused.error == "bad"
    assert ingested.status == "created" and ingested.acknowledged


def test_definitions_are_read_from_the_recorded_namespace_shape():
    """The `cm` answer is unrecorded: the recorded `""` namespace's shape, under `cm`."""
    system = recorded("instance-schema-get/system-namespaces")["namespaces"][""]

    def answer(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"namespaces": ["cm"]}
        return httpx.Response(200, json={"namespaces": {"cm": system}})

    client = OrttoClient("https://api.example", "key", transport=httpx.MockTransport(answer))
    found = read_definitions(client)

    assert "act::c" in found and "bol::p" not in found
    assert found["act::c"]["str::cn"] == "text_dictionary"

"""The contract with the real Ortto API: opt-in, the one test module allowed to skip.

Run it against a test instance (it creates, then archives and deletes, a few uniquely named
people and one account):

    ORTTO_LIVE_API_KEY=... ORTTO_LIVE_REGION=default|au|eu \\
        .venv/bin/python -m pytest -q tests/test_live_ortto.py

It checks what the sandbox only assumes: types land as sent, a person the target creates is
unsubscribed, an existing subscriber stays subscribed through an upsert with a fresh ledger,
and an account merges under `accounts`. Set ORTTO_LIVE_RECORD=1 to write the answers it got
into tests/recorded/live/ for review.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import record_messages, run_target, schema_message

from target_ortto.client import OrttoClient
from target_ortto.settings import REGION_URLS

API_KEY = os.environ.get("ORTTO_LIVE_API_KEY", "")
REGION = os.environ.get("ORTTO_LIVE_REGION", "default")
RECORDED = Path(__file__).resolve().parent / "recorded" / "live"

pytestmark = pytest.mark.skipif(
    not API_KEY, reason="opt-in contract test: set ORTTO_LIVE_API_KEY (and ORTTO_LIVE_REGION)"
)


@pytest.fixture(scope="module")
def ortto() -> Iterator[OrttoClient]:
    client = OrttoClient(REGION_URLS[REGION], API_KEY, region=REGION, requests_per_second=5)
    yield client
    client.close()


@pytest.fixture(scope="module")
def tag() -> str:
    return uuid.uuid4().hex[:10]


def email(tag: str, who: str) -> str:
    return f"target-ortto-contract+{tag}-{who}@example.com"


def keep(name: str, answer: Any) -> None:
    if os.environ.get("ORTTO_LIVE_RECORD"):
        RECORDED.mkdir(parents=True, exist_ok=True)
        (RECORDED / f"{name}.json").write_text(json.dumps({"body": answer}, indent=2))


def person(ortto: OrttoClient, address: str) -> dict[str, Any] | None:
    answer = ortto.request(
        "POST",
        "/v1/person/get",
        {
            "limit": 1,
            "fields": ["str::email", "str::first", "bol::p", "int:cm:id"],
            "filter": {"$str::is": {"field_id": "str::email", "value": address}},
        },
    )
    keep("person-get", answer)
    found = answer.get("contacts") or []
    return found[0] if found else None


@pytest.fixture(scope="module")
def made(ortto: OrttoClient) -> Iterator[dict[str, list[str]]]:
    """IDs of what the test made, archived and deleted at the end."""
    ids: dict[str, list[str]] = {"person": [], "accounts": []}
    yield ids
    for segment, found in ids.items():
        if found:
            ortto.request("PUT", f"/v1/{segment}/archive", {"inclusion_ids": found})
            ortto.request("DELETE", f"/v1/{segment}/delete", {"inclusion_ids": found})


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "api_key": API_KEY,
        "region": REGION,
        "ledger_path": str(tmp_path / "ledger.sqlite"),
        "requests_per_second": 5,
    }


PEOPLE = {"email": {"type": "string"}, "first_name": {"type": "string"}}


def test_a_person_the_target_creates_is_unsubscribed(ortto, tag, made, tmp_path):
    address = email(tag, "new")

    result = run_target(
        config(tmp_path),
        [
            schema_message("people", PEOPLE),
            *record_messages("people", [{"email": address, "first_name": "New"}]),
        ],
    )

    assert result.error is None
    found = person(ortto, address)
    assert found is not None
    made["person"].append(found["id"])
    assert found["fields"].get("str::first") == "New"
    assert found["fields"].get("bol::p") is False


def test_an_existing_subscriber_stays_subscribed_through_an_upsert(ortto, tag, made, tmp_path):
    address = email(tag, "subscriber")
    created = ortto.request(
        "POST",
        "/v1/person/merge",
        {
            "people": [{"fields": {"str::email": address, "str::first": "Old", "bol::p": True}}],
            "merge_by": ["str::email"],
            "merge_strategy": 2,
            "find_strategy": 0,
            "async": False,
        },
    )
    keep("person-merge-subscriber", created)
    made["person"].append(created["people"][0]["person_id"])

    result = run_target(
        config(tmp_path),  # a fresh ledger: the target does not know this person
        [
            schema_message("people", PEOPLE),
            *record_messages("people", [{"email": address, "first_name": "New"}]),
        ],
    )

    assert result.error is None
    found = person(ortto, address)
    assert found["fields"].get("str::first") == "New"
    assert found["fields"].get("bol::p") is True


def test_an_account_merges_and_answers_under_accounts(ortto, tag, made, tmp_path):
    name = f"target-ortto contract {tag}"

    answer = ortto.request(
        "POST",
        "/v1/accounts/merge",
        {
            "accounts": [{"fields": {"str:o:name": name, "int:o:employees": 12}}],
            "merge_by": ["str:o:name"],
            "merge_strategy": 2,
            "find_strategy": 0,
            "async": False,
        },
    )
    keep("accounts-merge", answer)

    entry = answer["accounts"][0]
    made["accounts"].append(entry["account_id"])
    assert entry["status"] == "created"
    assert len(entry["account_id"]) == 24

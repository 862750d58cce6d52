"""The contract with the real Ortto API: opt-in, the one test module allowed to skip.

Run it against a test instance (it creates, then archives and deletes, a few uniquely named
people and one account):

    ORTTO_LIVE_API_KEY=... ORTTO_LIVE_REGION=default|au|eu \\
        .venv/bin/python -m pytest -q tests/test_live_ortto.py

It checks what the sandbox only assumes: types land as sent, a person the target creates is
unsubscribed, an existing subscriber stays subscribed through an upsert with a fresh ledger,
an account merges under `accounts`, and (with ORTTO_LIVE_AUDIENCE) an audience stream
subscribes and unsubscribes, and a people stream's company column links each person to
their account — proven by reading each person's `idt::o` back, since Ortto answers the
link call with `{}` whatever it did (the form sent is chosen in target_ortto/link_api.py,
the one place to change if this fails). Set ORTTO_LIVE_RECORD=1 to write the answers it got into
tests/recorded/live/ for review. Not covered: a person who exists without any permission
value (made by a CSV import); the API cannot make one, since it subscribes by default.
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
from target_ortto.link_api import ACCOUNT_KEY, LINK_PATH
from target_ortto.settings import REGION_URLS

API_KEY = os.environ.get("ORTTO_LIVE_API_KEY", "")
REGION = os.environ.get("ORTTO_LIVE_REGION", "default")
AUDIENCE = os.environ.get("ORTTO_LIVE_AUDIENCE", "")  # an audience ID of the test instance
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
            "fields": ["str::email", "str::first", "bol::p", "phn::phone", "geo::city", "dtz::b"],
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
TYPED = {
    **PEOPLE,
    "phone": {"type": "string"},
    "city": {"type": "string"},
    "birthday": {"type": "string", "format": "date"},
}


def test_a_person_the_target_creates_is_unsubscribed_and_typed_as_sent(ortto, tag, made, tmp_path):
    address = email(tag, "new")
    row = {
        "email": address,
        "first_name": "New",
        "phone": "+61 401 234 567",
        "city": "Melbourne",
        "birthday": "1990-01-05",
    }

    result = run_target(
        config(tmp_path), [schema_message("people", TYPED), *record_messages("people", [row])]
    )

    assert result.error is None
    found = person(ortto, address)
    assert found is not None
    made["person"].append(found["id"])
    fields = found["fields"]
    assert fields.get("str::first") == "New"
    assert fields.get("bol::p") is False
    assert "401234567" in json.dumps(fields.get("phn::phone"))
    assert "Melbourne" in json.dumps(fields.get("geo::city"))
    assert "1990" in json.dumps(fields.get("dtz::b"))


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


@pytest.mark.skipif(not AUDIENCE, reason="set ORTTO_LIVE_AUDIENCE to a test audience's ID")
def test_an_audience_stream_subscribes_then_unsubscribes(ortto, tag, made, tmp_path):
    address = email(tag, "member")
    created = ortto.request(
        "POST",
        "/v1/person/merge",
        {"people": [{"fields": {"str::email": address}}], "merge_by": ["str::email"]},
    )
    made["person"].append(created["people"][0]["person_id"])
    members = {"email": {"type": "string"}, "subscribed": {"type": "boolean"}}
    settings = {
        **config(tmp_path),
        "streams": {"members": {"object": "audience", "audience": AUDIENCE}},
    }

    for subscribed in (True, False):
        result = run_target(
            settings,
            [
                schema_message("members", members),
                *record_messages("members", [{"email": address, "subscribed": subscribed}]),
            ],
        )
        assert result.error is None
        answer = ortto.request("POST", "/v1/person/subscriptions", {"people": [{"email": address}]})
        keep(f"person-subscriptions-{subscribed}", answer)
        states = {
            s["audience_id"]: s["subscribed"] for s in answer["people"][0]["subscriptions"] or []
        }
        assert states.get(AUDIENCE) is subscribed


def account_of(ortto: OrttoClient, address: str) -> str | None:
    """The account a person is linked to, as Ortto reads it back (`idt::o`)."""
    answer = ortto.request(
        "POST",
        "/v1/person/get",
        {
            "limit": 1,
            "fields": ["str::email", "idt::o"],
            "filter": {"$str::is": {"field_id": "str::email", "value": address}},
        },
    )
    keep("person-get-account", answer)
    found = answer.get("contacts") or []
    return found[0]["fields"].get("idt::o") if found else None


def test_a_company_column_links_moves_and_unlinks_people_read_back_as_idt_o(
    ortto, tag, made, tmp_path
):
    names = [f"target-ortto contract {tag} {n}" for n in ("A", "B")]
    addresses = [email(tag, f"linked{i}") for i in range(2)]
    settings = config(tmp_path)
    orgs = [
        schema_message("organizations", {"name": {"type": "string"}}),
        *record_messages("organizations", [{"name": n} for n in names]),
    ]
    schema = {"email": {"type": "string"}, "company": {"type": ["string", "null"]}}

    def load(companies: list[str | None], **extra: Any) -> None:
        rows = [{"email": a, "company": c} for a, c in zip(addresses, companies, strict=True)]
        messages = [*orgs, schema_message("people", schema), *record_messages("people", rows)]
        result = run_target({**settings, **extra}, messages)
        assert result.error is None

    load([names[0], names[0]])

    accounts = {}
    for name in names:
        answer = ortto.request(
            "POST",
            "/v1/accounts/get",
            {
                "limit": 1,
                "fields": ["str:o:name"],
                "filter": {"$str::is": {"field_id": "str:o:name", "value": name}},
            },
        )
        accounts[name] = answer["accounts"][0]["id"]
        made["accounts"].append(accounts[name])
    for address in addresses:
        found = person(ortto, address)
        assert found is not None
        made["person"].append(found["id"])
    where = f"the link call {LINK_PATH} with {ACCOUNT_KEY!r} did not link"
    assert [account_of(ortto, a) for a in addresses] == [accounts[names[0]]] * 2, where

    load([names[0], names[1]])  # the second person moves
    assert [account_of(ortto, a) for a in addresses] == [accounts[names[0]], accounts[names[1]]]

    load([names[0], None], null_values="clear")  # a null unlinks under clear
    assert [account_of(ortto, a) for a in addresses] == [accounts[names[0]], None]

"""The sandbox links people to accounts like Ortto: each documented form links, a body Ortto
does not document is answered `{}` and links nobody, reads return `idt::o`."""

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


def recorded(name: str) -> Any:
    """The body of a real Ortto response (tests/recorded, copied from shared/reference)."""
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


def create(api: httpx.Client) -> tuple[list[str], str, str]:
    """Two people and two accounts; returns (person IDs, account A, account B)."""
    people = api.post(
        "/v1/person/merge",
        json={
            "people": [{"fields": {"str::email": f"p{i}@example.com"}} for i in range(2)],
            "merge_by": ["str::email"],
        },
    ).json()["people"]
    accounts = api.post(
        "/v1/accounts/merge",
        json={
            "accounts": [{"fields": {"str:o:name": n}} for n in ("Acme", "Globex")],
            "merge_by": ["str:o:name"],
        },
    ).json()["accounts"]
    return [p["person_id"] for p in people], accounts[0]["account_id"], accounts[1]["account_id"]


def link(api: httpx.Client, account: str, people: list[str]) -> None:
    body = {"organization_id": account, "inclusion_ids": people}
    assert api.put("/v1/organizations/contacts/add", json=body).status_code == 200


def account_read(api: httpx.Client, email: str) -> str | None:
    """`idt::o` as a person read returns it."""
    body = {
        "limit": 1,
        "fields": ["str::email", "idt::o"],
        "filter": {"$str::is": {"field_id": "str::email", "value": email}},
    }
    contacts = api.post("/v1/person/get", json=body).json()["contacts"]
    return contacts[0]["fields"].get("idt::o")


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/organizations/contacts/{}", "organization_id"),  # legacy reference
        ("/v1/accounts/contacts/{}", "account_id"),  # a-231
        ("/v1/accounts/contacts/{}", "accounts_id"),  # a-280
    ],
)
def test_each_documented_form_links_and_unlinks(api, sandbox, path, key):
    people, acme, _ = create(api)

    added = api.put(path.format("add"), json={key: acme, "inclusion_ids": people})

    assert (added.status_code, added.json()) == (200, recorded("accounts-contacts-add/add"))
    assert [account_read(api, f"p{i}@example.com") for i in range(2)] == [acme, acme]
    assert sandbox.store.account_of(people[0]) == acme

    removed = api.put(path.format("remove"), json={key: acme, "inclusion_ids": people[:1]})

    assert removed.status_code == 200
    assert removed.json() == recorded("accounts-contacts-remove/remove")
    assert [account_read(api, f"p{i}@example.com") for i in range(2)] == [None, acme]


@pytest.mark.parametrize(
    "make",
    [
        lambda account, people: {"account_id": account, "person_ids": people},  # recorded
        lambda account, people: {"organization_id": account},
        lambda account, people: {"inclusion_ids": people},
        lambda account, people: {"id": account, "contact_ids": people},
    ],
)
def test_a_body_ortto_does_not_document_is_answered_empty_and_links_nobody(api, sandbox, make):
    people, acme, _ = create(api)

    for path in ("/v1/accounts/contacts/add", "/v1/organizations/contacts/add"):
        answer = api.put(path, json=make(acme, people))
        assert (answer.status_code, answer.json()) == (200, {})
    assert all(sandbox.store.account_of(p) is None for p in people)


def test_the_recorded_person_ids_body_links_nobody(api, sandbox):
    people, acme, _ = create(api)

    answer = api.put("/v1/accounts/contacts/add", json={"account_id": acme, "person_ids": people})

    assert answer.json() == recorded("accounts-contacts-add/add")
    assert all(sandbox.store.account_of(p) is None for p in people)


def test_a_person_has_one_account_linking_again_moves_them(api, sandbox):
    people, acme, globex = create(api)
    path = "/v1/organizations/contacts/add"
    api.put(path, json={"organization_id": acme, "inclusion_ids": people})

    api.put(path, json={"organization_id": globex, "inclusion_ids": people[:1]})

    assert [sandbox.store.account_of(p) for p in people] == [globex, acme]


def test_unknown_or_malformed_accounts_are_refused(api, sandbox):
    people, _, _ = create(api)
    path = "/v1/organizations/contacts/add"

    unknown = api.put(path, json={"organization_id": "1" + "0" * 23, "inclusion_ids": people})
    malformed = api.put(path, json={"organization_id": "acme", "inclusion_ids": people})

    assert unknown.status_code == 400 and "not found" in unknown.json()["error"]
    assert malformed.status_code == 400 and "length must be 12 or 24" in malformed.json()["error"]


def test_archiving_an_account_unlinks_its_people(api, sandbox):
    people, acme, _ = create(api)
    link(api, acme, people)

    api.put("/v1/accounts/archive", json={"inclusion_ids": [acme]})

    assert all(sandbox.store.account_of(p) is None for p in people)


def test_idt_o_is_read_only_in_merges(api):
    answer = api.post(
        "/v1/person/merge",
        json={
            "people": [{"fields": {"str::email": "a@example.com", "idt::o": "1" * 24}}],
            "merge_by": ["str::email"],
        },
    )
    assert answer.status_code == 400


def test_show_prints_each_persons_account_and_each_accounts_people(api, sandbox):
    people, acme, _ = create(api)
    link(api, acme, people)
    state = api.get("/_sandbox/state").json()

    shown = render(state)

    lines = shown.splitlines()
    assert "ACCOUNT" in lines[1]
    assert all("Acme" in line for line in lines if "@example.com" in line)
    acme_row = next(line for line in lines if acme in line)
    assert acme_row.split()[2] == "2"  # NAME, ID, PEOPLE

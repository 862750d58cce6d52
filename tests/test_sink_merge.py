"""People merges and consent (spec section 4c): nobody is subscribed by the target's own
requests, not even by Ortto's default for the people it creates."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import record_messages, run_target, schema_message

PERSON = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}


def people_run(config, emails, first_name="New", schema=PERSON, extra=None):
    records = [{"email": e, "first_name": first_name, **(extra or {})} for e in emails]
    return run_target(
        config, [schema_message("people", schema), *record_messages("people", records)]
    )


def merges(sandbox, since=0):
    return [r.body for r in sandbox.requests[since:] if r.path == "/v1/person/merge"]


def permission(sandbox, email):
    return sandbox.store.find_person(email).fields.get("bol::p")


def seed_person(sandbox, email, **fields):
    """A person Ortto already has, made outside the target (another source, an import)."""
    body = {"people": [{"fields": {"str::email": email, **fields}}], "merge_by": ["str::email"]}
    sandbox.store.merge("person", body)


def test_people_the_target_creates_start_unsubscribed_in_one_request_per_batch(sandbox, config):
    config["batch_size"] = 10
    emails = [f"p{i}@example.com" for i in range(25)]

    result = people_run(config, emails)

    assert result.error is None
    assert all(permission(sandbox, e) is False for e in emails)
    assert sandbox.store.snapshot()["subscribers"] == []
    sent = merges(sandbox)
    assert sorted(len(b["people"]) for b in sent) == [5, 10, 10]
    assert all(b["merge_strategy"] == 1 and b["async"] is False for b in sent)


def test_an_existing_subscriber_stays_subscribed_and_still_gets_the_new_values(sandbox, config):
    seed_person(sandbox, "sub@example.com", **{"bol::p": True, "str::first": "Old"})
    seed_person(sandbox, "out@example.com", **{"bol::p": False, "str::first": "Old"})

    result = people_run(config, ["sub@example.com", "out@example.com", "new@example.com"])

    assert result.error is None
    assert permission(sandbox, "sub@example.com") is True
    assert permission(sandbox, "out@example.com") is False
    assert permission(sandbox, "new@example.com") is False
    assert sandbox.store.find_person("sub@example.com").fields["str::first"] == "New"
    first, second = merges(sandbox)  # at most one extra request for the batch
    assert first["merge_strategy"] == 1 and all(
        p["fields"]["bol::p"] is False for p in first["people"]
    )
    assert second["merge_strategy"] == 2
    assert [p["fields"]["str::email"] for p in second["people"]] == [
        "sub@example.com",
        "out@example.com",
    ]
    assert all("bol::p" not in p["fields"] for p in second["people"])


def test_a_resync_of_people_the_ledger_knows_is_one_overwrite_without_consent(sandbox, config):
    people_run(config, ["a@example.com", "b@example.com"])
    mark = len(sandbox.requests)

    people_run(config, ["a@example.com", "b@example.com"], first_name="Changed")

    (only,) = merges(sandbox, mark)
    assert only["merge_strategy"] == 2
    assert all("bol::p" not in p["fields"] for p in only["people"])


@pytest.mark.parametrize(("mode", "strategy"), [("insert", 3), ("append", 1)])
def test_insert_and_append_carry_the_permission_as_false_and_keep_existing_values(
    sandbox, config, mode, strategy
):
    config["streams"] = {"people": {"mode": mode}}
    seed_person(sandbox, "sub@example.com", **{"bol::p": True})

    people_run(config, ["sub@example.com", "new@example.com"])

    (only,) = merges(sandbox)
    assert only["merge_strategy"] == strategy
    assert all(p["fields"]["bol::p"] is False for p in only["people"])
    assert permission(sandbox, "sub@example.com") is True
    assert permission(sandbox, "new@example.com") is False


def test_update_never_creates_so_sends_no_permission_nor_suppression(sandbox, config):
    config["streams"] = {"people": {"mode": "update"}}
    seed_person(sandbox, "sub@example.com", **{"bol::p": True})

    people_run(config, ["sub@example.com"])

    (only,) = merges(sandbox)
    assert "bol::p" not in only["people"][0]["fields"]
    assert "suppression_list_field_id" not in only
    assert permission(sandbox, "sub@example.com") is True


def test_with_subscribe_new_people_ortto_default_applies(sandbox, config):
    config["subscribe_new_people"] = True

    people_run(config, ["new@example.com"])

    (only,) = merges(sandbox)
    assert only["merge_strategy"] == 2 and "bol::p" not in only["people"][0]["fields"]
    assert permission(sandbox, "new@example.com") is True


def test_a_column_mapped_to_the_permission_is_sent_as_it_is(sandbox, config):
    schema = {**PERSON, "bol::p": {"type": ["boolean", "null"]}}
    seed_person(sandbox, "out@example.com", **{"bol::p": False})

    people_run(
        config, ["out@example.com", "new@example.com"], schema=schema, extra={"bol::p": True}
    )

    (only,) = merges(sandbox)
    assert only["merge_strategy"] == 2
    assert permission(sandbox, "out@example.com") is True
    assert permission(sandbox, "new@example.com") is True


def test_suppressed_emails_are_not_created_and_are_rejected_with_orttos_reason(sandbox, config):
    config["on_invalid_record"] = "reject"
    seed_person(sandbox, "known@example.com")
    sandbox.store.suppress("known@example.com")
    sandbox.store.suppress("blocked@example.com")

    result = people_run(config, ["known@example.com", "blocked@example.com", "ok@example.com"])

    assert result.error is None
    assert sandbox.store.find_person("blocked@example.com") is None
    assert sandbox.store.find_person("known@example.com") is not None  # merged, as Ortto does
    assert all(b["suppression_list_field_id"] == "str::email" for b in merges(sandbox))
    resent = [p["fields"]["str::email"] for b in merges(sandbox)[1:] for p in b["people"]]
    assert "blocked@example.com" not in resent
    rejected = Path(config["rejected_records_path"]).read_text(encoding="utf-8")
    assert "Email is suppressed" in rejected


def test_with_skip_suppressed_off_ortto_does_not_check_its_list(sandbox, config):
    config["skip_suppressed"] = False
    sandbox.store.suppress("blocked@example.com")

    people_run(config, ["blocked@example.com"])

    assert "suppression_list_field_id" not in merges(sandbox)[0]
    assert sandbox.store.find_person("blocked@example.com") is not None

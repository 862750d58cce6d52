"""People linked to their accounts (spec section 4b), checked on what the sandbox holds."""

from __future__ import annotations

import json

import pytest
from conftest import record_messages, run_cli, run_target, schema_message, state_message

from target_ortto.errors import InvalidRecordError, StreamError
from target_ortto.link_api import ACCOUNT_KEY, LINK_PATH

PEOPLE = {
    "email": {"type": "string"},
    "first_name": {"type": ["string", "null"]},
    "company": {"type": ["string", "null"]},
}
ORGS = {"name": {"type": "string"}, "industry": {"type": ["string", "null"]}}
ADD = LINK_PATH.format(action="add")
REMOVE = LINK_PATH.format(action="remove")


def people(rows: list[dict], stream: str = "people", schema: dict | None = None) -> list[dict]:
    return [schema_message(stream, schema or PEOPLE), *record_messages(stream, rows)]


def orgs(names: list[str]) -> list[dict]:
    rows = [{"name": n, "industry": "Retail"} for n in names]
    return [schema_message("organizations", ORGS), *record_messages("organizations", rows)]


def seed_account(sandbox, name: str, website: str | None = None) -> str:
    """An account already in Ortto (not loaded by this run); returns its ID."""
    fields = {"str:o:name": name, **({"str:o:website": website} if website else {})}
    body = {"accounts": [{"fields": fields}], "merge_by": ["str:o:name"]}
    return sandbox.store.merge("account", body)["accounts"][0]["account_id"]


def person_row(email: str) -> dict:
    return {"fields": {"str::email": email}}


def accounts_of(sandbox) -> dict[str, str | None]:
    """Each person's email -> the name of the account the sandbox links them to."""
    names = {aid: a.fields.get("str:o:name") for aid, a in sandbox.store.accounts.items()}
    return {
        p.fields["str::email"]: names.get(p.fields.get("idt::o"))
        for p in sandbox.store.people.values()
        if not p.archived
    }


def rejected_records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]


def link_calls(sandbox) -> list:
    return [r for r in sandbox.requests if "/contacts/" in r.path]


def summary(result) -> str:
    return "\n".join(result.target.run.report.finish()) if result.target else ""


def test_people_are_linked_to_the_accounts_their_company_column_names(sandbox, config):
    rows = [
        {"email": "ada@example.com", "first_name": "Ada", "company": "Acme"},
        {"email": "bob@example.com", "first_name": "Bob", "company": "Globex"},
        {"email": "cy@example.com", "first_name": "Cy", "company": "Acme"},
    ]
    # People first in the input: accounts pending in the same run are merged before links.
    result = run_target(config, [*people(rows), *orgs(["Acme", "Globex"]), state_message(1)])

    assert result.error is None
    assert accounts_of(sandbox) == {
        "ada@example.com": "Acme",
        "bob@example.com": "Globex",
        "cy@example.com": "Acme",
    }
    # The link column is no custom field, and the calls grouped people by account.
    assert all("str:cm:company" not in p.fields for p in sandbox.store.people.values())
    assert "str:cm:company" not in {f.id for f in sandbox.store.custom_fields("person")}
    calls = link_calls(sandbox)
    assert [r.path for r in calls] == [ADD, ADD]
    assert sorted(len(r.body["inclusion_ids"]) for r in calls) == [1, 2]
    assert all(set(r.body) == {ACCOUNT_KEY, "inclusion_ids"} for r in calls)
    assert result.states == [1]


def test_links_come_after_merges_and_before_state(sandbox, config):
    seed_account(sandbox, "Acme")
    rows = [{"email": f"p{i}@example.com", "company": "Acme"} for i in range(5)]

    result = run_target(config, [*people(rows), state_message("after")])

    paths = [r.path for r in sandbox.requests]
    assert paths.index(ADD) > max(i for i, p in enumerate(paths) if p == "/v1/person/merge")
    assert result.states == ["after"]
    assert set(accounts_of(sandbox).values()) == {"Acme"}


def test_a_rerun_resends_nothing_and_a_changed_company_moves_the_person(sandbox, config):
    rows = [
        {"email": "ada@example.com", "company": "Acme"},
        {"email": "bob@example.com", "company": "Acme"},
    ]
    messages = [*orgs(["Acme", "Globex"]), *people(rows)]
    assert run_target(config, messages).error is None
    before = len(link_calls(sandbox))

    assert run_target(config, messages).error is None
    assert len(link_calls(sandbox)) == before  # unchanged links are never resent

    rows[1]["company"] = "Globex"
    result = run_target(config, [*orgs(["Acme", "Globex"]), *people(rows)])

    assert result.error is None
    assert accounts_of(sandbox) == {"ada@example.com": "Acme", "bob@example.com": "Globex"}
    moved = link_calls(sandbox)[before:]
    assert [r.path for r in moved] == [REMOVE, ADD]  # out of the old account, into the new
    counts = result.target.run.report.counts["people"]
    assert (counts["moved"], counts["linked"]) == (1, 0)


def test_unknown_company_is_reported_and_the_person_still_written(sandbox, config, tmp_path):
    config["on_invalid_record"] = "reject"
    rows = [
        {"email": "ada@example.com", "first_name": "Ada", "company": "Nowhere Ltd"},
        {"email": "bob@example.com", "first_name": "Bob", "company": "Acme"},
    ]
    result = run_target(config, [*orgs(["Acme"]), *people(rows), state_message(2)])

    assert result.error is None
    assert accounts_of(sandbox) == {"ada@example.com": None, "bob@example.com": "Acme"}
    assert [a.fields["str:o:name"] for a in sandbox.store.accounts.values()] == ["Acme"]
    rejected = rejected_records(tmp_path)
    assert len(rejected) == 1
    assert "'Nowhere Ltd'" in rejected[0]["reason"]
    assert "create_missing_accounts" in rejected[0]["reason"]
    assert result.target.run.report.counts["people"]["links_failed"] == 1
    assert result.states == [2]


def test_unknown_company_fails_the_run_under_on_invalid_record_fail(sandbox, config):
    result = run_target(config, [*people([{"email": "a@example.com", "company": "Nope"}])])

    assert isinstance(result.error, InvalidRecordError)
    assert "'Nope'" in str(result.error)
    assert sandbox.store.find_person("a@example.com") is not None  # still written


def test_create_missing_accounts_creates_each_once_in_insert_mode(sandbox, config):
    config["create_missing_accounts"] = True
    rows = [{"email": f"p{i}@example.com", "company": "New Co"} for i in range(3)]

    result = run_target(config, people(rows))

    assert result.error is None
    assert set(accounts_of(sandbox).values()) == {"New Co"}
    creates = [r for r in sandbox.requests if r.path == "/v1/accounts/merge"]
    assert len(creates) == 1 and creates[0].body["merge_strategy"] == 3
    assert len([r for r in sandbox.requests if r.path == "/v1/accounts/get"]) == 1


def test_one_lookup_per_distinct_value_for_the_run(sandbox, config):
    seed_account(sandbox, "Acme")
    config["batch_size"] = 2
    rows = [{"email": f"p{i}@example.com", "company": "Acme"} for i in range(6)]
    messages = [schema_message("people", PEOPLE)]
    for start in range(0, 6, 2):
        messages += [*record_messages("people", rows[start : start + 2]), state_message(start)]

    result = run_target(config, messages)

    assert result.error is None
    assert len([r for r in sandbox.requests if r.path == "/v1/accounts/get"]) == 1
    assert set(accounts_of(sandbox).values()) == {"Acme"}


def test_empty_and_whitespace_values_are_no_link(sandbox, config):
    rows = [
        {"email": "a@example.com", "company": ""},
        {"email": "b@example.com", "company": "   "},
        {"email": "c@example.com", "company": None},
    ]
    result = run_target(config, people(rows))

    assert result.error is None
    assert link_calls(sandbox) == []
    assert [r for r in sandbox.requests if r.path == "/v1/accounts/get"] == []
    assert sandbox.store.accounts == {}


def test_null_unlinks_only_under_null_values_clear(sandbox, config):
    messages = [*orgs(["Acme"]), *people([{"email": "a@example.com", "company": "Acme"}])]
    assert run_target(config, messages).error is None
    unlink = people([{"email": "a@example.com", "company": None}])

    assert run_target(config, unlink).error is None
    assert accounts_of(sandbox) == {"a@example.com": "Acme"}  # skip: a null changes nothing

    config["null_values"] = "clear"
    result = run_target(config, unlink)

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": None}
    assert link_calls(sandbox)[-1].path == REMOVE
    assert result.target.run.report.counts["people"]["unlinked"] == 1


def test_calls_carry_at_most_100_people(sandbox, config):
    rows = [{"email": f"p{i}@example.com", "company": "Acme"} for i in range(250)]

    result = run_target(config, [*orgs(["Acme"]), *people(rows)])

    assert result.error is None
    assert sorted(len(r.body["inclusion_ids"]) for r in link_calls(sandbox)) == [50, 100, 100]
    assert list(accounts_of(sandbox).values()) == ["Acme"] * 250


def test_an_account_holds_at_most_3000_people(sandbox, config, tmp_path):
    config["on_invalid_record"] = "reject"
    config["max_rejected_records"] = 10
    rows = [{"email": f"p{i}@example.com", "company": "Acme"} for i in range(3002)]

    result = run_target(config, [*orgs(["Acme"]), *people(rows)])

    assert result.error is None
    linked = [email for email, name in accounts_of(sandbox).items() if name == "Acme"]
    assert len(linked) == 3000 and len(sandbox.store.people) == 3002
    reasons = [r["reason"] for r in rejected_records(tmp_path)]
    assert len(reasons) == 2 and all("3,000" in r for r in reasons)


def test_account_link_setting_chooses_the_column_and_field(sandbox, config):
    seed_account(sandbox, "Acme", "acme.example")
    schema = {**PEOPLE, "employer_site": {"type": ["string", "null"]}}
    config["streams"] = {
        "people": {"account_link": {"column": "employer_site", "by": "str:o:website"}}
    }
    rows = [{"email": "a@example.com", "company": "Other", "employer_site": "acme.example"}]

    result = run_target(config, people(rows, schema=schema))

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": "Acme"}
    person = sandbox.store.find_person("a@example.com")
    assert person.fields["str:cm:company"] == "Other"  # not the link: a custom field again
    assert "str:cm:employer-site" not in person.fields


def test_account_link_null_turns_linking_off(sandbox, config):
    config["streams"] = {"people": {"account_link": None}}

    result = run_target(config, people([{"email": "a@example.com", "company": "Acme"}]))

    assert result.error is None
    assert link_calls(sandbox) == []
    assert sandbox.store.find_person("a@example.com").fields["str:cm:company"] == "Acme"


def test_account_link_naming_a_missing_column_stops_at_the_schema(sandbox, config):
    config["streams"] = {"people": {"account_link": {"column": "employer"}}}

    result = run_target(config, people([{"email": "a@example.com"}]))

    assert isinstance(result.error, StreamError)
    assert "employer" in str(result.error)
    assert sandbox.requests == [] or all("merge" not in r.path for r in sandbox.requests)


@pytest.mark.parametrize(
    ("column", "by_field", "value"),
    [
        ("account_name", "str:o:name", "Acme"),
        ("organization", "str:o:name", "Acme"),
        ("company_domain", "str:o:website", "acme.example"),
        ("account_website", "str:o:website", "acme.example"),
    ],
)
def test_link_columns_by_name_and_by_website(sandbox, config, column, by_field, value):
    seed_account(sandbox, "Acme", "acme.example")
    schema = {"email": {"type": "string"}, column: {"type": ["string", "null"]}}

    result = run_target(config, people([{"email": "a@example.com", column: value}], schema=schema))

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": "Acme"}
    lookup = next(r for r in sandbox.requests if r.path == "/v1/accounts/get")
    assert by_field in json.dumps(lookup.body["filter"])


def test_ortto_account_id_links_by_ortto_id(sandbox, config):
    account_id = seed_account(sandbox, "Acme")
    schema = {"email": {"type": "string"}, "ortto_account_id": {"type": ["string", "null"]}}
    rows = [
        {"email": "a@example.com", "ortto_account_id": account_id},
        {"email": "b@example.com", "ortto_account_id": "not-an-id"},
    ]
    config["on_invalid_record"] = "reject"

    result = run_target(config, people(rows, schema=schema))

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": "Acme", "b@example.com": None}
    assert result.target.run.report.counts["people"]["links_failed"] == 1


def test_dry_run_plans_links_and_writes_nothing(sandbox, config, caplog):
    seed_account(sandbox, "Acme")
    config["dry_run"] = True

    result = run_target(config, people([{"email": "a@example.com", "company": "Acme"}]))

    assert result.error is None
    assert link_calls(sandbox) == []
    assert sandbox.store.people == {}
    assert result.target.run.report.counts["people"]["planned_links"] == 1


def test_the_cli_links_and_its_summary_counts_links(sandbox, config, tmp_path):
    rows = [
        {"email": "ada@example.com", "company": "Acme"},
        {"email": "bob@example.com", "company": "Nowhere"},
    ]
    config["on_invalid_record"] = "reject"

    done = run_cli(config, [*orgs(["Acme"]), *people(rows), state_message(9)], tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    assert accounts_of(sandbox) == {"ada@example.com": "Acme", "bob@example.com": None}
    assert "linked to an account 1" in done.stderr
    assert "links failed 1" in done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == 9


def test_accounts_merged_in_the_run_are_found_in_the_ledger_without_lookups(sandbox, config):
    rows = [{"email": "a@example.com", "company": "Acme"}]

    result = run_target(config, [*orgs(["Acme"]), *people(rows)])

    assert result.error is None
    assert [r for r in sandbox.requests if r.path == "/v1/accounts/get"] == []
    assert accounts_of(sandbox) == {"a@example.com": "Acme"}


def test_person_ids_come_from_the_ledger_else_a_lookup_by_merge_key(sandbox, config):
    seed_account(sandbox, "Acme")
    seed_account(sandbox, "Globex")
    rows = [{"email": "a@example.com", "first_name": "A", "company": "Acme"}]
    assert run_target(config, people(rows)).error is None
    rows[0]["company"] = "Globex"  # the person is unchanged: no merge answer this time

    assert run_target(config, people(rows)).error is None

    assert accounts_of(sandbox) == {"a@example.com": "Globex"}
    assert [r for r in sandbox.requests if r.path == "/v1/person/get"] == []  # the ledger's

    sandbox.store.merge("person", {"people": [person_row("b@example.com")]})
    config["baseline"] = True  # recorded as in Ortto, without IDs
    baseline_rows = [{"email": "b@example.com", "first_name": "B"}]
    assert run_target(config, people(baseline_rows)).error is None
    config["baseline"] = False

    result = run_target(config, people([{**baseline_rows[0], "company": "Acme"}]))

    assert result.error is None
    assert accounts_of(sandbox)["b@example.com"] == "Acme"
    lookups = [r for r in sandbox.requests if r.path == "/v1/person/get"]
    assert len(lookups) == 1 and "b@example.com" in json.dumps(lookups[0].body)


def test_a_person_ortto_refused_is_not_linked(sandbox, config):
    seed_account(sandbox, "Acme")
    sandbox.store.suppress("gone@example.com")
    config["on_invalid_record"] = "reject"
    rows = [
        {"email": "gone@example.com", "company": "Acme"},
        {"email": "ok@example.com", "company": "Acme"},
    ]

    result = run_target(config, people(rows))

    assert result.error is None
    assert accounts_of(sandbox) == {"ok@example.com": "Acme"}
    assert [r.body["inclusion_ids"] for r in link_calls(sandbox)] == [
        [sandbox.store.find_person("ok@example.com").id]
    ]
    assert result.target.run.report.counts["people"]["links_failed"] == 0


def test_dry_run_counts_accounts_the_run_would_merge_first(sandbox, config):
    config["dry_run"] = True
    rows = [{"email": "a@example.com", "company": "Acme"}]

    result = run_target(config, [*people(rows), *orgs(["Acme"])])

    assert result.error is None
    assert sandbox.store.accounts == {} and link_calls(sandbox) == []
    assert result.target.run.report.counts["people"]["planned_links"] == 1


@pytest.mark.parametrize(
    "value",
    ["company", {"column": "company", "by": "str::email"}, {"by": "str:o:name"}, {"col": "x"}],
)
def test_a_malformed_account_link_is_a_config_error_naming_it(sandbox, config, tmp_path, value):
    config["streams"] = {"people": {"account_link": value}}

    done = run_cli(config, people([{"email": "a@example.com", "company": "Acme"}]), tmp_path)

    assert done.returncode != 0
    assert "streams.people.account_link" in done.stderr
    assert sandbox.requests == []


def test_people_ortto_leaves_untouched_are_not_linked(sandbox, config):
    seed_account(sandbox, "Acme")
    sandbox.store.merge("person", {"people": [person_row("old@example.com")]})
    config["streams"] = {"people": {"mode": "insert"}}
    rows = [
        {"email": "old@example.com", "company": "Acme"},  # exists: insert leaves it alone
        {"email": "new@example.com", "company": "Acme"},
    ]

    result = run_target(config, people(rows))

    assert result.error is None
    assert accounts_of(sandbox) == {"old@example.com": None, "new@example.com": "Acme"}

    config["streams"] = {"people": {"mode": "update"}}
    result = run_target(config, people([{"email": "nobody@example.com", "company": "Acme"}]))

    assert result.error is None  # no person was created, so no link is missing either
    assert sandbox.store.find_person("nobody@example.com") is None
    assert result.target.run.report.counts["people"]["links_failed"] == 0


def test_an_ortto_account_id_ortto_does_not_know_is_an_invalid_link(sandbox, config, tmp_path):
    config["on_invalid_record"] = "reject"
    schema = {"email": {"type": "string"}, "ortto_account_id": {"type": ["string", "null"]}}
    unknown = "10" + "ab" * 11

    result = run_target(
        config, people([{"email": "a@example.com", "ortto_account_id": unknown}], schema=schema)
    )

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": None}
    (rejected,) = rejected_records(tmp_path)
    assert "Ortto refused" in rejected["reason"] and unknown in rejected["reason"]


def test_two_people_streams_share_one_lookup_per_value(sandbox, config):
    seed_account(sandbox, "Acme")
    messages = [
        *people([{"email": "a@example.com", "company": "Acme"}], stream="people"),
        *people([{"email": "b@example.com", "company": "Acme"}], stream="contacts"),
    ]

    result = run_target(config, messages)

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": "Acme", "b@example.com": "Acme"}
    assert len([r for r in sandbox.requests if r.path == "/v1/accounts/get"]) == 1


def test_no_state_is_emitted_past_a_link_ortto_did_not_take(sandbox, config):
    acme, globex = seed_account(sandbox, "Acme"), seed_account(sandbox, "Globex")
    config["max_retries"] = 0
    schema = {"email": {"type": "string"}, "ortto_account_id": {"type": ["string", "null"]}}
    rows = [{"email": "a@example.com", "ortto_account_id": acme}]
    assert run_target(config, people(rows, schema=schema)).error is None
    # The second run sends only the move: the person is unchanged, the account an Ortto ID.
    rows[0]["ortto_account_id"] = globex
    before = len(sandbox.requests)

    result = run_target(
        config,
        [*people(rows, schema=schema), state_message("past the link")],
        after_first_schema=lambda: sandbox.fail_next(1, 503),
    )

    assert result.error is not None
    assert result.states == []
    sent = [(r.path, r.status) for r in sandbox.requests[before:] if "/contacts/" in r.path]
    assert sent == [(REMOVE, 503)]  # the first link call failed; nothing after it was sent
    assert accounts_of(sandbox) == {"a@example.com": "Acme"}

    config["max_retries"] = 3
    assert run_target(config, people(rows, schema=schema)).error is None
    assert accounts_of(sandbox) == {"a@example.com": "Globex"}  # the next run resends it


def test_people_merged_by_ortto_person_id_need_no_lookup(sandbox, config):
    seed_account(sandbox, "Acme")
    person_id = sandbox.store.merge("person", {"people": [person_row("a@example.com")]})
    person_id = person_id["people"][0]["person_id"]
    schema = {"ortto_person_id": {"type": "string"}, "company": {"type": ["string", "null"]}}
    config["streams"] = {"people": {"merge_by": ["ortto_person_id"]}}
    config["baseline"] = True  # the ledger knows the person, without an ID
    assert run_target(config, people([{"ortto_person_id": person_id}], schema=schema)).error is None
    config["baseline"] = False

    rows = [{"ortto_person_id": person_id, "company": "Acme"}]
    result = run_target(config, people(rows, schema=schema))

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": "Acme"}
    assert [r for r in sandbox.requests if r.path == "/v1/person/get"] == []


def test_the_cap_counts_people_linked_in_earlier_runs(sandbox, config, tmp_path):
    config["on_invalid_record"] = "reject"
    rows = [{"email": f"p{i}@example.com", "company": "Acme"} for i in range(2999)]
    assert run_target(config, [*orgs(["Acme"]), *people(rows)]).error is None
    more = [{"email": f"q{i}@example.com", "company": "Acme"} for i in range(2)]

    result = run_target(config, [*orgs(["Acme"]), *people(more)])

    assert result.error is None
    assert list(accounts_of(sandbox).values()).count("Acme") == 3000
    (rejected,) = rejected_records(tmp_path)
    assert rejected["record"]["email"] == "q1@example.com" and "3,000" in rejected["reason"]


def test_account_link_on_a_stream_that_is_not_people_is_a_config_error(sandbox, config, tmp_path):
    config["streams"] = {"organizations": {"account_link": {"column": "name"}}}

    done = run_cli(config, orgs(["Acme"]), tmp_path)

    assert done.returncode != 0
    assert "streams.organizations.account_link' is for people streams, not account" in done.stderr
    assert sandbox.requests == []


def test_an_account_merged_after_a_miss_is_found_later_in_the_run(sandbox, config, tmp_path):
    sandbox.store.add_audience("Newsletter")
    config.update(on_invalid_record="reject", batch_size=1, max_concurrency=1)
    config["streams"] = {"audience_members": {"audience": "Newsletter"}}
    messages = [
        *people([{"email": "a@example.com", "company": "Acme"}]),
        # Two members fill the audience sink (2 records): its drain sends the people and
        # their links first, before Acme is read.
        schema_message("audience_members", {"email": {"type": "string"}}),
        *record_messages("audience_members", [{"email": "a@example.com"}] * 2),
        *orgs(["Acme"]),
        *record_messages("people", [{"email": "b@example.com", "company": "Acme"}]),
    ]

    result = run_target(config, messages)

    assert result.error is None
    assert accounts_of(sandbox) == {"a@example.com": None, "b@example.com": "Acme"}
    (rejected,) = rejected_records(tmp_path)
    assert rejected["record"]["email"] == "a@example.com"
    assert len([r for r in sandbox.requests if r.path == "/v1/accounts/get"]) == 1

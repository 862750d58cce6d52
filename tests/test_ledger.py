"""The sync ledger: unchanged records are skipped, deletes and snapshot leavers removed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import record_messages, run_target, schema_message, state_message

from target_ortto.deletes import TooManyDeletesError
from target_ortto.ledger import Ledger, LedgerError, claims, instance_id, ledger_key, payload_hash
from target_ortto.ledger.store import SCHEMA_VERSION

INSTANCE = instance_id("https://api.ap3api.com", "a-key")
PEOPLE = {
    "email": {"type": "string"},
    "first_name": {"type": ["string", "null"]},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}


def people(count: int, changed: int = 0) -> list[dict]:
    return [
        {"email": f"p{i}@example.com", "first_name": "New" if i < changed else f"P{i}"}
        for i in range(count)
    ]


def messages(records: list[dict], stream: str = "people") -> list[dict]:
    return [
        schema_message(stream, PEOPLE),
        *record_messages(stream, records),
        state_message({"done": len(records)}),
    ]


def merged(sandbox, since: int = 0) -> int:
    """People sent in person merges since request number `since`."""
    return sum(r.records for r in sandbox.requests[since:] if r.path == "/v1/person/merge")


def test_four_runs_send_only_what_changed_and_remove_what_left(sandbox, config):
    config["streams"] = {"people": {"full_snapshot": True, "delete_behavior": "delete"}}

    run_target(config, messages(people(500)))
    assert merged(sandbox) == 500

    mark = len(sandbox.requests)
    result = run_target(config, messages(people(500)))
    assert merged(sandbox, mark) == 0
    assert result.states == [{"done": 500}]

    mark = len(sandbox.requests)
    run_target(config, messages(people(500, changed=5)))
    assert merged(sandbox, mark) == 5
    assert sandbox.store.find_person("p0@example.com").fields["str::first"] == "New"

    mark = len(sandbox.requests)
    run_target(config, messages(people(500, changed=5)[10:]))
    assert merged(sandbox, mark) == 0
    emails = {p.fields["str::email"] for p in sandbox.store.people.values()}
    assert emails == {f"p{i}@example.com" for i in range(10, 500)}


def test_a_run_that_would_delete_more_than_max_deletes_deletes_nothing(sandbox, config):
    config["streams"] = {"people": {"full_snapshot": True, "delete_behavior": "delete"}}
    run_target(config, messages(people(500)))

    result = run_target(config, messages(people(210)))

    assert isinstance(result.error, TooManyDeletesError)
    assert "290" in str(result.error) and "max_deletes=100" in str(result.error)
    assert len(sandbox.store.people) == 500
    assert result.states == []


def test_raising_max_deletes_lets_the_same_run_through(sandbox, config):
    config["streams"] = {
        "people": {"full_snapshot": True, "delete_behavior": "archive", "max_deletes": 300}
    }
    run_target(config, messages(people(500)))

    result = run_target(config, messages(people(210)))

    assert result.error is None
    archived = [p for p in sandbox.store.people.values() if p.archived]
    assert len(archived) == 290


def test_records_deleted_at_the_source_are_archived(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "archive"}}
    run_target(config, messages(people(3)))
    gone = {"email": "p1@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}

    result = run_target(config, messages([gone]))

    assert result.error is None
    archived = {p.fields["str::email"] for p in sandbox.store.people.values() if p.archived}
    assert archived == {"p1@example.com"}


def test_deleted_records_are_looked_up_when_the_ledger_has_no_id(sandbox, config, tmp_path):
    config["streams"] = {"people": {"delete_behavior": "delete"}}
    run_target(config, messages(people(3)))
    config["ledger_path"] = str(tmp_path / "fresh.sqlite")
    gone = {"email": "p2@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}

    run_target(config, messages([gone]))

    assert {p.fields["str::email"] for p in sandbox.store.people.values()} == {
        "p0@example.com",
        "p1@example.com",
    }


def test_clear_empties_mapped_fields_and_never_creates(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "clear"}}
    run_target(config, messages(people(2)))
    deleted = [
        {"email": f"p{i}@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"} for i in (1, 7)
    ]

    run_target(config, messages(deleted))

    assert "str::first" not in sandbox.store.find_person("p1@example.com").fields
    assert sandbox.store.find_person("p0@example.com").fields["str::first"] == "P0"
    assert sandbox.store.find_person("p7@example.com") is None


def test_clearing_an_account_never_creates_one_nor_sends_people_only_options(sandbox, config):
    config["streams"] = {"accounts": {"delete_behavior": "clear"}}
    schema = {
        "name": {"type": "string"},
        "industry": {"type": ["string", "null"]},
        "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
    }
    run_target(
        config,
        [
            schema_message("accounts", schema),
            *record_messages("accounts", [{"name": "Acme", "industry": "Tools"}]),
        ],
    )
    sandbox.store.merge(
        "account", {"accounts": [{"fields": {"str:o:name": "Beta"}}], "merge_by": ["str:o:name"]}
    )
    gone = [{"name": n, "_sdc_deleted_at": "2026-11-01T00:00:00Z"} for n in ("Acme", "Beta", "Zed")]
    mark = len(sandbox.requests)

    result = run_target(
        config, [schema_message("accounts", schema), *record_messages("accounts", gone)]
    )

    assert result.error is None
    assert "str:o:industry" not in sandbox.store.find_account("Acme").fields
    assert sandbox.store.find_account("Zed") is None
    merges = [r.body for r in sandbox.requests[mark:] if r.path == "/v1/accounts/merge"]
    assert merges and all("skip_non_existing" not in body for body in merges)


def test_a_scheduled_archive_is_deleted_in_a_later_run_not_before(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "delete"}}
    run_target(config, messages(people(3)))
    gone = {"email": "p1@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}
    sandbox.store.schedule_archives = True

    first = run_target(config, messages([gone]))

    assert first.error is None
    assert not [r for r in sandbox.requests if r.path == "/v1/person/delete"]
    assert sandbox.store.find_person("p1@example.com") is not None  # archive still to come
    sandbox.store.archive_scheduled()
    sandbox.store.schedule_archives = False

    second = run_target(config, messages([]))

    assert second.error is None
    assert [r.status for r in sandbox.requests if r.path == "/v1/person/delete"] == [200]
    emails = {p.fields["str::email"] for p in sandbox.store.people.values()}
    assert emails == {"p0@example.com", "p2@example.com"}


def test_clear_never_clears_a_consent_field(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "clear"}}
    schema = {**PEOPLE, "bol::p": {"type": ["boolean", "null"]}}
    opted_out = {"email": "p1@example.com", "first_name": "P1", "bol::p": False}
    run_target(config, [schema_message("people", schema), *record_messages("people", [opted_out])])
    gone = {"email": "p1@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}

    run_target(config, [schema_message("people", schema), *record_messages("people", [gone])])

    fields = sandbox.store.find_person("p1@example.com").fields
    assert "str::first" not in fields
    assert fields["bol::p"] is False


def test_with_delete_behavior_none_deleted_records_are_left_alone(sandbox, config):
    run_target(config, messages(people(2)))
    gone = {"email": "p1@example.com", "first_name": "X", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}

    result = run_target(config, messages([gone]))

    assert result.error is None
    person = sandbox.store.find_person("p1@example.com")
    assert not person.archived and person.fields["str::first"] == "P1"


def test_activate_version_marks_a_full_table_whose_leavers_are_removed(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "archive"}}
    run_target(config, messages(people(5)))

    run_target(
        config,
        [
            schema_message("people", PEOPLE),
            *record_messages("people", people(3)),
            {"type": "ACTIVATE_VERSION", "stream": "people", "version": 2},
        ],
    )

    archived = {p.fields["str::email"] for p in sandbox.store.people.values() if p.archived}
    assert archived == {"p3@example.com", "p4@example.com"}


def test_audience_snapshot_unsubscribes_people_who_left(sandbox, config):
    audience = sandbox.store.add_audience("Newsletter")
    config["streams"] = {"audience_members": {"audience": "Newsletter", "full_snapshot": True}}
    members = {"email": {"type": "string"}}
    run_target(config, messages(people(4)))

    def run(emails: list[str]) -> None:
        run_target(
            config,
            [
                schema_message("audience_members", members),
                *record_messages("audience_members", [{"email": e} for e in emails]),
            ],
        )

    run(["p0@example.com", "p1@example.com", "p2@example.com"])
    run(["p0@example.com"])

    states = sandbox.store.subscriptions(audience)
    by_email = {
        sandbox.store.people[pid].fields["str::email"]: s.subscribed for pid, s in states.items()
    }
    assert by_email == {
        "p0@example.com": True,
        "p1@example.com": False,
        "p2@example.com": False,
    }


# Of a failed drain's requests, how many go out at all is a race: once one has failed,
# those no worker picked up yet are not sent (`OrttoClient.submit_all`). So the faults must
# not depend on it: the first request to reach the sandbox succeeds, the second fails.
FIRST_TAKEN_THEN_FAILED = 15


@pytest.mark.parametrize("concurrency", [1, 8])
def test_after_a_failed_run_the_rerun_resends_exactly_what_ortto_did_not_take(
    sandbox, config, concurrency
):
    config.update(max_retries=0, batch_size=10, max_concurrency=concurrency)
    failed = run_target(
        config,
        messages(people(30)),
        after_first_schema=lambda: sandbox.set_faults(error_rate=0.5, seed=FIRST_TAKEN_THEN_FAILED),
    )
    sent = [r for r in sandbox.requests if r.path == "/v1/person/merge"]
    taken = sum(r.records for r in sent if r.status == 200)
    sandbox.set_faults(error_rate=0)
    mark = len(sandbox.requests)

    result = run_target(config, messages(people(30)))

    assert failed.error is not None and failed.states == []
    assert 0 < taken < 30
    if concurrency == 1:  # the third request was still queued when the second failed
        assert [r.status == 200 for r in sent] == [True, False]
    assert result.error is None
    assert merged(sandbox, mark) == 30 - taken
    assert len(sandbox.store.people) == 30


def test_skip_unchanged_off_resends_everything(sandbox, config):
    config["skip_unchanged"] = False
    run_target(config, messages(people(20)))
    mark = len(sandbox.requests)

    run_target(config, messages(people(20)))

    assert merged(sandbox, mark) == 20


def test_ledger_remembers_hashes_ids_and_runs(tmp_path):
    first = Ledger(str(tmp_path / "l.sqlite"), INSTANCE, run_id="r1")
    key = ledger_key(("str::email", "a@b.co"))
    first.acknowledge("people", [(key, payload_hash({"a": 1}), "00ab")])
    first.close()
    second = Ledger(str(tmp_path / "l.sqlite"), INSTANCE, run_id="r2")

    assert second.unchanged("people", {key: payload_hash({"a": 1})}) == {key}
    assert second.unchanged("people", {key: payload_hash({"a": 2})}) == set()
    assert second.ortto_id("people", key) == "00ab"
    assert second.not_seen("people") == []


def test_ledger_lists_keys_not_seen_this_run_and_forgets(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite"), INSTANCE, run_id="r1")
    ledger.acknowledge("people", [("a", "h", None), ("b", "h", "00b")])
    later = Ledger(str(tmp_path / "l.sqlite"), INSTANCE, run_id="r2")
    later.unchanged("people", {"a": "h"})

    assert later.not_seen("people") == [("b", "00b")]
    later.forget("people", ["b"])
    assert later.not_seen("people") == []


def test_payload_hash_ignores_key_order_but_not_values():
    assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": None})


@pytest.mark.parametrize("count", [1, 1200])
def test_ledger_handles_batches_larger_than_sqlite_parameter_limits(tmp_path, count):
    ledger = Ledger(str(tmp_path / "l.sqlite"), INSTANCE)
    entries = [(f"k{i}", "h", None) for i in range(count)]
    ledger.acknowledge("s", entries)

    assert len(ledger.unchanged("s", {k: "h" for k, _, _ in entries})) == count


def test_activate_version_before_the_records_removes_nothing_that_is_sent(sandbox, config):
    config["streams"] = {"people": {"delete_behavior": "archive"}}
    run_target(config, messages(people(3)))

    result = run_target(
        config,
        [
            schema_message("people", PEOPLE),
            {"type": "ACTIVATE_VERSION", "stream": "people", "version": 2},
            *record_messages("people", people(2)),
            {"type": "ACTIVATE_VERSION", "stream": "people", "version": 2},
        ],
    )

    assert result.error is None
    archived = {p.fields["str::email"] for p in sandbox.store.people.values() if p.archived}
    assert archived == {"p2@example.com"}
    assert len(sandbox.store.people) == 3


def test_a_record_deleted_then_back_in_the_same_run_is_not_removed(sandbox, config):
    config.update(batch_size=1, max_concurrency=1)
    config["streams"] = {"people": {"delete_behavior": "archive"}}
    run_target(config, messages(people(1)))
    deleted = {"email": "p0@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}
    back = {"email": "p0@example.com", "first_name": "Back"}
    other = [{"email": f"o{i}@example.com"} for i in range(3)]

    run_target(config, messages([deleted, other[0], back, other[1], other[2]]))

    person = sandbox.store.find_person("p0@example.com")
    assert not person.archived and person.fields["str::first"] == "Back"


def test_a_snapshot_row_rejected_this_run_has_not_left(sandbox, config):
    config["streams"] = {"people": {"full_snapshot": True, "delete_behavior": "delete"}}
    config["on_invalid_record"] = "reject"
    schema = {**PEOPLE, "phone": {"type": ["string", "null"]}}
    first = [{"email": f"p{i}@example.com", "phone": "+61 412 345 678"} for i in range(3)]
    run_target(config, [schema_message("people", schema), *record_messages("people", first)])
    second = [*first[:2], {"email": "p2@example.com", "phone": "not a phone"}]

    result = run_target(
        config, [schema_message("people", schema), *record_messages("people", second)]
    )

    assert result.error is None
    assert len(sandbox.store.people) == 3


def test_a_snapshot_row_whose_first_merge_key_was_filled_in_has_not_left(sandbox, config):
    schema = {**PEOPLE, "email": {"type": ["string", "null"]}, "external_id": {"type": "string"}}
    config["streams"] = {
        "people": {
            "merge_by": ["email", "external_id"],
            "full_snapshot": True,
            "delete_behavior": "archive",
        }
    }

    def run(record: dict) -> None:
        run_target(config, [schema_message("people", schema), *record_messages("people", [record])])

    run({"email": None, "external_id": "X1"})
    run({"email": "a@example.com", "external_id": "X1"})

    (person,) = sandbox.store.people.values()
    assert not person.archived
    assert person.fields["str::email"] == "a@example.com"


def test_dry_run_of_a_snapshot_plans_no_removal_of_unchanged_rows(sandbox, config, caplog):
    config["streams"] = {"people": {"full_snapshot": True, "delete_behavior": "delete"}}
    run_target(config, messages(people(5)))
    config["dry_run"] = True

    with caplog.at_level("INFO"):
        result = run_target(config, messages(people(4)))

    assert result.error is None and result.states == []
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary")]
    assert summary == ["Summary: Stream 'people': 4 read; unchanged 4, would remove 1"]
    assert not any(p.archived for p in sandbox.store.people.values())


def test_update_mode_records_ortto_ignored_are_sent_again_next_run(sandbox, config):
    config["streams"] = {"people": {"mode": "update"}}
    run_target(config, messages([{"email": "later@example.com", "first_name": "Later"}]))
    sandbox.store.merge("person", {"people": [{"fields": {"str::email": "later@example.com"}}]})

    run_target(config, messages([{"email": "later@example.com", "first_name": "Later"}]))

    assert sandbox.store.find_person("later@example.com").fields["str::first"] == "Later"


def test_rows_of_another_instance_are_invisible_to_this_one(tmp_path):
    path = str(tmp_path / "l.sqlite")
    first = Ledger(path, INSTANCE, run_id="r1")
    first.acknowledge("people", [("a", "h", "00a")])
    first.queue_deletions("people", [("b", None)])

    for other in (
        instance_id("https://api.ap3api.com", "another-key"),
        instance_id("https://api.eu.ap3api.com", "a-key"),
    ):
        ledger = Ledger(path, other, run_id="r2")
        assert ledger.unchanged("people", {"a": "h"}) == set()
        assert ledger.known("people", ["a"]) == set()
        assert ledger.ortto_id("people", "a") is None
        assert ledger.not_seen("people") == []
        assert ledger.queued_deletions("people") == []
        ledger.forget("people", ["a", "b"])
    later = Ledger(path, INSTANCE, run_id="r3")
    assert later.not_seen("people") == [("a", "00a")]
    assert later.queued_deletions("people") == [("b", None)]


def test_an_instance_id_is_the_url_and_a_fingerprint_that_is_not_the_key():
    key = "pk-3f9a0c7d5e1b4a2f"
    made = instance_id("https://api.eu.ap3api.com/", key)

    assert made.startswith("https://api.eu.ap3api.com ")
    assert key not in made and hashlib.sha256(key.encode()).hexdigest()[:16] not in made
    assert made == instance_id("https://api.eu.ap3api.com", key)
    assert made != instance_id("https://api.eu.ap3api.com", key + "x")


def test_an_unversioned_ledger_is_migrated_and_its_rows_go_to_the_instance_opening_it(tmp_path):
    path = tmp_path / "l.sqlite"
    with sqlite3.connect(path) as db:  # the ledger of target-ortto 0.2
        db.executescript(
            """CREATE TABLE records (stream TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL,
                   ortto_id TEXT, run_id TEXT NOT NULL, PRIMARY KEY (stream, key)) WITHOUT ROWID;
               CREATE TABLE deletions (stream TEXT NOT NULL, key TEXT NOT NULL, ortto_id TEXT,
                   PRIMARY KEY (stream, key)) WITHOUT ROWID;
               INSERT INTO records VALUES ('people', 'a', 'h', '00a', 'r0');
               INSERT INTO deletions VALUES ('people', 'b', '00b');"""
        )
    db.close()

    ledger = Ledger(str(path), INSTANCE, run_id="r1")
    elsewhere = Ledger(str(path), instance_id("https://api.au.ap3api.com", "k"), run_id="r2")

    assert ledger.unchanged("people", {"a": "h"}) == {"a"}
    assert ledger.queued_deletions("people") == [("b", "00b")]
    assert elsewhere.known("people", ["a"]) == set()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
    db.close()


def test_a_stream_claimed_by_a_live_run_is_refused_after_the_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "WAIT_SECONDS", 0.3)
    path = str(tmp_path / "l.sqlite")
    Ledger(path, INSTANCE, run_id="r1").claim("people")
    second = Ledger(path, INSTANCE, run_id="r2")

    with pytest.raises(LedgerError, match=r"Stream 'people' is being synced by another run"):
        second.claim("people")
    second.claim("accounts")  # other streams, and other instances, are free
    Ledger(path, instance_id("https://api.eu.ap3api.com", "k"), run_id="r3").claim("people")


def test_a_claim_released_within_the_wait_is_taken(tmp_path):
    path = str(tmp_path / "l.sqlite")
    first = Ledger(path, INSTANCE, run_id="r1")
    first.claim("people")
    threading.Timer(0.3, first.close).start()

    Ledger(path, INSTANCE, run_id="r2").claim("people")


@pytest.mark.parametrize(
    ("host", "alive", "age"),
    [
        (claims.HOST, False, 0),  # its process ended (killed, crashed)
        ("another-host", True, claims.STALE_SECONDS + 1),  # not refreshed for too long
    ],
)
def test_a_claim_whose_run_is_gone_is_free(tmp_path, host, alive, age):
    path = str(tmp_path / "l.sqlite")
    Ledger(path, INSTANCE, run_id="r1")
    pid = os.getpid() if alive else ended_pid()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO claims VALUES (?, 'people', 'r0', ?, ?, ?)",
            (INSTANCE, host, pid, time.time() - age),
        )
    db.close()

    Ledger(path, INSTANCE, run_id="r2").claim("people")


def ended_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_a_run_refreshes_its_claims_while_it_lasts(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "HEARTBEAT_SECONDS", 0.05)
    ledger = Ledger(str(tmp_path / "l.sqlite"), INSTANCE, run_id="r1")
    ledger.claim("people")
    with sqlite3.connect(ledger.path) as db:
        db.execute("UPDATE claims SET heartbeat = 0")
    db.close()
    time.sleep(0.3)

    with sqlite3.connect(ledger.path) as db:
        (beat,) = db.execute("SELECT heartbeat FROM claims").fetchone()
    db.close()
    assert beat > time.time() - 5
    ledger.close()
    with sqlite3.connect(ledger.path) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone() == (0,)
    db.close()


def test_a_baseline_run_sends_nothing_and_the_next_run_sends_only_changes(sandbox, config):
    config["streams"] = {"people": {"full_snapshot": True, "delete_behavior": "delete"}}
    seed = {"people": [{"fields": {"str::email": f"p{i}@example.com"}} for i in range(5)]}
    sandbox.store.merge("person", {**seed, "merge_by": ["str::email"]})
    gone = {"email": "p4@example.com", "_sdc_deleted_at": "2026-11-01T00:00:00Z"}

    baseline = run_target({**config, "baseline": True}, messages([*people(4), gone]))

    assert baseline.error is None and baseline.states == [{"done": 5}]
    writes = [r for r in sandbox.requests if not r.path.endswith("/get")]
    assert writes == []
    assert baseline.target.run.report.counts["people"]["baselined"] == 4
    assert len(sandbox.store.people) == 5  # nothing removed either
    mark = len(sandbox.requests)

    rerun = run_target(config, messages(people(4, changed=1)))

    assert rerun.error is None
    merges = [r.body for r in sandbox.requests[mark:] if r.path == "/v1/person/merge"]
    sent = {p["fields"]["str::email"] for body in merges for p in body["people"]}
    assert sent == {"p0@example.com"}
    assert sandbox.store.find_person("p0@example.com").fields["str::first"] == "New"


def test_a_person_only_baselined_is_never_created_subscribed(sandbox, config):
    run_target({**config, "baseline": True}, messages(people(1)))

    run_target(config, messages(people(1, changed=1)))  # not in Ortto after all

    assert sandbox.store.find_person("p0@example.com").fields["bol::p"] is False

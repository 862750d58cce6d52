"""A ledger shared by the wrong runs, or unusable: records are never skipped for an instance
that never got them, overlapping runs never archive live people, and a bad file stops the
run with a message before anything is sent."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, record_messages, run_cli, run_target, schema_message, state_message

from target_ortto.ledger import LedgerError, claims, store
from target_ortto.sandbox import Sandbox
from target_ortto.target import TargetOrtto

PEOPLE = {"email": {"type": "string"}, "first_name": {"type": ["string", "null"]}}
SNAPSHOT = {"people": {"full_snapshot": True, "delete_behavior": "archive"}}


def people(count: int) -> list[dict[str, Any]]:
    return [{"email": f"p{i}@example.com", "first_name": f"P{i}"} for i in range(count)]


def messages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        schema_message("people", PEOPLE),
        *record_messages("people", records),
        state_message({"done": len(records)}),
    ]


def lines(items: list[dict[str, Any]]) -> io.StringIO:
    return io.StringIO("".join(json.dumps(m) + "\n" for m in items))


def merged(sandbox: Sandbox) -> int:
    return sum(r.records for r in sandbox.requests if r.path == "/v1/person/merge")


def archived(sandbox: Sandbox) -> set[str]:
    return {p.fields["str::email"] for p in sandbox.store.people.values() if p.archived}


@pytest.fixture
def other_instance() -> Iterator[Sandbox]:
    """Another Ortto instance: its own URL and key."""
    with Sandbox(api_key="other-key-8d2a71") as other:
        yield other


# --- 1. a ledger describes one Ortto instance -------------------------------------------


def test_the_same_ledger_pointed_at_another_instance_sends_everything_there(
    sandbox, config, other_instance
):
    config["streams"] = SNAPSHOT
    run_target(config, messages(people(5)))
    elsewhere = {**config, "api_url": other_instance.url, "api_key": other_instance.api_key}

    there = run_target(elsewhere, messages(people(3)))

    assert there.error is None and there.states == [{"done": 3}]
    assert merged(other_instance) == 3
    assert len(other_instance.store.people) == 3
    assert archived(other_instance) == set()  # p3, p4 never were there: nothing left it
    back = run_target(config, messages(people(5)))
    assert back.error is None
    assert merged(sandbox) == 5  # all still unchanged there
    assert archived(sandbox) == set()


def test_the_ledger_file_holds_no_api_key(sandbox, config, tmp_path):
    run_target(config, messages(people(2)))

    for path in tmp_path.glob("ledger.sqlite*"):
        assert API_KEY.encode() not in path.read_bytes(), path.name


# --- 2. two runs of one stream never corrupt each other -----------------------------------


def started(config: dict[str, Any], records: list[dict[str, Any]]) -> TargetOrtto:
    """A run that has sent `records` of a people snapshot, and has not finished."""
    target = TargetOrtto(config=config)
    with redirect_stdout(io.StringIO()):
        target.process_lines(
            lines([schema_message("people", PEOPLE), *record_messages("people", records)])
        )
        target.drain_all()
    return target


def test_a_second_run_of_a_stream_in_use_stops_and_no_live_person_is_archived(
    sandbox, config, monkeypatch
):
    monkeypatch.setattr(claims, "WAIT_SECONDS", 0.5)
    config["streams"] = SNAPSHOT
    run_target(config, messages(people(5)))
    first = started(config, people(5))

    second = run_target(config, messages(people(5)))
    with redirect_stdout(io.StringIO()):
        first.listen(lines([]))

    assert isinstance(second.error, LedgerError)
    assert "Stream 'people' is being synced by another run" in str(second.error)
    assert config["ledger_path"] in str(second.error)
    assert second.states == []
    assert archived(sandbox) == set()


def test_a_claim_left_by_a_killed_run_does_not_block_the_next(sandbox, config, tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    killed = subprocess.Popen(
        [sys.executable, "-m", "target_ortto", "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    killed.stdin.write(json.dumps(schema_message("people", PEOPLE)) + "\n")
    killed.stdin.flush()
    deadline = time.monotonic() + 60
    while not claimed(Path(config["ledger_path"])):
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.1)
    killed.kill()
    killed.wait()
    killed.stdin.close()

    result = run_target(config, messages(people(2)))

    assert result.error is None and result.states == [{"done": 2}]


def claimed(ledger: Path) -> bool:
    if not ledger.exists():
        return False
    with sqlite3.connect(ledger) as db:
        try:
            return db.execute("SELECT count(*) FROM claims").fetchone()[0] > 0
        except sqlite3.OperationalError:  # the tables are being created
            return False


# --- an unusable ledger is a message, before anything is sent ----------------------------


def corrupt(path: Path) -> None:
    path.write_bytes(b"these are not the bytes of a database\n" * 200)


def directory(path: Path) -> None:
    path.mkdir()


def newer(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")


def foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (corrupt, "is not a SQLite database"),
        (directory, "is a directory: set ledger_path to a file"),
        (newer, "was written by a newer target-ortto (ledger schema 99"),
        (foreign, "is a SQLite database of something else (tables invoices)"),
    ],
)
def test_an_unusable_ledger_stops_the_cli_before_anything_is_sent(
    sandbox, config, tmp_path, spoil, says
):
    spoil(Path(config["ledger_path"]))

    done = run_cli(config, messages(people(2)), tmp_path)

    assert done.returncode == 1
    assert says in done.stderr and config["ledger_path"] in done.stderr
    assert done.stdout == "" and sandbox.requests == []


@pytest.mark.parametrize(
    "place",
    [
        pytest.param(lambda tmp: tmp / "a-file" / "ledger.sqlite", id="under-a-file"),
        pytest.param(lambda tmp: Path("/proc/target-ortto-ledger.sqlite"), id="read-only-place"),
    ],
)
def test_a_ledger_that_cannot_be_created_stops_the_run_before_anything_is_sent(
    sandbox, config, tmp_path, place
):
    (tmp_path / "a-file").write_text("")
    config["ledger_path"] = str(place(tmp_path))

    result = run_target(config, messages(people(2)))

    assert isinstance(result.error, LedgerError)
    assert "cannot be opened or created" in str(result.error)
    assert sandbox.requests == []


def test_a_locked_ledger_stops_the_run_before_anything_is_sent(sandbox, config, monkeypatch):
    monkeypatch.setattr(store, "BUSY_SECONDS", 0.2)
    run_target(config, messages(people(2)))
    mark = len(sandbox.requests)
    holder = sqlite3.connect(config["ledger_path"], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_target(config, messages(people(3)))
    finally:
        holder.close()

    assert isinstance(result.error, LedgerError)
    assert "stayed locked by another process for 0.2 s" in str(result.error)
    assert result.states == [] and len(sandbox.requests) == mark


def test_a_ledger_locked_mid_run_stops_it_with_a_message_and_no_state(sandbox, config, monkeypatch):
    monkeypatch.setattr(store, "BUSY_SECONDS", 0.2)
    holder = sqlite3.connect(config["ledger_path"], isolation_level=None)

    result = run_target(
        config, messages(people(3)), after_first_schema=lambda: holder.execute("BEGIN EXCLUSIVE")
    )
    holder.close()

    assert isinstance(result.error, LedgerError)
    assert "stayed locked" in str(result.error)
    assert result.states == []


def test_a_dry_run_claims_nothing_so_it_runs_beside_a_real_run(sandbox, config, monkeypatch):
    monkeypatch.setattr(claims, "WAIT_SECONDS", 0.5)
    first = started(config, people(2))

    dry = run_target({**config, "dry_run": True}, messages(people(3)))
    with redirect_stdout(io.StringIO()):
        first.listen(lines([]))

    assert dry.error is None
    assert merged(sandbox) == 2

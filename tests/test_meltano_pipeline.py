"""End to end as users run it: `meltano run` with a real tap from PyPI (tap-jsonl)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_KEY, REPO, demo_records

MELTANO = Path(sys.executable).parent / "meltano"


def meltano(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MELTANO), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def meltano_env() -> dict[str, str]:
    """Plugins installed once (`meltano install` is a no-op when they already are)."""
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    installed = meltano("install", env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return env


def test_meltano_run_loads_the_sample_people_and_organizations(sandbox, meltano_env, tmp_path):
    env = {
        **meltano_env,
        "TARGET_ORTTO_API_KEY": API_KEY,
        "TARGET_ORTTO_API_URL": sandbox.url,
        "TARGET_ORTTO_LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
    }

    done = meltano(
        "run",
        "--full-refresh",
        "tap-organizations",
        "target-ortto",
        "tap-people",
        "target-ortto",
        env=env,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert len(sandbox.store.people) == 250
    assert len(sandbox.store.accounts) == 120
    assert sandbox.store.find_person("person5@example.com").fields["str::first"] == "Renamed"
    # Each person is linked to the account their company column names (a few name none).
    names = {aid: a.fields["str:o:name"] for aid, a in sandbox.store.accounts.items()}
    rows = {r["email"]: r["company"] for r in demo_records("people")}
    linked = {
        p.fields["str::email"]: names.get(p.fields.get("idt::o"))
        for p in sandbox.store.people.values()
    }
    assert linked == rows and sum(v is None for v in linked.values()) == 19
    assert API_KEY not in done.stdout + done.stderr


def test_meltano_run_fails_loudly_on_a_wrong_key(sandbox, meltano_env):
    env = {
        **meltano_env,
        "TARGET_ORTTO_API_KEY": "wrong-key-1234",
        "TARGET_ORTTO_API_URL": sandbox.url,
    }

    done = meltano("run", "--full-refresh", "tap-people", "target-ortto", env=env)

    assert done.returncode != 0
    assert "Ortto refused the API key" in done.stderr
    assert "wrong-key-1234" not in done.stdout + done.stderr
    assert not sandbox.store.people


def test_meltano_run_lands_the_sample_deal_stage_changes_as_activities(
    sandbox, meltano_env, tmp_path
):
    env = {
        **meltano_env,
        "TARGET_ORTTO_API_KEY": API_KEY,
        "TARGET_ORTTO_API_URL": sandbox.url,
        "TARGET_ORTTO_LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
    }

    done = meltano("run", "--full-refresh", "tap-events", "target-ortto", env=env)

    assert done.returncode == 0, done.stderr[-3000:]
    events = sandbox.store.snapshot()["activities"]
    assert len(events) == 300
    assert {e["activity_id"] for e in events} == {"act:cm:deal-stage-changed"}
    assert sandbox.store.snapshot()["subscribers"] == []
    person = sandbox.store.find_person("person47@example.com")
    first = sandbox.store.activities_of(person.id)[0]
    assert first["key"] == "1" and first["created"] == "2026-10-16T09:08:00Z"
    assert first["attributes"]["str:cm:stage"] == "Qualified"

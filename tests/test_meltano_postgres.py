"""End to end as a data engineer runs it: `meltano run tap-postgres target-ortto`, with
meltanolabs' tap-postgres from PyPI reading the suite's real PostgreSQL server, into the
Ortto sandbox. The Meltano project is tests/meltano_postgres/ (its own, so the demo does not
install tap-postgres); its meltano.yml shows the settings such a table needs: flattening
with `flattening_max_depth`, a stream map that sends the jsonb column as JSON text,
`field_types` for a long text column, and `invalid_phones: drop`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import API_KEY, REPO, assert_clean, run_cli

MELTANO = Path(sys.executable).parent / "meltano"
PROJECT = REPO / "tests" / "meltano_postgres"
BIO = "Collects first editions; " * 20  # 500 characters: more than a text field's 255

CUSTOMERS = f"""
CREATE TABLE customers (
    id integer PRIMARY KEY,
    email text NOT NULL,
    first_name text,
    country text,
    phone text,
    lifetime_value numeric(12, 2),
    signup_date date,
    last_seen_at timestamptz,
    tags text[],
    plans text[],
    preferences jsonb,
    bio text
);
INSERT INTO customers VALUES
 (1, 'ava@example.com', 'Ava', 'AU', '0412 345 678', 1234.50, '2024-03-01',
  '2025-06-01 10:30:00+10', '{{vip,beta}}', '{{pro,data}}',
  '{{"newsletter": true, "topics": ["ai"]}}', '{BIO}'),
 (2, 'ben@example.com', 'Ben', 'United States', '(415) 555-2671', 99.99, '2023-11-15',
  '2025-06-02 08:00:00-07', '{{beta}}', '{{pro}}', '[1, 2]', 'Short.'),
 (3, 'chloe@example.com', 'Chloé', 'gb', '020 7946 0958', NULL, '2022-01-31',
  NULL, '{{}}', NULL, NULL, NULL),
 (4, 'dieter@example.com', 'Dieter', 'Germany', '030 901820', 0, '2021-07-04',
  '2025-01-01 00:00:00+00', NULL, NULL, '"plain"', NULL),
 (5, 'eve@example.com', 'Eve', 'AU', '12', 10, NULL, NULL, '{{vip}}', '{{}}', '{{}}', NULL);
"""


def meltano(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MELTANO), *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def meltano_env() -> dict[str, str]:
    """tap-postgres and target-ortto installed once into tests/meltano_postgres/.meltano
    (later `meltano install`s find them there)."""
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    installed = meltano("install", env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return env


@pytest.fixture
def pipeline_env(meltano_env, postgres, sandbox, tmp_path) -> dict[str, str]:
    """The tap reads a fresh database holding `customers`; the target writes to the sandbox.
    Both connections come from the environment, as in a deployment."""
    database = postgres.new_database()
    postgres.psql(CUSTOMERS, database=database)
    return {
        **meltano_env,
        "TAP_POSTGRES_HOST": "127.0.0.1",
        "TAP_POSTGRES_PORT": str(postgres.port),
        "TAP_POSTGRES_USER": postgres.user,
        "TAP_POSTGRES_PASSWORD": "unused",  # trust authentication; the tap requires one
        "TAP_POSTGRES_DATABASE": database,
        "TARGET_ORTTO_API_KEY": API_KEY,
        "TARGET_ORTTO_API_URL": sandbox.url,
        "TARGET_ORTTO_LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
        "TARGET_ORTTO_REJECTED_RECORDS_PATH": str(tmp_path / "rejected.jsonl"),
    }


def person(sandbox, email: str) -> dict:
    found = sandbox.store.find_person(email)
    assert found is not None, email
    return found.fields | {"tags": sorted(found.tags)}


def test_meltano_run_tap_postgres_loads_a_realistic_customers_table(sandbox, pipeline_env):
    sandbox.store.add_custom_field(  # a multi-select field the Ortto instance already has
        "person", "sst:cm:plans", "Plans", "multi_select", values=["pro", "data", "team"]
    )

    done = meltano("run", "--full-refresh", "tap-postgres", "target-ortto", env=pipeline_env)

    output = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean(output)
    assert "5 read; created 5, phones_dropped 1" in output
    assert len(sandbox.store.people) == 5
    field_types = {f.id: f.display_type for f in sandbox.store.custom_fields("person")}
    assert field_types == {
        "sst:cm:plans": "multi_select",  # text[] -> JSON text -> field_map to sst:cm:plans
        "int:cm:id": "integer",
        "int:cm:lifetime-value": "decimal",  # numeric
        "dtz:cm:signup-date": "date",  # date
        "tme:cm:last-seen-at": "time",  # timestamptz
        "str:cm:preferences": "text",  # jsonb, through the stream map's json.dumps
        "txt:cm:bio": "large_text",  # field_types: {bio: large_text}
    }

    ava = person(sandbox, "ava@example.com")
    assert ava["tags"] == ["beta", "vip"]  # text[] -> flattened to JSON text -> tags
    assert ava["sst:cm:plans"] == ["pro", "data"]
    assert ava["phn::phone"] == {"c": "61", "n": "412345678"}  # national, country AU
    assert ava["int:cm:lifetime-value"] == 1234500  # Ortto decimals are thousandths
    assert ava["dtz:cm:signup-date"] == {"year": 2024, "month": 3, "day": 1, "timezone": "UTC"}
    assert ava["tme:cm:last-seen-at"] == "2025-06-01T00:30:00Z"
    assert json.loads(ava["str:cm:preferences"]) == {"newsletter": True, "topics": ["ai"]}
    assert ava["txt:cm:bio"] == BIO and len(BIO) > 255
    assert ava["geo::country"] == {"name": "AU"}

    phones = {
        email: person(sandbox, email).get("phn::phone")
        for email in ("ben@example.com", "chloe@example.com", "dieter@example.com")
    }
    assert phones == {
        "ben@example.com": {"c": "1", "n": "4155552671"},  # country 'United States'
        "chloe@example.com": {"c": "44", "n": "2079460958"},  # country 'gb'
        "dieter@example.com": {"c": "49", "n": "30901820"},  # country 'Germany'
    }
    ben = person(sandbox, "ben@example.com")
    assert json.loads(ben["str:cm:preferences"]) == [1, 2]
    assert ben["sst:cm:plans"] == ["pro"]
    chloe = person(sandbox, "chloe@example.com")
    assert chloe["tags"] == []
    assert "str:cm:preferences" not in chloe and "txt:cm:bio" not in chloe  # NULLs skipped
    eve = person(sandbox, "eve@example.com")  # '12' is no phone: the person still lands
    assert "phn::phone" not in eve
    assert eve["tags"] == ["vip"]


def test_tap_postgres_jsonb_without_a_fix_is_refused_at_schema(
    sandbox, config, pipeline_env, tmp_path
):
    """Meltano merges nested settings from the environment into meltano.yml's, so the stream
    map cannot be unset there: the real tap's output goes to the target without it."""
    tapped = meltano("invoke", "tap-postgres", env=pipeline_env)
    assert tapped.returncode == 0, tapped.stderr[-3000:]
    assert '"preferences"' in tapped.stdout
    config["streams"] = {"public-customers": {"object": "person", "merge_by": ["email"]}}

    done = run_cli(config, tapped.stdout, tmp_path)

    assert done.returncode != 0
    assert "json.dumps(preferences) if preferences is not None else None" in done.stderr
    assert not sandbox.store.people
    assert not sandbox.store.custom_fields("person")  # refused before any field was created


def test_the_readme_example_is_this_projects_configuration():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### tap-postgres, end to end") :]
    [shown] = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    project = yaml.safe_load((PROJECT / "meltano.yml").read_text())
    [loader] = project["plugins"]["loaders"]

    assert shown["config"] == {k: v for k, v in loader["config"].items() if not k.endswith("_path")}
    [tap] = project["plugins"]["extractors"]
    assert f"pip_url: {tap['pip_url']}" in section

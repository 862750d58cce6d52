"""Fixtures: a real Ortto sandbox on 127.0.0.1, and running the target against it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from postgres import PostgresServer, running_postgres

from target_ortto.errors import OrttoError
from target_ortto.sandbox import Sandbox
from target_ortto.target import TargetOrtto

API_KEY = "test-key-5f1c9e"  # a sandbox key; tests assert it never appears in output
REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "demo" / "data"


@pytest.fixture(scope="session")
def _server() -> Iterable[Sandbox]:
    with Sandbox(api_key=API_KEY) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def postgres() -> Iterable[PostgresServer]:
    """One real PostgreSQL server for the session; each test takes its own database."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def sandbox(_server: Sandbox) -> Sandbox:
    """The session's sandbox, emptied and without faults for each test."""
    _server.reset()
    return _server


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> dict[str, Any]:
    """Target config pointing at the sandbox; fast retries; files under tmp_path."""
    return {
        "api_key": API_KEY,
        "api_url": sandbox.url,
        "create_custom_fields": True,
        "max_retries": 3,
        "requests_per_second": 200,
        "rejected_records_path": str(tmp_path / "rejected.jsonl"),
        "ledger_path": str(tmp_path / "ledger.sqlite"),
    }


def schema_message(
    stream: str, properties: dict[str, Any], key_properties: list[str] | None = None
) -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": key_properties or [],
    }


def record_messages(stream: str, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "RECORD", "stream": stream, "record": r} for r in records]


def state_message(value: Any) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


@dataclass
class RunResult:
    """The STATE values a target run emitted, and our error if it failed."""

    states: list[Any] = field(default_factory=list)
    error: OrttoError | None = None
    target: TargetOrtto | None = None


def _lines(messages: Iterable[dict[str, Any]]) -> io.StringIO:
    return io.StringIO("".join(json.dumps(m, default=str) + "\n" for m in messages))


def run_target(
    config: dict[str, Any],
    messages: list[dict[str, Any]],
    after_first_schema: Callable[[], None] | None = None,
) -> RunResult:
    """Run the target in-process on Singer messages, as `target-ortto` would.

    `after_first_schema` runs once the first message (a SCHEMA: routing and pre-flight
    done) is processed, e.g. to inject faults only into the writes.
    """
    out = io.StringIO()
    target = None
    error = None
    with redirect_stdout(out):
        try:
            target = TargetOrtto(config=config)
            if after_first_schema is not None:
                target.process_lines(_lines(messages[:1]))
                after_first_schema()
                messages = messages[1:]
            target.listen(_lines(messages))
        except OrttoError as exc:
            error = exc
        finally:
            if target is not None and "run" in target.__dict__ and error is not None:
                target.run.close()
    assert_clean(out.getvalue() + str(error or ""), str(config.get("api_key") or API_KEY))
    states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return RunResult(states=states, error=error, target=target)


def assert_clean(output: str, api_key: str = API_KEY) -> None:
    """What every run promises whatever it was fed: no traceback, and never the key."""
    assert "Traceback (most recent call last)" not in output, output[-3000:]
    assert api_key not in output, "the API key appeared in the output"


def run_cli(
    config: dict[str, Any] | None,
    messages: Iterable[dict[str, Any]] | str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    python_args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """`target-ortto --config …` as users run it (`--config ENV` when `config` is None), fed
    Singer messages (or raw text) on stdin; checks `assert_clean` on everything it printed."""
    config_arg = "ENV"
    if config is not None:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        config_arg = str(config_path)
    text = messages if isinstance(messages, str) else _lines(messages).getvalue()
    done = subprocess.run(
        [sys.executable, *python_args, "-m", "target_ortto", "--config", config_arg],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert_clean(done.stdout + done.stderr, str((config or {}).get("api_key") or API_KEY))
    return done


def demo_records(name: str) -> list[dict[str, Any]]:
    with (DEMO_DATA / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


PEOPLE_SCHEMA = {
    "id": {"type": ["integer"]},
    "email": {"type": ["string", "null"]},
    "first_name": {"type": ["string", "null"]},
    "last_name": {"type": ["string", "null"]},
    "phone": {"type": ["string", "null"]},
    "city": {"type": ["string", "null"]},
    "country": {"type": ["string", "null"]},
    "lifetime_value": {"type": ["number", "null"]},
    "orders_count": {"type": ["integer", "null"]},
    "is_vip": {"type": ["boolean", "null"]},
    "signup_date": {"type": ["string", "null"], "format": "date"},
    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    "company": {"type": ["string", "null"]},
}
ORGANIZATIONS_SCHEMA = {
    "id": {"type": ["integer"]},
    "name": {"type": ["string", "null"]},
    "website": {"type": ["string", "null"]},
    "employees": {"type": ["integer", "null"]},
    "industry": {"type": ["string", "null"]},
    "city": {"type": ["string", "null"]},
    "country": {"type": ["string", "null"]},
    "annual_revenue": {"type": ["integer", "null"]},
}

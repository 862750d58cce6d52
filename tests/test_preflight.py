"""Pre-flight: custom fields checked (or created) before the first write."""

from __future__ import annotations

import pytest
from conftest import (
    API_KEY,
    ORGANIZATIONS_SCHEMA,
    PEOPLE_SCHEMA,
    demo_records,
    record_messages,
    run_target,
    schema_message,
)

from target_ortto.errors import StreamError
from target_ortto.sandbox import Sandbox

WRITES = ("/merge", "/create", "/subscribe", "/archive", "/delete")


def demo_messages() -> list[dict]:
    return [
        schema_message("people", PEOPLE_SCHEMA, ["id"]),
        *record_messages("people", demo_records("people")),
        schema_message("organizations", ORGANIZATIONS_SCHEMA, ["id"]),
        *record_messages("organizations", demo_records("organizations")),
    ]


def writes(sandbox) -> list[str]:
    return [r.path for r in sandbox.requests if r.path.endswith(WRITES)]


def test_missing_custom_fields_stop_the_run_before_any_write(sandbox, config):
    config["create_custom_fields"] = False

    result = run_target(config, demo_messages())

    assert isinstance(result.error, StreamError)
    message = str(result.error)
    for field in (
        "int:cm:lifetime-value",
        "int:cm:orders-count",
        "bol:cm:is-vip",
        "dtz:cm:signup-date",
        "int:cm:id",
    ):
        assert field in message
    assert "(decimal) from column 'lifetime_value'" in message
    assert "create_custom_fields" in message and "create them in Ortto" in message
    assert writes(sandbox) == []


def test_create_custom_fields_creates_typed_fields_then_loads_everything(sandbox, config):
    result = run_target(config, demo_messages())

    assert result.error is None
    people_fields = {f.id: f.display_type for f in sandbox.store.custom_fields("person")}
    account_fields = {f.id: f.display_type for f in sandbox.store.custom_fields("account")}
    assert people_fields == {
        "int:cm:lifetime-value": "decimal",
        "int:cm:orders-count": "integer",
        "bol:cm:is-vip": "bool",
        "dtz:cm:signup-date": "date",
        "int:cm:id": "integer",
    }
    assert account_fields == {"int:oc:annual-revenue": "integer", "int:oc:id": "integer"}
    assert len(sandbox.store.people) == 250 and len(sandbox.store.accounts) == 120
    names = {f.name for f in sandbox.store.custom_fields("person")}
    assert "Lifetime Value" in names


def test_existing_fields_are_used_without_creating_any(sandbox, config):
    sandbox.store.add_custom_field("person", "int:cm:score", "Score", "decimal")
    config["create_custom_fields"] = False
    messages = [
        schema_message("people", {"email": {"type": "string"}, "score": {"type": "number"}}),
        *record_messages("people", [{"email": "a@example.com", "score": 1.5}]),
    ]

    result = run_target(config, messages)

    assert result.error is None
    assert sandbox.store.find_person("a@example.com").fields["int:cm:score"] == 1500
    assert not [r for r in sandbox.requests if r.path.endswith("/create")]


def test_a_field_created_meanwhile_elsewhere_counts_as_existing(sandbox, config):
    def someone_else_creates_it() -> None:
        sandbox.store.add_custom_field("person", "int:cm:score", "Score", "decimal")

    schema = {"email": {"type": "string"}, "score": {"type": "number"}}
    messages = [
        schema_message("people", {"email": {"type": "string"}}),
        schema_message("contacts", schema),
        *record_messages("contacts", [{"email": "a@example.com", "score": 1.5}]),
    ]

    result = run_target(config, messages, after_first_schema=someone_else_creates_it)

    assert result.error is None
    assert [r.status for r in sandbox.requests if r.path.endswith("/create")] == [423]
    assert sandbox.store.find_person("a@example.com").fields["int:cm:score"] == 1500


@pytest.mark.parametrize(
    ("existing", "existing_type"),
    [("int:cm:score", "integer"), ("str:cm:score", "text")],
)
def test_a_type_clash_with_an_existing_field_stops_the_run(
    sandbox, config, existing, existing_type
):
    sandbox.store.add_custom_field("person", existing, "Score", existing_type)
    messages = [
        schema_message("people", {"email": {"type": "string"}, "score": {"type": "number"}}),
        *record_messages("people", [{"email": "a@example.com", "score": 1.5}]),
    ]

    result = run_target(config, messages)

    assert isinstance(result.error, StreamError)
    assert "column 'score' needs int:cm:score (decimal)" in str(result.error)
    assert existing_type in str(result.error)
    assert writes(sandbox) == []


def test_creating_past_ortto_field_limit_is_reported_clearly(config):
    with Sandbox(api_key=API_KEY, account_field_limit=1) as small:
        config["api_url"] = small.url
        messages = [
            schema_message(
                "accounts",
                {"name": {"type": "string"}, "a": {"type": "string"}, "b": {"type": "string"}},
            ),
        ]

        result = run_target(config, messages)

    assert isinstance(result.error, StreamError)
    assert "str:oc:b" in str(result.error) and "limit" in str(result.error)


def test_a_missing_multi_select_field_needs_creating_in_ortto(sandbox, config):
    schema = {
        "email": {"type": "string"},
        "interests": {"type": "array", "items": {"type": "string"}},
    }

    result = run_target(config, [schema_message("people", schema)])

    assert isinstance(result.error, StreamError)
    assert "sst:cm:interests" in str(result.error) and "options" in str(result.error)


def test_dry_run_reads_fields_but_creates_nothing(sandbox, config):
    config["dry_run"] = True

    result = run_target(config, demo_messages())

    assert result.error is None
    assert writes(sandbox) == []
    assert sandbox.store.custom_fields("person") == []

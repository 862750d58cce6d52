"""meltano-hub.yml is a loader definition the Meltano Hub accepts: checked as the Hub's own CI
checks its definitions, against a vendored copy of its schemas (tests/hub_schemas/README.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMAS = Path(__file__).parent / "hub_schemas"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    """The Hub's check: Draft 7, every schema registered under its `$id`."""
    schemas = [json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*/*.schema.json"))]
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT7))
        for schema in schemas
    )
    loaders = json.loads((SCHEMAS / "plugin_definitions" / "loaders.schema.json").read_text())
    return Draft7Validator(loaders, registry=registry)


@pytest.fixture(scope="module")
def definition() -> dict:
    return yaml.safe_load((REPO / "meltano-hub.yml").read_text())


def errors(validator: Draft7Validator, document: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_meltano_hub_yml_passes_the_hubs_loader_schema(validator, definition):
    assert errors(validator, definition) == []
    assert definition["quality"] in {"gold", "silver", "bronze", "unknown"}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d.pop("quality"), "'quality' is a required property"),
        (lambda d: d.pop("variant"), "'variant' is a required property"),
        (lambda d: d.update(homepage="x"), "Additional properties are not allowed"),
        (lambda d: d["settings"][0].update(kind="secret"), "'secret' is not one of"),
    ],
    ids=["no quality", "no variant", "unknown key", "setting kind"],
)
def test_the_vendored_schema_catches_what_the_hub_refuses(validator, definition, change, complaint):
    """The schemas and their references are wired up: a broken definition does fail."""
    broken = copy.deepcopy(definition)
    change(broken)

    assert any(complaint in error for error in errors(validator, broken))


def test_the_hub_definition_installs_the_package_and_executable_this_repository_builds(
    definition,
):
    pyproject = (REPO / "pyproject.toml").read_text()

    assert definition["name"] == definition["executable"] == "target-ortto"
    assert f'{definition["executable"]} = "target_ortto.target:TargetOrtto.cli"' in pyproject
    assert definition["namespace"] == "target_ortto"

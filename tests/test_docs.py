"""What users see of the settings is what target_ortto/settings.py declares: `--about`,
the README tables, and the plugin settings in meltano.yml and meltano-hub.yml.

`python -m target_ortto.settings_docs` regenerates the README tables and both yml lists.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import Field, fields

import pytest
import yaml

from target_ortto import settings_docs
from target_ortto.setting_fields import BOUNDS, REQUIRED, declared, default_of, spec_of
from target_ortto.settings import Settings, StreamSettings
from target_ortto.target import TargetOrtto

STALE = "generated from the declarations, but stale: run `python -m target_ortto.settings_docs`"
PLUGIN_FILES = ["meltano.yml", "meltano-hub.yml", "tests/meltano_postgres/meltano.yml"]
DECLARED = [(cls, f) for cls in (Settings, StreamSettings) for f in fields(cls)]


@pytest.fixture(scope="module")
def about() -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "target_ortto", "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["settings"]


def about_properties(about: dict, cls: type) -> dict[str, dict]:
    properties = about["properties"]
    if cls is StreamSettings:
        return properties["streams"]["additionalProperties"]["properties"]
    return {name: properties[name] for name in TargetOrtto.setting_names}


def plugin_settings(name: str) -> list[dict]:
    document = yaml.safe_load((settings_docs.REPO / name).read_text())
    if "plugins" in document:
        document = next(p for p in document["plugins"]["loaders"] if p["name"] == "target-ortto")
    return document["settings"]


def as_json(value: object) -> object:
    return json.loads(json.dumps(value))  # tuples become lists


def test_about_shows_exactly_the_declared_settings(about):
    assert list(about_properties(about, Settings)) == [f.name for f in fields(Settings)]
    assert list(about_properties(about, StreamSettings)) == [f.name for f in fields(StreamSettings)]
    assert about["properties"]["streams"]["additionalProperties"]["additionalProperties"] is False


@pytest.mark.parametrize(("cls", "f"), DECLARED, ids=[f.name for _, f in DECLARED])
def test_about_shows_each_declared_default_bound_and_choice(about, cls: type, f: Field):
    prop, spec, default = about_properties(about, cls)[f.name], spec_of(f), default_of(f)

    assert prop["description"] == spec.description
    assert prop.get("default") == (None if default is REQUIRED else as_json(default))
    assert prop.get("enum", []) == list(spec.choices)
    assert {k: prop.get(k) for k in BOUNDS.values()} == {
        k: getattr(spec, attr) for attr, k in BOUNDS.items()
    }
    assert prop.get("secret", False) is spec.secret
    assert (f.name in about.get("required", [])) is (default is REQUIRED)


def test_about_lets_numbers_arrive_as_text_from_environment_variables(about):
    numbers = [f.name for f, hint in declared(Settings) if hint is float]

    assert numbers
    for name in numbers:
        assert "string" in about["properties"][name]["type"], name


def test_about_shows_the_bounds_users_rely_on(about):
    properties = about["properties"]

    assert (properties["batch_size"]["minimum"], properties["batch_size"]["maximum"]) == (1, 100)
    assert properties["max_concurrency"]["minimum"] == 1
    assert properties["requests_per_second"]["exclusiveMinimum"] == 0
    assert properties["api_key"]["secret"] is True


def test_readme_tables_are_the_declarations():
    text = (settings_docs.REPO / "README.md").read_text()

    assert settings_docs.regenerate_readme(text) == text, f"README tables are {STALE}"


def test_regenerating_the_readme_replaces_only_its_tables():
    text = (settings_docs.REPO / "README.md").read_text()
    emptied = re.sub(
        r"(<!-- (stream-)?settings:start[^\n]*-->\n).*?(<!--)", r"\1\3", text, flags=re.S
    )

    assert emptied != text
    assert settings_docs.regenerate_readme(emptied) == text


@pytest.mark.parametrize("name", PLUGIN_FILES)
def test_plugin_settings_are_the_declarations(name):
    text = (settings_docs.REPO / name).read_text()

    assert settings_docs.regenerate_plugin(text) == text, f"{name} settings are {STALE}"
    assert plugin_settings(name) == settings_docs.meltano_settings()


@pytest.mark.parametrize("name", PLUGIN_FILES)
def test_regenerating_a_plugin_replaces_only_its_settings(name):
    text = (settings_docs.REPO / name).read_text()
    plugin = text[text.index("name: target-ortto") :]
    indent, listed = re.search(r"^( *)settings:\n((?:\1- .*\n|\1  .*\n)+)", plugin, re.M).groups()
    emptied = text.replace(listed, f"{indent}- name: stale\n")

    assert emptied != text
    assert settings_docs.regenerate_plugin(emptied) == text


@pytest.mark.parametrize("name", PLUGIN_FILES)
def test_plugin_settings_describe_what_about_shows(about, name):
    properties = about["properties"]  # ours, then the SDK's own (stream maps, flattening, ...)
    entries = plugin_settings(name)

    assert [entry["name"] for entry in entries] == list(properties)
    for entry in entries:
        prop = properties[entry["name"]]
        assert entry["description"] == prop["description"]
        assert entry.get("value") == prop.get("default")
        assert entry.get("sensitive", False) is prop.get("secret", False)
        assert [option["value"] for option in entry.get("options", [])] == prop.get("enum", [])


@pytest.mark.parametrize("name", PLUGIN_FILES)
def test_plugin_settings_offer_only_the_load_methods_the_target_honours(about, name):
    entry = next(e for e in plugin_settings(name) if e["name"] == "load_method")

    assert [option["value"] for option in entry["options"]] == ["append-only", "upsert"]
    assert about["properties"]["load_method"]["enum"] == ["append-only", "upsert"]
    assert entry["value"] == "append-only"

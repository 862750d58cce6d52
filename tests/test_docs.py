"""The README settings table, meltano.yml and the Hub definition stay in sync with the code.

Run `python tests/test_docs.py` to regenerate the README table from `--about`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from target_ortto.target import TargetOrtto

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- settings:start[^\n]*-->\n)(.*?)(<!-- settings:end -->)", re.S)


def about() -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "target_ortto", "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def own_settings(info: dict) -> dict[str, dict]:
    properties = info["settings"]["properties"]
    return {name: properties[name] for name in TargetOrtto.setting_names}


def json_types(prop: dict) -> list[str]:
    types = prop.get("type", [])
    return [t for t in ([types] if isinstance(types, str) else types) if t != "null"]


def type_cell(name: str, prop: dict, required: list[str]) -> str:
    if "enum" in prop:
        cell = ", ".join(f"`{v}`" for v in prop["enum"] if v is not None)
    else:
        types = json_types(prop)
        cell = "number" if "number" in types else (types[0] if types else "any")
    if prop.get("secret"):
        cell += " (secret)"
    return cell + (", required" if name in required else "")


def default_cell(prop: dict) -> str:
    return f"`{json.dumps(prop['default'])}`".replace('"', "") if "default" in prop else ""


def settings_table(info: dict) -> str:
    required = info["settings"].get("required", [])
    rows = [
        f"| `{name}` | {type_cell(name, prop, required)} | {default_cell(prop)} "
        f"| {prop.get('description', '')} |"
        for name, prop in own_settings(info).items()
    ]
    return "\n".join(["| Setting | Type | Default | Description |", "|:--|:--|:--|:--|", *rows])


def meltano_kind(prop: dict) -> str:
    if prop.get("secret"):
        return "password"
    if "enum" in prop:
        return "options"
    types = json_types(prop)
    for json_type, kind in (
        ("boolean", "boolean"),
        ("integer", "integer"),
        ("number", "decimal"),
        ("object", "object"),
        ("array", "array"),
    ):
        if json_type in types:
            return kind
    return "string"


def declared_settings(path: Path) -> dict[str, dict]:
    document = yaml.safe_load(path.read_text())
    if "plugins" in document:
        document = next(p for p in document["plugins"]["loaders"] if p["name"] == "target-ortto")
    return {s["name"]: s for s in document["settings"]}


def test_readme_settings_table_matches_about():
    block = BLOCK.search(README.read_text())

    assert block, "README lacks the settings block"
    assert block.group(2).strip() == settings_table(about()), (
        "README settings table is stale: run `python tests/test_docs.py`"
    )


def test_every_setting_has_a_description():
    assert all(prop.get("description") for prop in own_settings(about()).values())


def test_meltano_yml_and_hub_definition_declare_every_setting_with_its_kind():
    expected = {name: meltano_kind(prop) for name, prop in own_settings(about()).items()}

    for path in (REPO / "meltano.yml", REPO / "meltano-hub.yml"):
        declared = declared_settings(path)
        assert {n: s.get("kind", "string") for n, s in declared.items()} == expected, path
        assert declared["api_key"].get("sensitive") is True


def test_hub_definition_describes_settings_as_about_does():
    info = about()
    declared = declared_settings(REPO / "meltano-hub.yml")

    for name, prop in own_settings(info).items():
        assert declared[name]["description"] == prop["description"], name


if __name__ == "__main__":
    text = README.read_text()
    README.write_text(
        BLOCK.sub(lambda m: m.group(1) + settings_table(about()) + "\n" + m.group(3), text)
    )
    print("README settings table updated")

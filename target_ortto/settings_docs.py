"""The README settings tables and Meltano's plugin settings, generated from the declarations.

`python -m target_ortto.settings_docs` rewrites them in README.md, meltano.yml,
meltano-hub.yml and tests/meltano_postgres/meltano.yml, leaving the rest of those files as
they are; tests/test_docs.py fails while a file differs from what this would write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from target_ortto.settings import config_schema

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "target-ortto"
_BOUND_WORDS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("maxItems", "(at most {})"),
)
_KINDS = (  # JSON type -> Meltano setting kind, first match wins
    ("boolean", "boolean"),
    ("integer", "integer"),
    ("number", "decimal"),
    ("object", "object"),
    ("array", "array"),
)
_WORDS = {"api": "API", "url": "URL"}


def readme_tables() -> dict[str, str]:
    """Markdown tables by README block name: top-level and per-stream settings."""
    schema = config_schema()
    streams = schema["properties"]["streams"]["additionalProperties"]
    return {
        "settings": _table("Setting", schema),
        "stream-settings": _table("Key", streams),
    }


def meltano_settings() -> list[dict[str, Any]]:
    """The `settings:` list of the plugin in meltano.yml and meltano-hub.yml: ours, then the
    SDK's own (stream maps, flattening, ...), so `meltano config set` stores each with its
    type."""
    from target_ortto.target import TargetOrtto  # the SDK adds its settings by capability

    schema = config_schema()
    TargetOrtto.append_builtin_config(schema)
    schema = json.loads(json.dumps(schema))  # the SDK's choices are enum members
    return [_meltano_setting(name, prop) for name, prop in schema["properties"].items()]


def _table(first: str, schema: dict[str, Any]) -> str:
    required = schema.get("required", [])
    rows = [
        f"| `{name}` | {_type_cell(prop, name in required)} | {_default_cell(prop)} "
        f"| {prop['description']} |"
        for name, prop in schema["properties"].items()
    ]
    return "\n".join([f"| {first} | Type | Default | Description |", "|:--|:--|:--|:--|", *rows])


def _json_types(prop: dict[str, Any]) -> list[str]:
    return [t for t in prop["type"] if t != "null"]


def _type_cell(prop: dict[str, Any], required: bool) -> str:
    if "enum" in prop:
        cell = ", ".join(f"`{value}`" for value in prop["enum"])
    else:
        cell = _json_types(prop)[0]  # numbers accept strings only for environment variables
        if cell == "array":
            cell = f"list of {_json_types(prop['items'])[0]}s"
    if "minimum" in prop and "maximum" in prop:
        cell += f" {prop['minimum']}\N{EN DASH}{prop['maximum']}"
    else:
        cell += "".join(" " + words.format(prop[key]) for key, words in _BOUND_WORDS if key in prop)
    if prop.get("secret"):
        cell += " (secret)"
    return cell + (", required" if required else "")


def _default_cell(prop: dict[str, Any]) -> str:
    return f"`{json.dumps(prop['default'])}`".replace('"', "") if "default" in prop else ""


def _meltano_setting(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    types = _json_types(prop)
    kind = next((kind for json_type, kind in _KINDS if json_type in types), "string")
    entry: dict[str, Any] = {
        "name": name,
        "label": " ".join(_WORDS.get(word, word.title()) for word in name.split("_")),
        "kind": "options" if "enum" in prop else kind,
        "description": prop["description"],
    }
    if "enum" in prop:
        entry["options"] = [{"label": value, "value": value} for value in prop["enum"]]
    if prop.get("secret"):
        entry["sensitive"] = True
    if "default" in prop:
        entry["value"] = prop["default"]
    return entry


def regenerate_readme(text: str) -> str:
    """README text with each generated table replaced."""
    for block, table in readme_tables().items():
        marker = re.compile(rf"(<!-- {block}:start[^\n]*-->\n).*?(<!-- {block}:end -->)", re.S)
        if not marker.search(text):
            raise ValueError(f"README lacks the <!-- {block}:start --> block")
        text = marker.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(2), text)
    return text


def regenerate_plugin(text: str) -> str:
    """meltano.yml or meltano-hub.yml text with the plugin's `settings:` list replaced."""
    plugin = re.search(rf"^ *(- )?name: {PLUGIN}$", text, re.M)
    settings = plugin and re.compile(r"^( *)settings:\n", re.M).search(text, plugin.end())
    if not settings:
        raise ValueError(f"no settings: list of {PLUGIN} found")
    indent = settings.group(1)
    end = re.compile(rf"^(?!{indent}- |{indent}  )", re.M).search(text, settings.end())
    listed = yaml.safe_dump(meltano_settings(), sort_keys=False, width=100, allow_unicode=True)
    block = "".join(indent + line for line in listed.splitlines(keepends=True))
    return text[: settings.end()] + block + text[end.start() if end else len(text) :]


FILES: dict[str, Callable[[str], str]] = {
    "README.md": regenerate_readme,
    "meltano.yml": regenerate_plugin,
    "meltano-hub.yml": regenerate_plugin,
    "tests/meltano_postgres/meltano.yml": regenerate_plugin,  # the tap-postgres test's project
}


def main() -> None:
    for name, regenerate in FILES.items():
        path = REPO / name
        text = path.read_text()
        new = regenerate(text)
        if new != text:
            path.write_text(new)
        print(f"{name}: {'updated' if new != text else 'up to date'}")


if __name__ == "__main__":
    main()

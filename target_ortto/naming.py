"""Names: a column's custom field name (lower kebab-case, as Ortto names custom fields),
its alias lookup key, and a display name for a field the target creates."""

from __future__ import annotations

import re
import unicodedata

_WORDS = re.compile(r"[A-Z]+[0-9]*(?![a-z])|[A-Z]?[a-z]+[0-9]*|[0-9]+")


def kebab_case(name: str) -> str:
    """`Lifetime Value`, `lifetimeValue`, `lifetime_value` -> `lifetime-value`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "-".join(word.lower() for word in _WORDS.findall(ascii_name))


def readable_name(field_name: str) -> str:
    """A display name whose kebab-case is `field_name` (`lifetime-value` -> `Lifetime Value`)."""
    return " ".join(part.capitalize() for part in field_name.split("-"))


def alias_key(column: str) -> str:
    """Alias lookup key: case-insensitive; camelCase, spaces and dashes count as `_`."""
    return kebab_case(column).replace("-", "_")

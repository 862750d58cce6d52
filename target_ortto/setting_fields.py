"""A setting is a dataclass field made by `setting(...)`; from such fields come, for any
settings class, its JSON schema (`object_schema`) and the parsing of a config into it
(`parse_fields`), so that adding a setting is adding one field.
"""

from __future__ import annotations

import copy
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any

from singer_sdk.configuration._dict_config import parse_environment_config

from target_ortto.errors import ConfigError

REQUIRED: Any = MISSING  # the default of a setting that has none
BOUNDS = {  # Spec attribute -> JSON schema keyword
    "minimum": "minimum",
    "exclusive_minimum": "exclusiveMinimum",
    "maximum": "maximum",
    "max_items": "maxItems",
}


@dataclass(frozen=True)
class Spec:
    """What a setting means and allows, beyond its field's name, type and default."""

    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    max_items: int | None = None
    secret: bool = False
    parse: Callable[[str, Any], Any] | None = None  # checks a schema cannot express


def setting(default: Any, description: str, **spec: Any) -> Any:
    """A dataclass field declaring one setting; `spec` takes `Spec`'s keywords."""
    mutable = isinstance(default, (dict, list))  # dataclasses want a factory for these
    return field(
        default=MISSING if mutable else default,
        default_factory=(lambda: copy.deepcopy(default)) if mutable else MISSING,
        repr=not spec.get("secret", False),
        metadata={"setting": Spec(description, **spec)},
    )


def spec_of(f: Field) -> Spec:
    return f.metadata["setting"]


def default_of(f: Field) -> Any:
    """The declared default, or `REQUIRED`."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


@cache
def declared(cls: type) -> tuple[tuple[Field, Any], ...]:
    """The settings of a class, in order, with their resolved types."""
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in fields(cls))


def object_schema(cls: type, *, closed: bool = True) -> dict[str, Any]:
    """The JSON schema of a settings class; `closed` refuses keys it does not declare."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _property(f, hint) for f, hint in declared(cls)},
    }
    required = [f.name for f, _ in declared(cls) if default_of(f) is REQUIRED]
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _property(f: Field, hint: Any) -> dict[str, Any]:
    spec, default = spec_of(f), default_of(f)
    prop = _schema(hint)
    if default is not REQUIRED and "null" not in prop["type"]:
        prop["type"] = [*prop["type"], "null"]  # null means the default
    if default not in (REQUIRED, None):
        prop["default"] = list(default) if isinstance(default, tuple) else default
    prop["description"] = spec.description
    if spec.choices:
        prop["enum"] = list(spec.choices)
    for attr, keyword in BOUNDS.items():
        if getattr(spec, attr) is not None:
            prop[keyword] = getattr(spec, attr)
    if spec.secret:
        prop.update(secret=True, writeOnly=True)
    return prop


def _schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a Python type."""
    if _optional(hint) is not hint:
        inner = _schema(_optional(hint))
        return {**inner, "type": [*inner["type"], "null"]}
    if is_dataclass(hint):
        return object_schema(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return {"type": ["array"], "items": _schema(args[0])}
    if origin is Mapping:
        return {"type": ["object"], "additionalProperties": _schema(args[1])}
    if hint is float:
        return {"type": ["number", "string"]}  # environment variables arrive as strings
    return {"type": [{bool: "boolean", int: "integer", str: "string"}[hint]]}


def _optional(hint: Any) -> Any:
    """`X` of `X | None`, else the hint itself."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return inner
    return hint


def parse_fields(cls: type, raw: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Each setting of `cls` parsed from `raw`; unset, null and "" mean the default."""
    values = {}
    for f, hint in declared(cls):
        spec, name, value = spec_of(f), prefix + f.name, raw.get(f.name)
        if value is None or value == "":
            value = None if default_of(f) is REQUIRED else default_of(f)
        values[f.name] = spec.parse(name, value) if spec.parse else _coerce(name, value, hint, spec)
    return values


def _coerce(name: str, value: Any, hint: Any, spec: Spec) -> Any:
    """A value of the setting's type; text from environment variables is converted."""
    kind = _optional(hint)
    if value is None:
        return None
    if spec.choices:
        return choice(name, value, spec.choices)
    if kind is bool:
        return _boolean(name, value)
    if kind in (int, float):
        return _number(name, value, kind, spec)
    return str(value) if kind is str else value


def choice(name: str, value: Any, choices: tuple[str, ...] | Mapping[str, Any]) -> str:
    if value not in choices:
        raise ConfigError(f"Setting '{name}' must be one of {', '.join(choices)}; got {value!r}.")
    return value


TRUE, FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ConfigError(
        f"Setting '{name}' must be true or false (also 1/0, yes/no), got {value!r}: "
        "anything else is refused rather than guessed."
    )


def _number(name: str, value: Any, kind: type, spec: Spec) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is not None and not math.isfinite(number):
        number = None  # NaN passes every bound check, infinity most
    low, above, high = spec.minimum, spec.exclusive_minimum, spec.maximum
    if (
        number is None
        or isinstance(value, bool)
        or (low is not None and number < low)
        or (above is not None and number <= above)
        or (high is not None and number > high)
    ):
        if low is not None and high is not None:
            limit = f" between {low} and {high}"
        elif low is not None:
            limit = f" at least {low}"
        else:
            limit = f" greater than {above}" if above is not None else ""
        raise ConfigError(f"Setting '{name}' must be a number{limit}, got {value!r}.")
    return number


def environment_config(schema: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Settings from `<prefix><NAME>` variables, for every setting in `schema` (the SDK's
    built-in ones too). The SDK's own parsing reads any boolean text but true/1/yes/on as
    false (so `DRY_RUN=Y` would write) and fails on a bad integer or JSON with a traceback:
    here booleans and integers are parsed strictly, and every failure names its variable."""
    properties = schema.get("properties", {})
    # The SDK's parsing first, one setting at a time: it also loads a .env file.
    values: dict[str, Any] = {}
    for name, prop in properties.items():
        if _env_kind(prop) is None:
            try:
                values.update(parse_environment_config({"properties": {name: prop}}, prefix))
            except ValueError:
                raise ConfigError(
                    f"Setting '{_variable(prefix, name)}' must be JSON (a list or object)."
                ) from None
    for name, prop in properties.items():
        kind, variable = _env_kind(prop), _variable(prefix, name)
        if kind is not None and variable in os.environ:
            text = os.environ[variable]
            values[name] = (
                _boolean(variable, text) if kind is bool else _number(variable, text, int, Spec(""))
            )
    return values


def _variable(prefix: str, name: str) -> str:
    return prefix + name.upper().replace("-", "_")


def _env_kind(prop: Mapping[str, Any]) -> type | None:
    """bool or int for a boolean or integer setting (that takes no text), else None."""
    kinds = prop.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    if "string" in kinds:
        return None
    return bool if "boolean" in kinds else int if "integer" in kinds else None

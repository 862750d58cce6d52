"""Custom activity definitions: checked (and, if allowed, created) before the first event.

Ortto answers `queued` to `/v1/activities/create` even for an activity it does not have
(recorded/activities-create/: every body, malformed ones included, was `queued`), and what
it then does with the event is undocumented: it may silently vanish. So the definitions are
read once with `POST /v1/instance-schema/get {"namespaces": ["cm"]}` (ortto-api.md, "Reads":
`act:cm:` entries with `attributes: [{id, name, display_type}]`) and every activity is
checked against them before anything of it is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from target_ortto.activities import Attribute
from target_ortto.client import OrttoClient
from target_ortto.errors import ApiError, AuthError, StreamError

SCHEMA_PATH = "/v1/instance-schema/get"
CREATE_PATH = "/v1/definitions/activity/create"
# The icon every recorded create (and Ortto's a-273 example) used: the one known to exist.
ICON = "moneys-illustration-icon"
# "Duplicate names are refused (status unrecorded: accept 400, 409, 423 as exists)".
EXISTS_STATUSES = frozenset({400, 409, 423})
_DECIMAL_TYPES = frozenset({"decimal", "currency", "price"})
_LIMIT_WORDS = ("limit", "plan", "quota", "maximum", "upgrade")


def compatible(wanted: str, existing: str) -> bool:
    """An existing attribute's display type takes the values of `wanted` (as fields do)."""
    if wanted == "decimal":
        return existing in _DECIMAL_TYPES
    if wanted == "text":
        return existing in {"text", "single_select", "link", "text_dictionary", ""}
    return wanted == existing or existing == ""


def read_definitions(client: OrttoClient) -> dict[str, dict[str, str]]:
    """Custom activity ID -> {attribute ID: display type}. The `cm` answer is unrecorded:
    the recorded `""` and `o` namespaces hold `fields` keyed by ID; a list is read too."""
    answer = client.request("POST", SCHEMA_PATH, {"namespaces": ["cm"]})
    namespaces = answer.get("namespaces") if isinstance(answer, dict) else None
    namespace = namespaces.get("cm") if isinstance(namespaces, dict) else None
    entries: Any = namespace.get("fields") if isinstance(namespace, dict) else None
    if isinstance(entries, dict):
        entries = list(entries.values())
    found: dict[str, dict[str, str]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not str(entry.get("id", "")).startswith("act:"):
            continue
        attributes = entry.get("attributes") or []
        found[str(entry["id"])] = {
            str(a["id"]): str(a.get("display_type") or "")
            for a in attributes
            if isinstance(a, dict) and a.get("id")
        }
    return found


def _name(activity_id: str) -> str:
    return activity_id.split(":", 2)[2]


def _listed(attributes: Sequence[Attribute]) -> str:
    lines = [f"  - {a.field_id} ({a.display_type}) from column '{a.column}'" for a in attributes]
    return "\n".join(lines) or "  (no attributes)"


class Definitions:
    """The instance's custom activities, read once per run; each activity checked once."""

    def __init__(
        self, client: OrttoClient, logger: logging.Logger, *, create: bool, dry_run: bool
    ) -> None:
        self.client = client
        self.logger = logger
        self.create = create
        self.dry_run = dry_run
        self._known: dict[str, dict[str, str]] | None = None
        self._checked: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, stream: str, activity_id: str, attributes: Sequence[Attribute]) -> bool:
        """Make sure `activity_id` exists with `attributes`; True if it was (or, in a dry
        run, would be) created. Raises `StreamError` saying what is missing and the fixes."""
        with self._lock:
            if activity_id in self._checked:
                return False
            if self._known is None:
                self._known = read_definitions(self.client)
            created = False
            if activity_id not in self._known:
                if not self.create:
                    raise StreamError(_missing_message(stream, activity_id, attributes))
                if self.dry_run:
                    self.logger.info(
                        "Dry run: would create custom activity %s with attributes %s",
                        activity_id,
                        [f"{a.field_id} ({a.display_type})" for a in attributes],
                    )
                    self._known[activity_id] = {a.field_id: a.display_type for a in attributes}
                else:
                    self._create(stream, activity_id, attributes)
                created = True
            self._compare(stream, activity_id, attributes)
            self._checked.add(activity_id)
            return created

    def _compare(self, stream: str, activity_id: str, attributes: Sequence[Attribute]) -> None:
        """Each attribute must be in the definition with a compatible type. Attribute IDs
        carry their type (`str:cm:stage`), so one of another type has another ID, found
        by its name."""
        have = (self._known or {}).get(activity_id, {})
        by_name = {field_id.split(":", 2)[-1]: field_id for field_id in have}
        lines = []
        for a in attributes:
            field_id = a.field_id if a.field_id in have else by_name.get(a.name)
            if field_id is None:
                lines.append(
                    f"  - column '{a.column}' -> {a.field_id} ({a.display_type}) is not an "
                    "attribute of the definition"
                )
            elif field_id != a.field_id or not compatible(a.display_type, have[field_id]):
                lines.append(
                    f"  - column '{a.column}' needs {a.field_id} ({a.display_type}), the "
                    f"definition has {field_id} ({have[field_id]})"
                )
        if not lines:
            return
        raise StreamError(
            f"Stream '{stream}': the custom activity {activity_id} in Ortto does not take "
            "these attributes as the stream sends them, and Ortto would answer 'queued' and "
            "then drop or mistype them:\n" + "\n".join(lines) + "\nFix: add or retype the "
            "attributes of the activity in Ortto (Settings > Activities), or cast, rename "
            f"(streams.{stream}.field_map) or drop (a stream map) the columns. Nothing of "
            f"{activity_id} was sent."
        )

    def _create(self, stream: str, activity_id: str, attributes: Sequence[Attribute]) -> None:
        """`POST /v1/definitions/activity/create` as recorded (display_style included);
        "already exists" is fine: the definitions are read again."""
        body = {
            "name": _name(activity_id),
            "icon_id": ICON,
            "track_conversion_value": False,
            "touch": True,
            "filterable": True,
            "visible_in_feeds": True,
            "display_style": {"type": "activity"},
            "attributes": [
                {"name": a.name, "display_type": a.display_type, "field_id": "do-not-map"}
                for a in attributes
            ],
        }
        try:
            answer = self.client.request("POST", CREATE_PATH, body)
        except AuthError:
            raise
        except ApiError as exc:
            self._known = read_definitions(self.client)
            if activity_id in self._known:
                return  # made meanwhile (another run, a lost answer): compared next
            raise StreamError(_refused_message(stream, activity_id, attributes, exc)) from None
        made = answer.get("custom_activity") if isinstance(answer, dict) else None
        made_id = made.get("activity_field_id") if isinstance(made, dict) else None
        if made_id not in (None, activity_id):
            raise StreamError(
                f"Stream '{stream}': Ortto created the custom activity as {made_id}, not "
                f"{activity_id}; set streams.{stream}.activity to {made_id!r}."
            )
        self.logger.info("Created custom activity %s (stream '%s')", activity_id, stream)
        self._known = read_definitions(self.client)
        if activity_id not in self._known:  # not yet readable: trust the create's answer
            made_attributes = made.get("attributes") if isinstance(made, dict) else None
            self._known[activity_id] = {
                str(a.get("field_id")): str(a.get("display_type") or "")
                for a in made_attributes or []
                if isinstance(a, dict)
            } or {a.field_id: a.display_type for a in attributes}


def _missing_message(stream: str, activity_id: str, attributes: Sequence[Attribute]) -> str:
    return (
        f"Stream '{stream}': Ortto has no custom activity {activity_id}. Ortto would answer "
        "'queued' to its events and then drop them, so none was sent. Its attributes:\n"
        f"{_listed(attributes)}\nFix: create the activity in Ortto (Settings > Activities > "
        f"New custom activity, named '{_name(activity_id)}') with those attributes and "
        "types, or set create_custom_fields: true to let target-ortto create it "
        "(`meltano config set target-ortto create_custom_fields true`)."
    )


def _refused_message(
    stream: str, activity_id: str, attributes: Sequence[Attribute], exc: ApiError
) -> str:
    said = str(exc).rstrip(".")
    if exc.status is None or exc.status >= 500:
        return (
            f"Stream '{stream}': could not create the custom activity {activity_id}: {said}. "
            "Ortto did not answer (a network or server failure, not a refusal): rerun; an "
            "activity Ortto did create is found then."
        )
    limit = any(word in said.lower() for word in _LIMIT_WORDS)
    why = (
        "Ortto's plan limits the number of custom activities (person fields created with "
        "change tracking count towards it too), and this refusal says the limit is reached"
        if limit
        else "the number of custom activities is limited by the Ortto plan, which may be why"
    )
    return (
        f"Stream '{stream}': Ortto refused to create the custom activity {activity_id}: "
        f"{said}. {why}. Its attributes:\n{_listed(attributes)}\nFix: free or buy room for "
        "custom activities in Ortto, or send these events as an existing activity "
        f"(streams.{stream}.activity). Nothing of {activity_id} was sent."
    )

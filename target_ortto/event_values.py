"""An event's values that are not columns' values: which activity, when, and its key. Pure.

Ortto (../shared/reference/ortto-api.md, "Activities"; a-271 "create a custom activity
event"): custom activity IDs are `act:cm:<kebab name>` (recorded:
recorded/activity-definition-create/with-attributes.json); `created` back-dates an event
(ISO 8601); `key` with `created` lets Ortto deduplicate a repeat.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from target_ortto.convert import ConversionError
from target_ortto.naming import kebab_case

MAX_KEY = 255  # Ortto does not say; its text limit. Longer keys are sent hashed.
CLOCK_SKEW = dt.timedelta(minutes=5)  # how far in the future `created` may be
ACTIVITY_ID = re.compile(r"^act:cm:[a-z0-9]+(-[a-z0-9]+)*$")


def activity_id(ref: Any) -> str:
    """`Deal stage changed` -> `act:cm:deal-stage-changed`; an `act:cm:` ID as is."""
    text = str(ref).strip()
    if text.startswith("act:"):
        if not ACTIVITY_ID.match(text):
            raise ConversionError(
                f"{text!r} is not a custom activity ID (act:cm:<lower-kebab-name>); built-in "
                "activities (act::...) cannot be sent"
            )
        return text
    name = kebab_case(text)
    if not name:
        raise ConversionError(f"{text!r} has no letters or digits to name an activity")
    return f"act:cm:{name}"


def parse_created(value: Any, now: dt.datetime) -> dt.datetime:
    """An event's time in UTC; unreadable, year-0 or future values are refused."""
    when = value
    if isinstance(value, str):
        text = value.strip()
        try:
            when = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
        except ValueError:
            raise ConversionError(f"{value!r} is not an ISO 8601 date-time") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        when = dt.datetime.combine(value, dt.time(), dt.timezone.utc)
    if not isinstance(when, dt.datetime):
        raise ConversionError(f"{value!r} is not a date-time")
    when = when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when
    try:
        when = when.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ConversionError(f"{value!r} is outside the years 1 to 9999 in UTC") from None
    if when > now + CLOCK_SKEW:
        raise ConversionError(
            f"{value!r} is in the future (after {now:%Y-%m-%dT%H:%M:%SZ}, the time of this run)"
        )
    return when


def iso(when: dt.datetime) -> str:
    """UTC ISO 8601 as Ortto's examples write it: `2026-11-20T10:00:00Z`."""
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")


def event_key(record: Mapping[str, Any], key_properties: tuple[str, ...]) -> str:
    """The stream's key properties' values joined, else a hash of the whole record; hashed
    when longer than `MAX_KEY`."""
    if key_properties:
        text = ":".join("" if record.get(k) is None else str(record.get(k)) for k in key_properties)
    else:
        shown = {k: v for k, v in record.items() if not k.startswith("_sdc_")}
        encoded = json.dumps(shown, sort_keys=True, default=str, separators=(",", ":"))
        return "r:" + hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()
    if len(text) > MAX_KEY:
        return "h:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return text

"""Ortto operations the target uses, and how their answers become per-record outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from target_ortto.client import BAD_REQUEST_BUDGET, BadRequest, OrttoClient
from target_ortto.errors import ApiError, StreamError
from target_ortto.objects import OrttoObject

# What the ledger may remember as "Ortto has this payload": not `ignored`/`skipped`, which
# left Ortto unchanged (an update of a person who did not exist yet must be retried), nor a
# status nobody has recorded.
APPLIED = frozenset({"created", "merged", "queued", "subscribed", "unsubscribed"})
# Statuses Ortto is known (or, for skips, expected) to answer for a record it took.
KNOWN = APPLIED | {"ignored", "skipped"}
# Ortto's statuses for a record it refused (recorded: invalid, suppressed).
REFUSED = frozenset({"invalid", "suppressed", "error", "failed"})
# A 2xx answer that does not itemise a record: Ortto took the request, but whether it
# wrote that record is unknown, so the ledger does not remember it (the next run resends).
UNCONFIRMED = "unconfirmed"
SUBSCRIBE_BATCH = 100  # people per subscribe request
AUDIENCE_PAGE = 40  # Ortto returns at most 40 audiences a page


@dataclass(frozen=True)
class Outcome:
    """What Ortto did with one record; `error` set means Ortto refused it."""

    status: str
    ortto_id: str | None = None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        """Ortto took the record (wrote it, queued it, left it alone, or took the request
        without saying)."""
        return self.error is None


@dataclass(frozen=True)
class MergeOptions:
    """The request-level part of a merge: how Ortto finds and combines records."""

    merge_by: tuple[str, ...]
    merge_strategy: int
    find_strategy: int
    skip_non_existing: bool
    async_merge: bool
    suppression_field: str | None = None  # Ortto then refuses to create suppressed people


def merge(
    client: OrttoClient,
    obj: OrttoObject,
    bodies: Sequence[Mapping[str, Any]],
    options: MergeOptions,
) -> list[Outcome]:
    """Merge up to 100 records; one outcome per record, in order.

    A whole-request 400 with one `details` entry per record gives each record its reason;
    any other 400 is split in halves until the records at fault are isolated, so the
    valid ones are still written (see `_isolate` for how that search is bounded).
    """
    try:
        return merge_outcomes(_send_merge(client, obj, bodies, options), obj, len(bodies))
    except BadRequest as exc:
        return _isolate(client, obj, bodies, options, exc, [BISECT_BAD_REQUESTS])


# Bad answers one bisection may cost: each counts towards Ortto's ban (15 in 15 s), so a
# batch's search takes at most about two ban windows, and a storm of 400s ends in seconds.
BISECT_BAD_REQUESTS = 2 * BAD_REQUEST_BUDGET


def _send_merge(
    client: OrttoClient,
    obj: OrttoObject,
    bodies: Sequence[Mapping[str, Any]],
    options: MergeOptions,
) -> Any:
    request = {
        obj.body_key: list(bodies),
        "merge_by": list(options.merge_by),
        "merge_strategy": options.merge_strategy,
        "find_strategy": options.find_strategy,
        "async": options.async_merge,
    }
    if options.skip_non_existing:
        request["skip_non_existing"] = True
    if options.suppression_field:
        request["suppression_list_field_id"] = options.suppression_field
    return client.request("POST", obj.path("merge"), request)


def _isolate(
    client: OrttoClient,
    obj: OrttoObject,
    bodies: Sequence[Mapping[str, Any]],
    options: MergeOptions,
    refused: BadRequest,
    budget: list[int],
) -> list[Outcome]:
    """Outcomes of records whose request Ortto refused, by splitting it in halves.

    Two things stop the search, and the run: both halves refused just as their whole was
    (the request, not a record, is at fault: a setting, or Ortto itself), and more bad
    answers than `budget` (shared by the whole search) allows.
    """
    details = refused.body.get("details") if isinstance(refused.body, dict) else None
    if isinstance(details, list) and len(details) == len(bodies):
        return [outcome(entry, obj) for entry in details]
    if len(bodies) == 1:
        return [Outcome("invalid", error=str(refused))]
    half = len(bodies) // 2
    parts = (bodies[:half], bodies[half:])
    answers: list[Any] = []
    for part in parts:
        try:
            answers.append(merge_outcomes(_send_merge(client, obj, part, options), obj, len(part)))
        except BadRequest as exc:
            budget[0] -= 1
            if budget[0] < 0:
                raise _search_failed(
                    refused,
                    f"more than {BISECT_BAD_REQUESTS} of its parts were refused while looking "
                    "for the records at fault (each refusal counts towards Ortto's ban of 15 "
                    "bad requests in 15 s): lower batch_size, or fix what Ortto's message "
                    "points at in the source data.",
                ) from None
            answers.append(exc)
    if refused.status == 400 and all(  # a 413 (too large) may well repeat in halves
        isinstance(a, BadRequest) and str(a) == str(refused) for a in answers
    ):
        raise _search_failed(
            refused,
            "both halves of it were refused the same way, so the request itself is at fault, "
            "not particular records: check the stream's settings (merge_by, field_map, mode) "
            "against Ortto's message.",
        )
    outcomes: list[Outcome] = []
    for part, answer in zip(parts, answers, strict=True):
        if isinstance(answer, BadRequest):
            outcomes += _isolate(client, obj, part, options, answer, budget)
        else:
            outcomes += answer
    return outcomes


def _search_failed(refused: BadRequest, why: str) -> ApiError:
    """The bisection gave up: Ortto's refusal, why, and what to do."""
    return ApiError(
        f"{refused}; {why} Nothing after the last emitted STATE is confirmed; rerun once fixed.",
        refused.status,
    )


def merge_outcomes(answer: Any, obj: OrttoObject, count: int) -> list[Outcome]:
    """One outcome per record from a 2xx merge answer (`people`, `accounts` or
    `organizations`). An answer that does not itemise every record (a `null` list, fewer
    entries: unrecorded shapes) took the request, so its records are `unconfirmed`."""
    entries: Any = None
    if isinstance(answer, dict):
        entries = next(
            (answer[k] for k in obj.result_keys if isinstance(answer.get(k), list)), None
        )
    if not isinstance(entries, list) or len(entries) != count:
        return [Outcome(UNCONFIRMED)] * count
    return [outcome(entry, obj) for entry in entries]


def outcome(entry: Any, obj: OrttoObject) -> Outcome:
    """One merge result entry (or 400 `details` entry) as an outcome: refused when it
    carries an error or a refusing status, otherwise taken, whatever its status says."""
    if not isinstance(entry, dict):
        return Outcome(UNCONFIRMED)
    status = str(entry.get("status") or "")
    ortto_id = entry.get(obj.id_key) or entry.get("organization_id") or entry.get("id")
    error = entry.get("error")
    if error or status in REFUSED:
        return Outcome(status or "invalid", ortto_id, str(error or f"Ortto status '{status}'"))
    return Outcome(status or UNCONFIRMED, ortto_id)


def custom_fields(client: OrttoClient, obj: OrttoObject) -> dict[str, str]:
    """Existing custom fields: field ID -> display type (people and accounts differ in shape)."""
    return parse_custom_fields(client.request("POST", obj.path("custom-field/get"), {}))


def parse_custom_fields(answer: Any) -> dict[str, str]:
    """Field ID -> display type; people's entries are wrapped in `field`, accounts' are not."""
    fields: dict[str, str] = {}
    for entry in (answer or {}).get("fields") or []:
        item = entry.get("field", entry) if isinstance(entry, dict) else {}
        if item.get("id"):
            fields[item["id"]] = item.get("display_type", "")
    return fields


# How Ortto refuses a custom field that already exists is unrecorded: its own public script
# treats 423 as "exists"; 409, and a 400 whose message says so, are as plausible.
FIELD_EXISTS_STATUSES = frozenset({409, 423})
_EXISTS_WORDS = ("already exists", "duplicate", "already in use")


def create_custom_field(
    client: OrttoClient, obj: OrttoObject, name: str, display_type: str
) -> str | None:
    """Create a custom field; returns the field ID Ortto gave it, or None if it exists."""
    body = {"name": name, "type": display_type, "track_changes": False}
    try:
        answer = client.request("POST", obj.path("custom-field/create"), body)
    except ApiError as exc:
        said = str(exc).lower()
        if exc.status in FIELD_EXISTS_STATUSES or (
            exc.status == 400 and any(w in said for w in _EXISTS_WORDS)
        ):
            return None
        raise
    return str((answer or {}).get("field_id", ""))


def find_audience(client: OrttoClient, name: str) -> str:
    """The ID of the one audience named exactly `name` (case-sensitive), paging through search.

    None or several matches is an error naming the audience, raised before any write.
    """
    matches: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.request(
            "POST",
            "/v1/audiences/get",
            {"search_term": name, "limit": AUDIENCE_PAGE, "offset": offset},
        )
        page = page if isinstance(page, list) else []  # Ortto answers `null` for no match
        matches += named(page, name)
        if len(page) < AUDIENCE_PAGE:
            break
        offset += len(page)
    if len(matches) != 1:
        found = "no audience" if not matches else f"{len(matches)} audiences"
        raise StreamError(
            f"Ortto has {found} named exactly {name!r} (names are case-sensitive). Set the "
            "audience's ID instead, or fix the name (Ortto: Audiences)."
        )
    return str(matches[0]["id"])


def named(audiences: list[Any], name: str) -> list[dict[str, Any]]:
    """The audiences of a page whose name is exactly `name`."""
    return [a for a in audiences if isinstance(a, dict) and a.get("name") == name]


def subscribe(
    client: OrttoClient, audience_id: str, people: Sequence[Mapping[str, Any]]
) -> list[Outcome]:
    """Set up to 100 people's subscription to one audience; one outcome per person."""
    answer = client.request(
        "PUT",
        "/v1/audience/subscribe",
        {"audience_id": audience_id, "people": list(people), "async": False},
    )
    return subscribe_outcomes(answer, len(people))


def subscribe_outcomes(answer: Any, count: int) -> list[Outcome]:
    """One outcome per person: subscribed / unsubscribed, or Ortto's status as the reason
    (people Ortto cannot find, or who are not members). A 2xx answer that does not itemise
    every person took the request: its people are `unconfirmed`."""
    entries = answer.get("people") if isinstance(answer, dict) else None
    if not isinstance(entries, list) or len(entries) != count:
        return [Outcome(UNCONFIRMED)] * count
    outcomes = []
    for entry in entries:
        status = str(entry.get("status") or "") if isinstance(entry, dict) else ""
        if status in {"subscribed", "unsubscribed"}:
            outcomes.append(Outcome(status, entry.get("person_id")))
        else:
            person = entry.get("person_status") if isinstance(entry, dict) else None
            outcomes.append(
                Outcome(status or "invalid", error=f"status '{status}', person '{person}'")
            )
    return outcomes


def archive(client: OrttoClient, obj: OrttoObject, ids: Sequence[str]) -> tuple[int, int]:
    """Archive up to 100 people or accounts by Ortto ID; returns how many Ortto archived
    now, and how many it only scheduled (`scheduled_contacts`, recorded as 0 so far)."""
    answer = client.request("PUT", obj.path("archive"), {"inclusion_ids": list(ids)})
    return bulk_counts(answer, "archived")


def delete(client: OrttoClient, obj: OrttoObject, ids: Sequence[str]) -> int:
    """Delete up to 100 archived people or accounts (Ortto deletes only archived ones)."""
    answer = client.request("DELETE", obj.path("delete"), {"inclusion_ids": list(ids)})
    return sum(bulk_counts(answer, "deleted"))


def bulk_counts(answer: Any, action: str) -> tuple[int, int]:
    """(done, scheduled) from `archived_contacts`, `scheduled_organizations`,
    `deleted_accounts` ...: Ortto's names differ by object and action."""
    if not isinstance(answer, dict):
        return 0, 0
    counts = {name: v for name, v in answer.items() if isinstance(v, int)}
    done = sum(v for name, v in counts.items() if name.startswith(f"{action}_"))
    return done, sum(v for name, v in counts.items() if name.startswith("scheduled_"))


def find_id(client: OrttoClient, obj: OrttoObject, field_id: str, value: Any) -> str | None:
    """The Ortto ID of the record whose `field_id` equals `value`, if there is one."""
    prefix = field_id.split(":", 1)[0]
    answer = client.request(
        "POST",
        obj.path("get"),
        {
            "limit": 1,
            "fields": [field_id],
            "filter": {f"${prefix}::is": {"field_id": field_id, "value": value}},
        },
    )
    return first_id(answer, obj)


def first_id(answer: Any, obj: OrttoObject) -> str | None:
    """The ID of the first record of a `/get` answer (`contacts` may be `null`)."""
    found = answer.get(obj.get_key) if isinstance(answer, dict) else None
    return str(found[0]["id"]) if isinstance(found, list) and found else None

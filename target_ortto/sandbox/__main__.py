"""`ortto-sandbox`: run a local Ortto sandbox, or show what a running one holds.

python -m target_ortto.sandbox --port 8765 --api-key KEY [--audience Newsletter ...]
python -m target_ortto.sandbox show --url http://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .faults import MERGE_ANSWERS, Faults
from .server import Sandbox

_CELL_WIDTH = 60


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ortto-sandbox",
        description="Run a local Ortto API sandbox until interrupted. "
        "`ortto-sandbox show --url URL` prints what a running sandbox holds.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", default="sandbox-key", help="the X-Api-Key to accept")
    parser.add_argument("--latency", type=_non_negative, default=0.0, help="seconds per request")
    parser.add_argument("--rate-limit", type=_non_negative, help="requests per second, then 429")
    parser.add_argument("--error-rate", type=_fraction, default=0.0, help="fraction of 5xx")
    parser.add_argument("--drop-rate", type=_fraction, default=0.0, help="fraction dropped")
    parser.add_argument(
        "--merge-answer",
        choices=list(MERGE_ANSWERS),
        default="documented",
        help="answer merges in an unrecorded but plausible shape",
    )
    parser.add_argument("--seed", type=int, help="random seed for the injected faults")
    parser.add_argument(
        "--audience", action="append", default=[], metavar="NAME", help="create an audience"
    )
    return parser


def _show_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ortto-sandbox show", description="Print what a running sandbox holds."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="the sandbox's URL")
    parser.add_argument("--limit", type=int, default=10, help="rows shown per table (0 shows all)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    faults = Faults(
        latency=args.latency,
        rate_limit=args.rate_limit or None,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        merge_answer=args.merge_answer,
        seed=args.seed,
    )
    sandbox = Sandbox(args.api_key, args.host, args.port, faults=faults)
    for name in args.audience:
        sandbox.store.add_audience(name)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with sandbox:
        print(f"Ortto sandbox listening on {sandbox.url}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


def _table(headers: Sequence[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return [indent + "(none)"]
    widths = [max(len(row[i]) for row in [list(headers), *rows]) for i in range(len(headers))]
    return [
        (indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in [list(headers), *rows]
    ]


def _custom(fields: dict[str, Any]) -> str:
    """Custom fields (namespace cm or oc) as `id=value`, comma separated."""
    custom = {k: v for k, v in fields.items() if k.split(":")[1:2] in (["cm"], ["oc"])}
    return _cell(", ".join(f"{k}={_cell(v)}" for k, v in custom.items()))


def _person_name(fields: dict[str, Any]) -> str:
    parts = [fields.get("str::first"), fields.get("str::last")]
    return fields.get("str::name") or " ".join(p for p in parts if p)


def _first(rows: list[Any], limit: int) -> list[Any]:
    return rows if limit <= 0 else rows[:limit]


def _more(rows: list[Any], limit: int, indent: str = "  ") -> list[str]:
    hidden = len(rows) - limit if limit > 0 else 0
    return [f"{indent}... and {hidden} more (--limit 0 shows all)"] if hidden > 0 else []


def render(state: dict[str, Any], limit: int = 0) -> str:
    """A human-readable summary of a sandbox's /_sandbox/state, `limit` rows a table."""
    people, accounts = state["people"], state["accounts"]
    names = {a["id"]: a["fields"].get("str:o:name") or a["id"] for a in accounts}
    lines = [f"People: {len(people)} ({sum(p['archived'] for p in people)} archived)"]
    lines += _table(
        ["EMAIL", "NAME", "ACCOUNT", "TAGS", "CUSTOM FIELDS", "ARCHIVED"],
        [
            [
                _cell(p["fields"].get("str::email", "")),
                _cell(_person_name(p["fields"])),
                _cell(names.get(p["fields"].get("idt::o"), p["fields"].get("idt::o") or "")),
                _cell(", ".join(p["tags"])),
                _custom(p["fields"]),
                "yes" if p["archived"] else "",
            ]
            for p in _first(people, limit)
        ],
    )
    lines += _more(people, limit)
    lines.append(f"Accounts: {len(accounts)}")
    linked = Counter(p["fields"].get("idt::o") for p in people if not p["archived"])
    lines += _table(
        ["NAME", "ID", "PEOPLE", "CUSTOM FIELDS", "ARCHIVED"],
        [
            [
                _cell(a["fields"].get("str:o:name", "")),
                a["id"],
                str(linked[a["id"]]),
                _custom(a["fields"]),
                "yes" if a["archived"] else "",
            ]
            for a in _first(accounts, limit)
        ],
    )
    lines += _more(accounts, limit)
    for kind, custom_fields in state["custom_fields"].items():
        lines.append(f"Custom {kind} fields: {len(custom_fields)}")
        lines += _table(
            ["ID", "NAME", "TYPE"], [[f["id"], f["name"], f["display_type"]] for f in custom_fields]
        )
    lines.append(f"Audiences: {len(state['audiences'])}")
    for audience in state["audiences"]:
        subscriptions = audience["subscriptions"]
        subscribed = sum(s["subscribed"] for s in subscriptions)
        lines.append(
            f"  {audience['name']} ({audience['id']}): {audience['members']} members, "
            f"{subscribed} subscribed, {len(subscriptions) - subscribed} unsubscribed"
        )
        lines += _table(
            ["EMAIL", "PERSON ID", "SUBSCRIBED", "SMS"],
            [
                [
                    _cell(s["email"] or ""),
                    s["person_id"],
                    "yes" if s["subscribed"] else "no",
                    "yes" if s["sms_opted_in"] else "no",
                ]
                for s in _first(subscriptions, limit)
            ],
            indent="    ",
        )
        lines += _more(subscriptions, limit, indent="    ")
    lines += _activities(state, limit)
    lines.append(
        f"Subscribers (email permission, Ortto's built-in audience): {len(state['subscribers'])}"
    )
    lines.append(f"Suppressed emails: {len(state['suppressed'])}")
    lines.append(f"API requests: {state['requests']}, bans: {state['bans']}")
    return "\n".join(lines)


def _activities(state: dict[str, Any], limit: int) -> list[str]:
    """Custom activities, then each person's activities (newest definitions last)."""
    definitions = state.get("activity_definitions", [])
    lines = [f"Custom activities: {len(definitions)}"]
    lines += _table(
        ["ID", "STATE", "ATTRIBUTES"],
        [
            [d["id"], d["state"], _cell(", ".join(a["id"] for a in d["attributes"]))]
            for d in definitions
        ],
    )
    events = state.get("activities", [])
    emails = {p["id"]: p["fields"].get("str::email", p["id"]) for p in state["people"]}
    by_person: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_person.setdefault(event["person_id"], []).append(event)
    lines.append(f"Activities: {len(events)} on {len(by_person)} people")
    for person_id, kept in _first(list(by_person.items()), limit):
        lines.append(f"  {emails.get(person_id, person_id)}: {len(kept)}")
        lines += _table(
            ["ACTIVITY", "CREATED", "KEY", "ATTRIBUTES"],
            [
                [
                    e["activity_id"],
                    e["created"] or "",
                    _cell(e["key"] or ""),
                    _custom(e["attributes"]),
                ]
                for e in _first(kept, limit)
            ],
            indent="    ",
        )
        lines += _more(kept, limit, indent="    ")
    lines += _more(list(by_person), limit)
    return lines


def _show(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/_sandbox/state"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            state = json.load(response)
    except OSError as error:
        print(f"cannot read the sandbox at {args.url}: {error}", file=sys.stderr)
        return 1
    print(render(state, args.limit))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point: serve (default) or `show`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["show"]:
        return _show(_show_parser().parse_args(args[1:]))
    return _serve(_serve_parser().parse_args(args))


if __name__ == "__main__":
    sys.exit(main())

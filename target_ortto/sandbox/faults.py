"""What the sandbox can be told to do wrong, and what it records of each request."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    """Failures to inject. All off by default, except Ortto's own bad-request ban.

    Fields may be changed at runtime; change `seed` through `Sandbox.set_faults` (or build a new
    Faults) so the random sequence restarts from it.
    """

    latency: float = 0.0
    rate_limit: float | None = None
    try_in_seconds: float = 1
    error_rate: float = 0.0
    error_after_apply_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None
    ban_threshold: int | None = 15
    ban_seconds: float = 15.0
    ban_window: float = 15.0
    merge_answer: str = "documented"  # or one of MERGE_ANSWERS: shapes nobody has recorded
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.merge_answer not in MERGE_ANSWERS:
            raise ValueError(f"merge_answer must be one of {', '.join(MERGE_ANSWERS)}")
        self.rng = random.Random(self.seed)

    def roll(self, rate: float) -> bool:
        """True with probability `rate`; draws nothing when the fault is off."""
        return rate > 0 and self.rng.random() < rate


FAULT_SETTINGS = tuple(f.name for f in fields(Faults) if f.init)


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the sandbox saw it; `status` None means the connection was dropped."""

    method: str
    path: str
    status: int | None
    records: int
    body: Any
    duration: float
    fault: str | None


def _entries(reply: dict[str, Any], change: Any) -> dict[str, Any]:
    return {
        key: change(value) if isinstance(value, list) else value for key, value in reply.items()
    }


# Plausible 200 answers to a merge that no recording shows (ortto-api.md, person merge,
# "Unrecorded"): the sandbox applies the merge, then answers in the chosen shape.
MERGE_ANSWERS: dict[str, Any] = {
    "documented": lambda reply: reply,
    "null-list": lambda reply: _entries(reply, lambda _: None),
    "no-list": lambda reply: {},
    "fewer-results": lambda reply: _entries(reply, lambda entries: entries[:-1]),
    "unknown-status": lambda reply: _entries(
        reply, lambda entries: [{**e, "status": "pending"} for e in entries]
    ),
    "status-only": lambda reply: _entries(
        reply, lambda entries: [{"status": e.get("status")} for e in entries]
    ),
}

"""Writes the bundled sample data (demo/data/*.jsonl); deterministic, rerun to refresh.

250 people (one of them updated later in the stream) and 120 organizations, with every
column type the target maps: strings, integers, decimals, booleans, dates, tags, nulls;
and 300 deal stage changes of 60 of those people, which become Ortto activities.
Each person's `company` names one of the organizations (a few have none), so a run links
people to their accounts.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

FIRST = ["Ava", "Noah", "Mia", "Liam", "Zoe", "Omar", "Isla", "Kai", "Lena", "Ravi", "Sofia"]
LAST = ["Nguyen", "Smith", "García", "Okafor", "Rossi", "Kim", "Müller", "Dubois", "Silva"]
CITIES = [("Melbourne", "Australia"), ("Berlin", "Germany"), ("Austin", "United States")]
INDUSTRIES = ["SaaS", "Retail", "Finance", "Health", "Education"]
TAGS = ["trial", "customer", "newsletter", "beta"]


def people(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(1, 251):
        city, country = CITIES[i % len(CITIES)]
        rows.append(
            {
                "id": i,
                "email": f"person{i}@example.com",
                "first_name": FIRST[i % len(FIRST)],
                "last_name": LAST[i % len(LAST)] if i % 17 else None,
                "phone": f"+61 412 {rng.randint(100, 999)} {rng.randint(100, 999)}",
                "city": city,
                "country": country,
                "lifetime_value": round(rng.uniform(0, 5000), 2) if i % 11 else None,
                "orders_count": rng.randint(0, 40),
                "is_vip": i % 7 == 0,
                "signup_date": (date(2023, 1, 1) + timedelta(days=i * 3)).isoformat(),
                "tags": sorted(rng.sample(TAGS, rng.randint(0, 2))),
                "company": f"Company {i % 120 + 1:03d}" if i % 13 else None,
            }
        )
    update = dict(rows[4], first_name="Renamed", lifetime_value=1234.5, tags=["vip"])
    return [*rows, update]


def organizations(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(1, 121):
        city, country = CITIES[i % len(CITIES)]
        rows.append(
            {
                "id": i,
                "name": f"Company {i:03d}",
                "website": f"https://company{i}.example.com",
                "employees": rng.randint(1, 5000),
                "industry": INDUSTRIES[i % len(INDUSTRIES)] if i % 9 else None,
                "city": city,
                "country": country,
                "annual_revenue": rng.randint(10_000, 90_000_000),
            }
        )
    return rows


STAGES = ["Qualified", "Proposal", "Negotiation", "Won", "Lost"]


def events(rng: random.Random) -> list[dict]:
    """Deal stage changes: each deal walks through the stages, a few days apart."""
    rows: list[dict] = []
    start = datetime(2026, 9, 15, 9, 0, tzinfo=timezone.utc)
    deal = 0
    while len(rows) < 300:
        deal += 1
        person = rng.randint(1, 60)
        when = start + timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 600))
        amount = round(rng.uniform(500, 50_000), 2)
        previous = None
        for stage in [*STAGES[: rng.randint(2, 4)], rng.choice(["Won", "Lost"])]:
            rows.append(
                {
                    "id": len(rows) + 1,
                    "email": f"person{person}@example.com",
                    "deal_id": deal,
                    "deal_name": f"Deal {deal:03d}",
                    "stage": stage,
                    "previous_stage": previous,
                    "amount": amount,
                    "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            previous = stage
            when += timedelta(days=rng.randint(1, 6), hours=rng.randint(0, 8))
    return rows[:300]


def main() -> None:
    rng = random.Random(20261122)
    out = Path(__file__).parent / "data"
    for name, rows in (("people", people(rng)), ("organizations", organizations(rng))):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    with (out / "events.jsonl").open("w", encoding="utf-8") as f:  # its own random sequence
        rows = events(random.Random(20261204))
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    main()

"""What keeping new people unsubscribed costs in requests (spec section 4c).

    python benchmarks/consent_cost.py                  # 2,000 people, batch_size 100, ~1 min
    python benchmarks/consent_cost.py --records 10000

Three cases, each run twice against the sandbox: with `subscribe_new_people: false` (the
default: append-only merge first for keys the ledger does not know) and, as the baseline
measured in the same run, `true` (Ortto's default: one overwrite merge a batch). Prints the
person merge requests of each and the extra requests per batch, which must be 0, 0 and at
most 1; and checks who ended up subscribed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from run import API_KEY, MERGE_PATH, UNLIMITED_RPS, Bench, TimedSandbox, write_input

CASES = (
    ("first load into an empty instance (fresh ledger)", 0.0),
    ("re-sync of people the ledger knows", 0.0),
    ("fresh ledger, people already in Ortto", 1.0),
)


def merges(sandbox: TimedSandbox, since: int) -> int:
    return sum(1 for hit in sandbox.hits[since:] if hit.path == MERGE_PATH)


def measure(bench: Bench, path: Path, n: int, subscribe: bool) -> tuple[list[int], int]:
    """Merge requests of the three cases, and how many people are subscribed at the end."""
    sandbox = bench.sandbox
    sandbox.fresh()
    settings = {"requests_per_second": UNLIMITED_RPS, "subscribe_new_people": subscribe}
    ledger = {"ledger_path": str(bench.work / f"ledger-{subscribe}.sqlite")}
    counts = []
    mark = len(sandbox.hits)
    bench.ortto(path, **settings, **ledger)
    counts.append(merges(sandbox, mark))
    bench.check_loaded(n)
    mark = len(sandbox.hits)
    bench.ortto(path, **settings, **ledger, skip_unchanged=False)
    counts.append(merges(sandbox, mark))
    mark = len(sandbox.hits)
    bench.ortto(path, **settings)  # a fresh ledger of its own
    counts.append(merges(sandbox, mark))
    return counts, len(sandbox.store.snapshot()["subscribers"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args(argv)
    n, batch_size = args.records, 100
    batches = -(-n // batch_size)
    with tempfile.TemporaryDirectory(prefix="ortto-consent-") as tmp:
        work = Path(tmp)
        path = work / "input.jsonl"
        write_input(path, n)
        sandbox = TimedSandbox(api_key=API_KEY, port=0).start()
        try:
            bench = Bench(work / "runs", sandbox)
            safe, safe_subscribed = measure(bench, path, n, subscribe=False)
            default, default_subscribed = measure(bench, path, n, subscribe=True)
        finally:
            sandbox.stop()
    ok = safe_subscribed == 0 and default_subscribed == n
    print(f"{n:,} people in {batches} batches of {batch_size}.")
    print("| case | merge requests | baseline (subscribe_new_people: true) | extra per batch |")
    print("|:--|--:|--:|--:|")
    for (case, allowed), mine, base in zip(CASES, safe, default, strict=True):
        extra = (mine - base) / batches
        ok &= extra <= allowed
        print(f"| {case} | {mine} | {base} | {extra:.2f} (at most {allowed:.0f}) |")
    print(
        f"Subscribed afterwards: {safe_subscribed} (consent-safe), {default_subscribed} "
        f"(Ortto's default). {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

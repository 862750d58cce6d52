"""The sync ledger's benchmark: an unchanged re-run sends nothing, at about the SDK's floor.

    python benchmarks/unchanged_rerun.py                   # 1,000,000 records, ~10 min
    python benchmarks/unchanged_rerun.py --records 100000

Loads N people into the sandbox once (filling a ledger), then runs target-ortto again on
the same input with the same ledger, and a do-nothing singer-sdk target on that input.
Prints the merge requests the re-run made (must be 0) and its CPU and wall time against
the do-nothing target's. Same process accounting as benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from run import MERGE_PATH, UNLIMITED_RPS, Bench, TimedSandbox, write_input

from target_ortto.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    n = args.records
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ortto-rerun-") as tmp:
        work = Path(tmp)
        path = work / "input.jsonl"
        write_input(path, n)
        sandbox: Sandbox = TimedSandbox(api_key="bench-key-3c2a", port=0).start()
        try:
            bench = Bench(work / "runs", sandbox)
            ledger = {"ledger_path": str(work / "ledger.sqlite")}
            load = bench.ortto(path, requests_per_second=UNLIMITED_RPS, **ledger)
            bench.check_loaded(n)
            requests_before = len(sandbox.hits)
            rerun = bench.ortto(path, requests_per_second=UNLIMITED_RPS, **ledger)
            rerun_hits = sandbox.hits[requests_before:]
            null = bench.null_target(path)
        finally:
            sandbox.stop()
    merges = sum(1 for h in rerun_hits if h.path == MERGE_PATH)
    others = sorted({h.path for h in rerun_hits if h.path != MERGE_PATH})
    ok = merges == 0
    print(f"{n:,} records. First load: CPU {load.cpu:.1f} s, wall {load.wall:.1f} s.")
    print(f"Unchanged re-run: {merges} merge requests (other requests: {others or 'none'}).")
    print(
        f"Re-run        CPU {rerun.cpu:6.1f} s = {n / rerun.cpu:8,.0f} rec/s; wall "
        f"{rerun.wall:6.1f} s; peak {rerun.peak_mb:.1f} MB"
    )
    print(
        f"Do-nothing    CPU {null.cpu:6.1f} s = {n / null.cpu:8,.0f} rec/s; wall "
        f"{null.wall:6.1f} s; peak {null.peak_mb:.1f} MB"
    )
    print(
        f"Ratio (do-nothing CPU / re-run CPU): {null.cpu / rerun.cpu:.2f}; wall "
        f"{null.wall / rerun.wall:.2f}. {'PASS' if ok else 'FAIL'}: no merge request. "
        f"{time.monotonic() - started:.0f} s in all."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

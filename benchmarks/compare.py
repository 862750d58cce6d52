"""Is a change slower? Two checkouts of target-ortto, run alternately on the same input.

    git worktree add /tmp/base <commit>
    python benchmarks/compare.py --base /tmp/base              # this checkout is the head
    python benchmarks/compare.py --base /tmp/base --records 50000 --repeat 6

CPU time on a shared VM drifts by 5-25 % from one minute to the next, so figures measured
minutes apart cannot tell a small regression from noise. Here each round runs the base
then the head back to back (a first load of N people into an emptied sandbox, fresh
ledger), and the best of the rounds is compared, with every round's pair printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from run import API_KEY, REPO, UNLIMITED_RPS, ProcessRun, TimedSandbox, run_process, write_input


def one_run(sandbox: TimedSandbox, tree: Path, input_path: Path, run_dir: Path) -> ProcessRun:
    run_dir.mkdir()
    config = {
        "api_key": API_KEY,
        "api_url": sandbox.url,
        "create_custom_fields": True,
        "ledger_path": str(run_dir / "ledger.sqlite"),
        "requests_per_second": UNLIMITED_RPS,
        "rejected_records_path": str(run_dir / "rejected.jsonl"),
    }
    (run_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    os.environ["PYTHONPATH"] = str(tree)  # that checkout's target_ortto wins
    argv = [sys.executable, "-m", "target_ortto", "--config", str(run_dir / "config.json")]
    return run_process(argv, input_path, run_dir / "target.log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout")
    parser.add_argument("--head", type=Path, default=REPO, help="default: this checkout")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args(argv)
    cpu: dict[str, list[float]] = {"base": [], "head": []}
    peak: dict[str, list[float]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="ortto-compare-") as tmp:
        work = Path(tmp)
        input_path = work / "input.jsonl"
        write_input(input_path, args.records)
        sandbox = TimedSandbox(api_key=API_KEY, port=0).start()
        try:
            for round_ in range(args.repeat):
                for name in ("base", "head"):
                    sandbox.fresh()
                    run = one_run(
                        sandbox, getattr(args, name), input_path, work / f"{name}{round_}"
                    )
                    if len(sandbox.store.people) != args.records:
                        raise SystemExit(f"{name} did not load every record")
                    cpu[name].append(run.cpu)
                    peak[name].append(run.peak_mb)
                print(
                    f"round {round_ + 1}: base {cpu['base'][-1]:.2f} s, head {cpu['head'][-1]:.2f}"
                    f" s CPU (base / head {cpu['base'][-1] / cpu['head'][-1]:.2f})",
                    flush=True,
                )
        finally:
            sandbox.stop()
    ratio = min(cpu["base"]) / min(cpu["head"])
    print(
        f"Best of {args.repeat}: base {min(cpu['base']):.2f} s, head {min(cpu['head']):.2f} s CPU "
        f"for {args.records:,} records; base / head = {ratio:.2f} (above 1: the head is "
        f"faster). Peak RSS: base {max(peak['base']):.1f} MB, head {max(peak['head']):.1f} MB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

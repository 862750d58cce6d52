#!/usr/bin/env bash
# Quick start, step 1: install target-ortto and run the demo pipeline
#   tap-jsonl (from PyPI, reading demo/data) -> target-ortto -> the local Ortto sandbox
# then print what landed in the sandbox. Needs only python3 (3.10+).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${DEMO_PORT:-8765}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

.venv/bin/ortto-sandbox --port "$PORT" --api-key demo-sandbox-key &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null || true' EXIT
.venv/bin/python - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_sandbox/state", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the Ortto sandbox did not start")
PY

export PATH="$PWD/.venv/bin:$PATH"
# The sandbox starts empty, so the demo starts with an empty sync ledger too (otherwise a
# second demo run would rightly skip every record as already in Ortto).
rm -f .meltano/target-ortto/ledger.sqlite*
export TARGET_ORTTO_API_KEY=demo-sandbox-key   # the sandbox's key, not a real one
export TARGET_ORTTO_API_URL="http://127.0.0.1:$PORT"
meltano install
# Organizations first: people are linked to the accounts their `company` column names.
meltano run --full-refresh tap-organizations target-ortto tap-people target-ortto \
  tap-events target-ortto

echo
echo "What landed in the Ortto sandbox:"
ortto-sandbox show --url "http://127.0.0.1:$PORT"

#!/usr/bin/env bash
# GPU readiness in one command: the CUDA tests, then the GPU benchmark table (fp32 and bf16, eager and
# compiled, 256 and 512 px, plus the reference-comparison rows at 128 px), within 8 minutes. It writes
# OUT/gpu.md (the tables), OUT/gpu.json (every measurement), OUT/cuda-tests.txt and OUT/bench.log.
# Without an NVIDIA GPU it says so, writes the same files with the reason, and exits 0: CI runs it that way.
#
#   bash benchmarks/gpu.sh [OUT]        # OUT defaults to ./gpu-bench (relative to where it is called from)
# It exits 1 when a CUDA test fails or a benchmark row errs (out of memory, a failed compile, a timeout).
set -uo pipefail
mkdir -p "${1:-gpu-bench}"
OUT="$(cd "${1:-gpu-bench}" && pwd)"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "benchmarks/gpu.sh: $PY cannot import torch: install the project first (pip install -e '.[test]')" >&2
    exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    why="no CUDA device here (torch.cuda.is_available() is False)"
    echo "benchmarks/gpu.sh: skipped: $why"
    echo "# GPU benchmark: skipped: $why" >"$OUT/gpu.md"
    echo "{\"skipped\": \"$why\"}" >"$OUT/gpu.json"
    echo "skipped: $why" >"$OUT/cuda-tests.txt"
    exit 0
fi

start=$(date +%s)
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu-name.txt" 2>&1 || true
# 1. The CUDA tests (marker `cuda`), at most 2 minutes.
timeout 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests >"$OUT/cuda-tests.txt" 2>&1 || status=1
tail -n 3 "$OUT/cuda-tests.txt"
# 2. The table, in what is left of the 8 minutes (rows not started in time are listed as skipped).
left=$((470 - ($(date +%s) - start)))
timeout "$((left > 30 ? left : 30))" "$PY" benchmarks/speed.py --device cuda \
    --budget-s "$((left > 150 ? left - 120 : 15))" --timeout 150 \
    --rows adversarial-256,adversarial-512,cyclegan-r9-128,pix2pix-unet128 \
    --settings fp32,fast+bf16,fast+bf16+compile --steps 5 --warmup 2 \
    --translate-settings "fp32 no_grad,compile,bf16+channels_last,bf16+channels_last+compile" \
    --json "$OUT/gpu.json" >"$OUT/gpu.md" 2>"$OUT/bench.log" || status=1
# speed.py reports a failed row in the table and goes on; here a failed row fails the script
"$PY" - "$OUT/gpu.json" <<'PYEOF' || status=1
import json, sys
bad = ["%s / %s: %s" % (r["row"], r["setting"], r["error"]) for r in json.load(open(sys.argv[1])) if "error" in r]
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
{ echo; echo "GPU: $(cat "$OUT/gpu-name.txt")"; echo "CUDA tests: $(tail -n 1 "$OUT/cuda-tests.txt")"
  echo "wall time: $(($(date +%s) - start)) s"; } >>"$OUT/gpu.md"
cat "$OUT/gpu.md"
exit "$status"

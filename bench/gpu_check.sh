#!/usr/bin/env bash
# One short run of every engine benchmark on a CUDA machine (the device tool's lent GPU).
# Installs nothing heavy: wheels carried in .whl (transformers 5.23, pydantic) go to /tmp/site.
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
run() { echo "== $*"; timeout 150 python3 "$@" 2>&1 | grep -v -E "Loading weights|Writing model"; }
{
  nvidia-smi -L
  run bench/batch_invariance.py --device cuda --dtype float32 --out "$OUT/invariance_fp32.json"
  run bench/batch_invariance.py --device cuda --dtype bfloat16 --out "$OUT/invariance_bf16.json"
  run bench/batching.py --device cuda --rounds 3 --out "$OUT/batching_tiny.json"
  run bench/batching.py --device cuda --rounds 2 --size small --out "$OUT/batching_small.json"
  run bench/frame_budget.py --device cuda --frames 600 --out "$OUT/frame_budget_tiny.json"
  run bench/frame_budget.py --device cuda --frames 600 --size small --out "$OUT/frame_budget_small.json"
  run bench/prefix_cache.py --device cuda --out "$OUT/prefix_cache.json"
} 2>&1 | tee "$OUT/bench.log"

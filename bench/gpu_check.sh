#!/usr/bin/env bash
# One short run of the benchmarks on a CUDA machine (the device tool's lent GPU).
#   bench/gpu_check.sh          the engine benchmarks (invariance, batching, frame budget, prefix cache)
#   bench/gpu_check.sh fast     issue 20, on CUDA: first whether the runners agree (static_parity.py:
#                               general, fast, static, compiled, graphs on the same says, float32), then the
#                               engine step by runner side by side (featherweight, built-in, 85M at
#                               batch 1/8/32: general, fast, static, compiled, graphs), 64 NPCs in a 4 ms
#                               budget at 60 fps with drafts, and batching, for runner fast (which
#                               on CUDA is the static runner with CUDA graphs) and general
#   bench/gpu_check.sh backends the ONNX backend: step times on the host CPU (and PyTorch on the GPU
#                               beside it) and tests/test_onnx.py. That machine's onnxruntime is the
#                               CPU build (onnxruntime-gpu is too big to carry), so ONNX runs on CPU.
# Installs nothing heavy: wheels carried in .whl (transformers 5.23, pydantic, pyzmq) go to /tmp/site.
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
source bench/gpu_env.sh
run() { echo "== $*"; timeout "${LIMIT:-200}" python3 "$@" 2>&1 | grep -v -E "Loading weights|Writing model"; }
engine() {
  run bench/batch_invariance.py --device cuda --dtype float32 --out "$OUT/invariance_fp32.json"
  run bench/batch_invariance.py --device cuda --dtype bfloat16 --out "$OUT/invariance_bf16.json"
  run bench/batching.py --device cuda --rounds 3 --out "$OUT/batching_tiny.json"
  run bench/batching.py --device cuda --rounds 2 --size small --out "$OUT/batching_small.json"
  run bench/frame_budget.py --device cuda --frames 600 --out "$OUT/frame_budget_tiny.json"
  run bench/frame_budget.py --device cuda --frames 600 --size small --out "$OUT/frame_budget_small.json"
  run bench/prefix_cache.py --device cuda --out "$OUT/prefix_cache.json"
}
fast() {
  LIMIT=240 run bench/static_parity.py --device cuda --dtype float32 --out "$OUT/static_parity.json"
  LIMIT=420 run bench/fast_path.py --device cuda --models featherweight,built-in,small --rounds 5 --out "$OUT/fast_path.json"
  for runner in fast general; do
    run bench/frame_budget.py --device cuda --runner $runner --model npc_engine/default_model --characters 64 \
      --budget-ms 4 --frames 600 --drafts --out "$OUT/frame_budget_4ms_$runner.json"
    run bench/batching.py --device cuda --runner $runner --rounds 3 --out "$OUT/batching_tiny_$runner.json"
  done
}
backends() {
  python3 -c "import onnxruntime, torch; print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers(), 'torch', torch.__version__)"
  run bench/backends.py --model default --rounds 5 --out "$OUT/backends_default_cpu.json"
  run bench/backends.py --model small --rounds 2 --steps 4 --out "$OUT/backends_small_cpu.json"
  run bench/backends.py --model default --rounds 5 --torch-device cuda --out "$OUT/backends_default_torch_cuda.json"
  echo "== pytest tests/test_onnx.py"
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_onnx.py 2>&1 | tail -15
}
{
  nvidia-smi -L
  case "${1:-}" in backends) backends ;; fast) fast ;; *) engine ;; esac
} 2>&1 | tee "$OUT/bench${1:+_$1}.log"

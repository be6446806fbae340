#!/usr/bin/env bash
# The ONNX backend's checks on a lent GPU machine: the step benchmark on its CPU (and PyTorch on its
# GPU beside it), and the ONNX test file. Installs nothing heavy: wheels carried in .whl go to
# /tmp/site. The machine's onnxruntime is the CPU build (onnxruntime-gpu is too big to carry), so
# an ONNX run there asked for CUDA falls back to CPU, as the backend documents.
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
run() { echo "== $*"; timeout 200 python3 "$@" 2>&1 | grep -v -E "Loading weights|Writing model"; }
{
  nvidia-smi -L
  python3 -c "import onnxruntime, torch; print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers(), 'torch', torch.__version__, 'threads', torch.get_num_threads())"
  run bench/backends.py --model default --rounds 5 --out "$OUT/backends_default_cpu.json"
  run bench/backends.py --model small --rounds 2 --steps 4 --out "$OUT/backends_small_cpu.json"
  run bench/backends.py --model default --rounds 5 --torch-device cuda --out "$OUT/backends_default_torch_cuda.json"
  echo "== pytest tests/test_onnx.py"
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_onnx.py 2>&1 | tail -15
} 2>&1 | tee "$OUT/backends.log"

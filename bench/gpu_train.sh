#!/usr/bin/env bash
# The built-in model's training recipe on a CUDA machine (the device tool's lent GPU), to see what
# a GPU does to the hour a CPU takes. Writes the model folder and the training log under $OUT.
#   bench/gpu_train.sh                 the tavern recipe (docs/model-card.md), 8,500 streamed steps
#   bench/gpu_train.sh WORLD STEPS     another world file and step count (e.g. demos/worlds/outpost.json 3000)
# Installs nothing heavy: wheels carried in .whl (transformers 5.23, pydantic, tokenizers, ...) go
# to /tmp/site, as bench/gpu_check.sh does. LIMIT (seconds) stops the run early; the folder then
# holds the checkpoint's model (--stop-at semantics: `npc-engine train --resume` continues it).
set -uo pipefail
OUT=${OUT:-bench/results/gpu_train}
WORLD=${1:-npc_engine/worlds/tavern.json}
STEPS=${2:-8500}
mkdir -p "$OUT"
source bench/gpu_env.sh
{
  nvidia-smi -L
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  started=$(date +%s)
  timeout "${LIMIT:-3000}" python3 -m npc_engine.cli train --device cuda --world "$WORLD" --out "$OUT/model" \
    --overwrite --preset voice --stream --steps "$STEPS" --batch-size 16 --learning-rate 3e-3 --ar-weight 0 \
    --event-fraction 0.15 --npc-fraction 0.1 --eval-every 250
  echo "== trained in $(( $(date +%s) - started )) s"
  timeout 600 python3 -m npc_engine.cli eval --model "$OUT/model" --device cuda --num-samples 100 \
    --slices heldout,paraphrase,events --no-floor --json "$OUT/eval.json"
} 2>&1 | tee "$OUT/train.log"

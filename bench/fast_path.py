"""The engine's PyTorch step on the fast path (our own forward) vs the general path (transformers'
forward), side by side: one `runner.step(...)` (decoder forward + sampler + bookkeeping), what a
frame pays, for the same prefilled requests (same template, prompts, seeds).

Rows: a featherweight model (1 layer, hidden 16: nearly all host time) at batch 1, and the
built-in model at batch 1, 8 and 32. Rounds alternate between the paths so machine noise hits both
alike; medians are reported with the speed-up (general ms / fast ms).

    python bench/fast_path.py [--rounds 9] [--steps 8] [--device cpu|cuda] [--batch-sizes 1,8,32]
                              [--models featherweight,built-in[,small]] [--out FILE]

`small` is the random 85M model of bench/common.py, at the same batch sizes as the built-in one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_SIZES, hardware, running_batch, time_step_ms, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine.diffusion import DiffusionSettings  # noqa: E402
from npc_engine.engine import Engine  # noqa: E402
from npc_engine.models import TinyModelSpec, build_tiny_model, default_model_dir  # noqa: E402
from npc_engine.models.backend import DiffusionGemmaBackend  # noqa: E402

FEATHERWEIGHT = TinyModelSpec(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              num_key_value_heads=1, head_dim=8, num_experts=2, top_k_experts=1,
                              moe_intermediate_size=16)


def engine_for(folder: Path, runner: str, device: str | None) -> Engine:
    backend = DiffusionGemmaBackend.from_pretrained(folder, device=device, runner=runner)
    if backend.runner != runner:
        raise SystemExit(f"{folder}: the fast path does not cover this model")
    return Engine(backend, DiffusionSettings(max_denoising_steps=100_000))  # no canvas ends while timed


def measure(folder: Path, batch_size: int, args) -> dict:
    engines = {runner: engine_for(folder, runner, args.device) for runner in ("general", "fast")}
    batches = {runner: running_batch(engine, batch_size) for runner, engine in engines.items()}
    for runner, engine in engines.items():  # warm up
        time_step_ms(engine, batches[runner], 2)
    samples = {runner: [] for runner in engines}
    for _ in range(args.rounds):
        for runner, engine in engines.items():
            samples[runner].append(time_step_ms(engine, batches[runner], args.steps))
    general, fast = (statistics.median(samples[r]) for r in ("general", "fast"))
    return {"batch_size": batch_size, "general_ms": general, "fast_ms": fast, "speedup": general / fast,
            "num_parameters": engines["fast"].backend.info().num_parameters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--models", default="featherweight,built-in")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="npc-bench-"))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    for name in args.models.split(","):
        if name == "featherweight":
            rows.append({"model": name, **measure(Path(build_tiny_model(scratch / name, FEATHERWEIGHT)), 1, args)})
            continue
        folder = default_model_dir() if name == "built-in" else Path(build_tiny_model(scratch / name, MODEL_SIZES[name]))
        rows += [{"model": name, **measure(folder, batch, args)} for batch in batch_sizes]
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    machine = hardware(device)
    print(f"engine step, fast vs general path, on {machine} (torch {torch.__version__}); "
          f"{args.rounds} rounds x {args.steps} steps, medians")
    print(f"{'model':<14} | {'params':>9} | {'batch':>5} | {'general ms':>10} | {'fast ms':>8} | {'speed-up':>8}")
    for row in rows:
        print(f"{row['model']:<14} | {row['num_parameters']:>9,} | {row['batch_size']:>5} | {row['general_ms']:>10.3f} | "
              f"{row['fast_ms']:>8.3f} | {row['speedup']:>7.2f}x")
    write_json("fast_path", {"hardware": machine, "torch": torch.__version__, "rows": rows, "args": vars(args)},
               args.out)


if __name__ == "__main__":
    main()

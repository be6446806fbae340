"""The engine's PyTorch step on each runner, side by side: one `runner.step(...)` (decoder forward +
sampler + bookkeeping), what a frame pays, for the same prefilled requests (same template,
prompts, seeds).

Runners: general (transformers' forward), fast (our own forward, dynamic shapes: the CPU's
default), static (our own forward over per-slot state; padded to buckets where that is the
device's default), compiled (static, its step through torch.compile, compiled before timing;
on CUDA also captured as graphs), and on CUDA graphs (the static step replayed as CUDA graphs:
the GPU's default).
Rows: a featherweight model (1 layer, hidden 16: nearly all host time) at batch 1, and the
built-in model at batch 1, 8 and 32. Rounds alternate between the runners so machine noise hits
them alike; medians are reported with the speed-up of the best of our runners (general ms / ms).

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
from common import MODEL_SIZES, engine_on_runner, hardware, running_batch, time_step_ms, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine.diffusion import DiffusionSettings  # noqa: E402
from npc_engine.engine import Engine  # noqa: E402
from npc_engine.models import TinyModelSpec, build_tiny_model, default_model_dir  # noqa: E402

FEATHERWEIGHT = TinyModelSpec(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              num_key_value_heads=1, head_dim=8, num_experts=2, top_k_experts=1,
                              moe_intermediate_size=16)


def runner_names(device: torch.device) -> list[str]:
    return ["general", "fast", "static", "compiled"] + (["graphs"] if device.type == "cuda" else [])


def engine_for(folder: Path, runner: str, device: str | None, num_slots: int) -> Engine:
    engine, _ = engine_on_runner(folder, runner, device=device, num_slots=num_slots,
                                 settings=DiffusionSettings(max_denoising_steps=100_000))  # no canvas ends while timed
    if runner == "compiled" and not engine.core.runner.is_compiled:
        print("warning: torch.compile failed (see the log); the compiled column is the eager static step")
    return engine


def measure(folder: Path, batch_sizes: list[int], args, device: torch.device) -> list[dict]:
    """One row per batch size; each runner's engine is built once per model (a compiled runner
    compiles once), its slots sized for the largest batch and given back between sizes."""
    names = runner_names(device)
    engines = {name: engine_for(folder, name, args.device, max(batch_sizes)) for name in names}
    rows = []
    for batch_size in batch_sizes:
        batches = {name: running_batch(engine, batch_size) for name, engine in engines.items()}
        for name, engine in engines.items():  # warm up
            time_step_ms(engine, batches[name], 2)
        samples = {name: [] for name in engines}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                samples[name].append(time_step_ms(engine, batches[name], args.steps))
        row = {"batch_size": batch_size, "num_parameters": engines["general"].backend.info().num_parameters}
        for name in names:
            row[f"{name}_ms"] = statistics.median(samples[name])
        best = min(names[1:], key=lambda n: row[f"{n}_ms"])
        row["best"], row["speedup"] = best, row["general_ms"] / row[f"{best}_ms"]
        rows.append(row)
        for name, engine in engines.items():
            for request in batches[name]:
                engine.core.runner.release(request)
    return rows


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
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for name in args.models.split(","):
        if name == "featherweight":
            folder, sizes = Path(build_tiny_model(scratch / name, FEATHERWEIGHT)), [1]
        else:
            folder = default_model_dir() if name == "built-in" else Path(build_tiny_model(scratch / name,
                                                                                         MODEL_SIZES[name]))
            sizes = batch_sizes
        rows += [{"model": name, **row} for row in measure(folder, sizes, args, device)]
    machine = hardware(device)
    names = runner_names(device)
    print(f"engine step by runner, on {machine} (torch {torch.__version__}); "
          f"{args.rounds} rounds x {args.steps} steps, medians, ms")
    print(f"{'model':<14} | {'params':>11} | {'batch':>5} | " + " | ".join(f"{n:>8}" for n in names)
          + f" | {'best':>7} | {'speed-up':>8}")
    for row in rows:
        print(f"{row['model']:<14} | {row['num_parameters']:>11,} | {row['batch_size']:>5} | "
              + " | ".join(f"{row[n + '_ms']:>8.3f}" for n in names)
              + f" | {row['best']:>7} | {row['speedup']:>7.2f}x")
    write_json("fast_path", {"hardware": machine, "torch": torch.__version__, "rows": rows, "args": vars(args)},
               args.out)


if __name__ == "__main__":
    main()

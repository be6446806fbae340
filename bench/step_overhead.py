"""Per-step cost of the engine's PyTorch step vs the bare decoder forward, side by side.

For batch sizes 1, 8 and 32 on the tiny random DiffusionGemma, time:
- `forward`: `backend.denoise(...)` alone (decoder forward + LM head, what any step must pay);
- `step`: the engine runner's `step(...)` (forward + the sampler with the template's clamps and
  allowed-token masks, acceptance, renoise, stopping, row bookkeeping): what a frame pays.
Rounds alternate between the two so machine noise hits both alike; medians are reported.

    python bench/step_overhead.py [--rounds 15] [--steps 10] [--device cpu|cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import hardware, running_batch  # noqa: E402

from npc_engine.diffusion import DiffusionSettings  # noqa: E402
from npc_engine.engine import Engine  # noqa: E402
from npc_engine.models import DiffusionGemmaBackend, build_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def time_steps(fn, num_steps, backend) -> float:
    backend.synchronize()
    started = time.perf_counter()
    for _ in range(num_steps):
        fn()
    backend.synchronize()
    return (time.perf_counter() - started) * 1000.0 / num_steps


def measure(engine: Engine, batch_size: int, rounds: int, num_steps: int) -> dict:
    backend, runner = engine.backend, engine.core.runner
    requests = running_batch(engine, batch_size)
    runner.forget_batch()
    runner.step(requests)  # the batch is stacked and has self-conditioning logits from here on
    batch = runner._resident

    def bare_forward():
        with torch.inference_mode():
            backend.denoise(batch.canvas, batch.self_conditioning_logits, batch.cache, batch.masks,
                            batch.position_ids)

    candidates = {"forward": bare_forward, "step": lambda: runner.step(requests)}
    for fn in candidates.values():  # warm-up
        time_steps(fn, 2, backend)
    samples = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            samples[name].append(time_steps(fn, num_steps, backend))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "batch_size": batch_size,
        "forward_ms": medians["forward"],
        "step_ms": medians["step"],
        "step_overhead_pct": 100.0 * (medians["step"] / medians["forward"] - 1.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--model", default=None, help="checkpoint folder (default: a fresh tiny model)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "step_overhead.json"))
    args = parser.parse_args(argv)

    model_dir = args.model or build_tiny_model(Path(tempfile.mkdtemp(prefix="npc-bench-")))
    backend = DiffusionGemmaBackend.from_pretrained(model_dir, device=args.device)
    # A step cap far above what we run, so no canvas ends while being timed.
    engine = Engine(backend, DiffusionSettings(max_denoising_steps=100_000))
    rows = [measure(engine, int(b), args.rounds, args.steps) for b in args.batch_sizes.split(",")]

    info = backend.info()
    header = {
        "hardware": hardware(backend.device), "device": info.device, "dtype": info.dtype,
        "num_parameters": info.num_parameters, "vocab_size": info.vocab_size,
        "canvas_length": info.canvas_length, "torch": torch.__version__,
        "rounds": args.rounds, "steps_per_round": args.steps,
    }
    print(f"step overhead on {header['hardware']} ({info.device}, {info.dtype}); tiny model "
          f"{info.num_parameters / 1e6:.2f}M params, vocab {info.vocab_size}, canvas {info.canvas_length}")
    print(f"{'batch':>5} | {'forward ms':>10} | {'step ms':>8} | {'step overhead':>13}")
    for row in rows:
        print(f"{row['batch_size']:>5} | {row['forward_ms']:>10.3f} | {row['step_ms']:>8.3f} | "
              f"{row['step_overhead_pct']:>12.1f}%")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": header, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

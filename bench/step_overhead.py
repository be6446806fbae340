"""Per-step cost of our denoising loop vs the bare decoder forward, side by side.

For batch sizes 1, 8 and 32 on the tiny random DiffusionGemma, time:
- `forward`: `backend.denoise(...)` alone (decoder forward + LM head, what any loop must pay);
- `loop`: `BlockDiffusion.step(...)` (forward + sampling, acceptance, renoise, stopping);
- `loop+template`: the same step with a template's clamps and allowed-token masks.
Rounds alternate between the three so machine noise hits all of them alike; medians are reported.

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
from common import hardware  # noqa: E402

from npc_engine.diffusion import BlockDiffusion, DiffusionSettings, RowNoise  # noqa: E402
from npc_engine.models import DiffusionGemmaBackend, build_tiny_model  # noqa: E402
from npc_engine.templates import TemplateCompiler, load_template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "schemas" / "templates" / "shopkeeper_reply.json"


def make_batch(backend, loop, batch_size, constraint):
    prompt = torch.tensor([backend.tokenizer.encode("Got any rumours about the marsh?")] * batch_size)
    generators = [torch.Generator(device=backend.device).manual_seed(i) for i in range(batch_size)]
    constraints = [constraint] * batch_size if constraint is not None else None
    return loop.start(prompt, noise=RowNoise(generators), constraints=constraints)


def time_steps(fn, num_steps, backend) -> float:
    backend.synchronize()
    started = time.perf_counter()
    for _ in range(num_steps):
        fn()
    backend.synchronize()
    return (time.perf_counter() - started) * 1000.0 / num_steps


def measure(backend, batch_size, rounds, num_steps, plan) -> dict:
    # A step cap far above what we run, so no canvas ends while being timed.
    settings = DiffusionSettings(max_denoising_steps=100_000)
    loop = BlockDiffusion(backend, settings)
    free = make_batch(backend, loop, batch_size, None)
    templated = make_batch(backend, loop, batch_size, plan.constraint(backend.device))
    loop.step(free)  # self-conditioning logits exist from here on, as in every later step

    def bare_forward():
        with torch.inference_mode():
            backend.denoise(free.canvas, free.self_conditioning_logits, free.cache,
                            free.decoder_masks, free.decoder_position_ids)

    candidates = {
        "forward": bare_forward,
        "loop": lambda: loop.step(free),
        "loop+template": lambda: loop.step(templated),
    }
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
        "loop_ms": medians["loop"],
        "loop_template_ms": medians["loop+template"],
        "loop_overhead_pct": 100.0 * (medians["loop"] / medians["forward"] - 1.0),
        "template_overhead_pct": 100.0 * (medians["loop+template"] / medians["forward"] - 1.0),
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
    plan = TemplateCompiler.for_backend(backend).compile(load_template(TEMPLATE))
    rows = [measure(backend, int(b), args.rounds, args.steps, plan) for b in args.batch_sizes.split(",")]

    info = backend.info()
    header = {
        "hardware": hardware(backend.device), "device": info.device, "dtype": info.dtype,
        "num_parameters": info.num_parameters, "vocab_size": info.vocab_size,
        "canvas_length": info.canvas_length, "torch": torch.__version__,
        "rounds": args.rounds, "steps_per_round": args.steps,
    }
    print(f"step overhead on {header['hardware']} ({info.device}, {info.dtype}); tiny model "
          f"{info.num_parameters / 1e6:.2f}M params, vocab {info.vocab_size}, canvas {info.canvas_length}")
    print(f"{'batch':>5} | {'forward ms':>10} | {'loop ms':>8} | {'loop+template ms':>16} | "
          f"{'loop overhead':>13} | {'template overhead':>17}")
    for row in rows:
        print(f"{row['batch_size']:>5} | {row['forward_ms']:>10.3f} | {row['loop_ms']:>8.3f} | "
              f"{row['loop_template_ms']:>16.3f} | {row['loop_overhead_pct']:>12.1f}% | "
              f"{row['template_overhead_pct']:>16.1f}%")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": header, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

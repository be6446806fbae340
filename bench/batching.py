"""Throughput: 32 requests through the engine (continuous batching) vs 32 sequential `generate`s.

Same model, same prompts, same step cap. The engine fills the shopkeeper template (constraints
included); `model.generate` fills one free canvas per call. Rounds alternate between the two so
machine noise hits both alike; medians are reported.

    python bench/batching.py [--requests 32] [--rounds 3] [--max-steps 16] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import (  # noqa: E402
    TEMPLATE, add_model_arguments, describe, headline, load_backend, load_settings, write_json)

from npc_engine.engine import Engine, EngineConfig  # noqa: E402

PLAYER_LINES = ["Got any rumours?", "How much for the rope?", "Is the mine haunted?", "Good day to you.",
                "I need a healing potion, quick.", "Who rules this town?", "Any work for a sellsword?",
                "Why so grim today?"]


def run_engine(engine: Engine, prompts: list[str]) -> tuple[float, float]:
    engine.backend.synchronize()
    started = time.perf_counter()
    handles = [engine.submit(TEMPLATE, p, seed=i) for i, p in enumerate(prompts)]
    while not all(h.done() for h in handles):
        engine.tick()
    engine.backend.synchronize()
    elapsed = time.perf_counter() - started
    results = [h.result() for h in handles]
    if any(r.finish_reason != "complete" for r in results):
        raise RuntimeError("an engine request did not complete")
    return elapsed, statistics.mean(r.num_steps for r in results)


def run_generate(engine: Engine, prompts: list[str]) -> float:
    backend = engine.backend
    kwargs = engine.settings.to_generate_kwargs()
    encoded = [torch.tensor([engine.encode_prompt(p)], device=backend.device) for p in prompts]
    backend.synchronize()
    started = time.perf_counter()
    for i, input_ids in enumerate(encoded):
        torch.manual_seed(i)
        backend.model.generate(input_ids, max_new_tokens=backend.canvas_length, **kwargs)
    backend.synchronize()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    add_model_arguments(parser)
    args = parser.parse_args(argv)

    backend = load_backend(args)
    engine = Engine(backend, load_settings(backend, args),
                    EngineConfig(max_batch_size=args.requests))
    prompts = [PLAYER_LINES[i % len(PLAYER_LINES)] for i in range(args.requests)]
    run_engine(engine, prompts[:2])  # warm-up: kernels, allocator, template compile
    run_generate(engine, prompts[:2])
    engine_s, generate_s, engine_steps = [], [], []
    for _ in range(args.rounds):
        seconds, steps = run_engine(engine, prompts)
        engine_s.append(seconds)
        engine_steps.append(steps)
        generate_s.append(run_generate(engine, prompts))

    meta = describe(engine.backend) | {"requests": args.requests, "rounds": args.rounds, "max_steps": args.max_steps}
    engine_rps = args.requests / statistics.median(engine_s)
    generate_rps = args.requests / statistics.median(generate_s)
    rows = [
        {"method": "engine (continuous batching, template)", "median_s": statistics.median(engine_s),
         "requests_per_s": engine_rps, "mean_steps": statistics.mean(engine_steps)},
        {"method": "sequential model.generate", "median_s": statistics.median(generate_s),
         "requests_per_s": generate_rps, "mean_steps": None},
    ]
    print(headline(f"batching, {args.requests} requests, step cap {args.max_steps}", meta))
    print(f"{'method':<40} | {'median s':>9} | {'requests/s':>10}")
    for row in rows:
        print(f"{row['method']:<40} | {row['median_s']:>9.3f} | {row['requests_per_s']:>10.2f}")
    print(f"engine / generate throughput: {engine_rps / generate_rps:.1f}x (goal >= 8x); "
          f"engine mean steps per request {statistics.mean(engine_steps):.1f}")
    write_json("batching", {"meta": meta, "rows": rows, "speedup": engine_rps / generate_rps,
                            "engine_s": engine_s, "generate_s": generate_s}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

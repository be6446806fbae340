"""Does a request's output depend on who shares its batch? Alone vs batched, on one device/dtype.

Prints how many of N requests came out identical. On CPU float32 the tests require all of them;
on a GPU (bf16, cuBLAS picking kernels by shape) the numbers say how close batching stays.

    python bench/batch_invariance.py [--requests 16] [--device cuda] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    TEMPLATE, add_model_arguments, describe, headline, load_backend, load_settings, write_json)

from npc_engine.engine import Engine, EngineConfig  # noqa: E402

PROMPTS = ["Hello!", "Any rumours about the marsh?", "Buy?", "I want a sword and a shield, and be quick.",
           "Why is the bridge closed?", "Good morning, friend."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--out", default=None)
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    backend = load_backend(args)
    settings = load_settings(backend, args)
    cases = [(PROMPTS[i % len(PROMPTS)], f"You are villager {i}." if i % 2 else None) for i in range(args.requests)]
    alone_engine = Engine(backend, settings, EngineConfig())
    alone = [alone_engine.fill(TEMPLATE, p, seed=i, prefix=pf) for i, (p, pf) in enumerate(cases)]
    batched_engine = Engine(backend, settings, EngineConfig(max_batch_size=args.requests))
    handles = [batched_engine.submit(TEMPLATE, p, seed=i, prefix=pf) for i, (p, pf) in enumerate(cases)]
    while not all(h.done() for h in handles):
        batched_engine.tick()
    num_identical = sum(a.fields == h.result().fields for a, h in zip(alone, handles))
    meta = describe(backend)
    print(headline("batch invariance", meta))
    print(f"identical outputs alone vs batched: {num_identical}/{args.requests}")
    write_json(f"batch_invariance_{meta['dtype']}", {"meta": meta, "identical": num_identical,
                                                     "requests": args.requests}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

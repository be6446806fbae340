"""Cost per block: a template over two canvases against a one-canvas template, side by side.

On the built-in model (64-token canvas): `shopkeeper_reply` (one block) and the six-field
`quest_reply` with a 32-token line (70 positions: two blocks). Every block runs exactly
`--steps` denoising steps (the stopping rule is held off: a stability threshold of `--steps`
steps cannot be met within the cap, and every fill's step count is checked to be steps x blocks;
left on, the second block of quest_reply, mostly clamped padding, stops after a few steps), so a
block's cost is comparable: the two-block fill pays two denoising runs plus one encode of the
finished block. Fills of one request, and batches of four, alternate between the templates
round by round; medians. The goal: a two-block template's cost per block within 10% of a
one-block template's.

    python bench/multi_block.py [--rounds 7] [--steps 12] [--runner fast|static]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PERSONA, PROMPTS, hardware, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine.engine import Engine  # noqa: E402

QUEST_REPLY = Path(__file__).resolve().parent.parent / "schemas" / "templates" / "quest_reply.json"

def fill_ms(engine: Engine, plan, batch_size: int, seed: int) -> float:
    started = time.perf_counter()
    handles = [engine.submit(plan, PROMPTS[(seed + i) % len(PROMPTS)], prefix=PERSONA, seed=seed * 100 + i)
               for i in range(batch_size)]
    results = [engine.wait(handle) for handle in handles]
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    expected = engine.settings.max_denoising_steps * plan.num_blocks
    if any(result.num_steps != expected for result in results):
        raise SystemExit(f"a fill stopped early ({[r.num_steps for r in results]} steps, {expected} expected): "
                         "the per-block comparison needs every block to run every step")
    return elapsed_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=12, help="denoising steps per block (all of them run)")
    parser.add_argument("--runner", default="fast", choices=("fast", "static"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    engine = Engine.from_pretrained(runner=args.runner, max_denoising_steps=args.steps,
                                    stability_threshold=args.steps)
    plans = {"one block (shopkeeper_reply)": engine.plan_for("shopkeeper_reply"),
             "two blocks (quest_reply)": engine.plan_for(QUEST_REPLY)}
    rows = {}
    for batch_size in (1, 4):
        samples: dict[str, list[float]] = {name: [] for name in plans}
        for name, plan in plans.items():
            fill_ms(engine, plan, batch_size, seed=99)  # warm: the persona's prefix cached, shapes seen
        for round_index in range(args.rounds):
            for name, plan in plans.items():
                samples[name].append(fill_ms(engine, plan, batch_size, seed=round_index))
        for name, plan in plans.items():
            total = statistics.median(samples[name])
            rows[f"{name}, batch {batch_size}"] = {
                "num_blocks": plan.num_blocks, "batch_size": batch_size, "fill_ms": total,
                "per_block_ms": total / plan.num_blocks}
    machine = hardware(torch.device("cpu"))
    print(f"Cost per block on {machine}, built-in model, runner {engine.core.runner.name}, {args.steps} steps a "
          f"block, median of {args.rounds} rounds")
    print("| template, batch | blocks | fill ms | ms per block | vs one block |\n|---|---:|---:|---:|---:|")
    for key, row in rows.items():
        base = rows[f"one block (shopkeeper_reply), batch {row['batch_size']}"]["per_block_ms"]
        print(f"| {key} | {row['num_blocks']} | {row['fill_ms']:.1f} | {row['per_block_ms']:.1f} | "
              f"{row['per_block_ms'] / base:.3f}x |")
    write_json("multi_block", {"hardware": machine, "rows": rows, "args": vars(args)}, args.out)
    engine.close()


if __name__ == "__main__":
    main()

"""Pattern text slots (issue 31): what a pattern costs, side by side with the step it rides on.

1. Compiling the tavern's whole line pattern (training/line_pattern.py: every mood opener, every
   intent's and event's line, items and places as alternatives, names filled) for the built-in
   model: first use (the vocabulary's byte strings, then outlines-core's index) and cached.
2. The dynamic program that resolves one pattern slot (32 positions) from a step's logits, for
   batch 1 and 8 (one slot per request), against the built-in model's engine step at the same
   batch sizes, in turns (goal: <= 15% of the step).

    python bench/patterns.py [--rounds 7] [--steps 6] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import engine_on_runner, hardware, running_batch, time_step_ms, write_json  # noqa: E402

from npc_engine.diffusion.automaton import best_accepted  # noqa: E402
from npc_engine.models import default_model_dir  # noqa: E402
from npc_engine.templates.pattern import PatternCompiler  # noqa: E402
from npc_engine.templates.placeholders import fill_placeholders  # noqa: E402
from npc_engine.training.line_pattern import world_line_pattern  # noqa: E402

VALUES = {"player": "Aria", "name": "Brom", "town": "Thornvale", "signature": "Steel never lies", "role": "the smith"}
SLOT_TOKENS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=6, help="steps per round (at most 14)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    engine, _ = engine_on_runner(default_model_dir(), "fast", device=args.device)
    compiler = engine.compiler
    regex = fill_placeholders(world_line_pattern(), VALUES)
    started = time.perf_counter()
    patterns = PatternCompiler(compiler.tokenizer, compiler.text_vocabulary(), compiler.eos_token_ids[0])
    automaton = patterns.compile(regex)
    first_ms = (time.perf_counter() - started) * 1000
    cached = []
    for _ in range(100):
        started = time.perf_counter()
        patterns.compile(regex)
        cached.append((time.perf_counter() - started) * 1000)
    rows = {}
    for batch_size in (1, 8):
        logits = torch.randn(batch_size, SLOT_TOKENS, engine.backend.vocab_size,
                             generator=torch.Generator().manual_seed(batch_size)) * 3
        step_ms, pattern_ms = [], []
        for _ in range(args.rounds):
            requests = running_batch(engine, batch_size)  # fresh each round: the schedule has 16 steps
            step_ms.append(time_step_ms(engine, requests, args.steps))
            started = time.perf_counter()
            for _ in range(args.steps):
                for row in range(batch_size):  # what rendering does per request: softmax on the host, then the DP
                    span = logits[row].numpy()
                    peak = span.max(axis=-1, keepdims=True)
                    log_probs = span - peak - np.log(np.exp(span - peak).sum(axis=-1, keepdims=True))
                    best_accepted(log_probs, automaton, compiler.pad_token_id)
            pattern_ms.append((time.perf_counter() - started) * 1000 / args.steps)
        rows[batch_size] = {"step_ms": statistics.median(step_ms), "pattern_ms": statistics.median(pattern_ms),
                            "step_rounds": step_ms, "pattern_rounds": pattern_ms}
    engine.close()
    machine = hardware(torch.device(args.device))
    print(f"\nPatterns on {machine}; built-in model, fast runner")
    print(f"tavern line pattern: {automaton.num_states:,} states, {automaton.num_edges:,} token edges; "
          f"compile first use {first_ms:.0f} ms, cached {statistics.median(cached) * 1000:.1f} us (median of 100)")
    print(f"\n| batch | engine step ms (median of {args.rounds}) | pattern slot DP ms, {SLOT_TOKENS} positions, "
          "all rows | DP / step |\n|---:|---:|---:|---:|")
    for batch_size, row in rows.items():
        print(f"| {batch_size} | {row['step_ms']:.2f} | {row['pattern_ms']:.2f} | "
              f"{row['pattern_ms'] / row['step_ms'] * 100:.0f}% |")
    write_json("patterns", {"hardware": machine, "num_states": automaton.num_states,
                            "num_edges": automaton.num_edges, "compile_first_ms": first_ms,
                            "compile_cached_ms": statistics.median(cached), "rows": rows, "args": vars(args)},
               args.out)


if __name__ == "__main__":
    main()

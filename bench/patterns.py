"""Pattern text slots (issue 31): what a pattern costs, side by side with the step it rides on.

1. Compiling the tavern's whole line pattern (training/line_pattern.py: every mood opener, every
   intent's and event's line, items and places as alternatives, names filled) for the built-in
   model: first use (the vocabulary's byte strings, then outlines-core's index) and cached.
2. Served: the built-in model's `shopkeeper_authored` template through the engine (requests of
   the demo's prompts, one at a time and 8 at once), every step held to the pattern: host time of
   the constraint per step against the rest of the step (goal: <= 15%), and how often each search
   ran (the argmax or the previous line was the answer / a search bounded by the previous line /
   the full search).
3. The full search alone (no incumbent: what the first step of a request pays) on random logits,
   one 32-position slot per request, against the engine step of the free-text template.

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
from common import PERSONA, PROMPTS, engine_on_runner, hardware, running_batch, time_step_ms, write_json  # noqa: E402

from npc_engine.diffusion import automaton as automaton_module  # noqa: E402
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
        step_ms, full_ms = [], []
        for _ in range(args.rounds):
            requests = running_batch(engine, batch_size)  # fresh each round: the schedule has 16 steps
            step_ms.append(time_step_ms(engine, requests, args.steps))
            started = time.perf_counter()
            for _ in range(args.steps):
                for row in range(batch_size):  # per request: softmax on the host, then the search
                    span = logits[row].numpy()
                    peak = span.max(axis=-1, keepdims=True)
                    log_probs = span - peak - np.log(np.exp(span - peak).sum(axis=-1, keepdims=True))
                    best_accepted(log_probs, automaton, compiler.pad_token_id)
            full_ms.append((time.perf_counter() - started) * 1000 / args.steps)
        served_rounds = [_served(engine, batch_size) for _ in range(max(1, args.rounds // 2))]
        rows[batch_size] = {"free_step_ms": statistics.median(step_ms), "full_search_ms": statistics.median(full_ms),
                            "served": _summed(served_rounds), "step_rounds": step_ms, "full_rounds": full_ms}
    engine.close()
    machine = hardware(torch.device(args.device))
    print(f"\nPatterns on {machine}; built-in model, fast runner")
    print(f"tavern line pattern: {automaton.num_states:,} states, {automaton.num_edges:,} token edges; "
          f"compile first use {first_ms:.0f} ms, cached {statistics.median(cached) * 1000:.1f} us (median of 100)")
    print(f"\nServed ({AUTHORED.name}, the demo's {len(PROMPTS)} prompts, every step held to the pattern):\n"
          "| batch | steps | step ms without the constraint | constraint ms per step | constraint / step "
          "| the argmax was accepted / bounded search / full search |\n|---:|---:|---:|---:|---:|---|")
    for batch_size, row in rows.items():
        served = row["served"]
        rest_ms = (served["step_ms"] - served["constraint_ms"]) / served["num_steps"]
        constraint_ms = served["constraint_ms"] / served["num_steps"]
        calls = served["num_searches"]
        shares = [calls - served["num_pruned"] - served["num_full"], served["num_pruned"], served["num_full"]]
        print(f"| {batch_size} | {served['num_steps']} | {rest_ms:.2f} | {constraint_ms:.2f} | "
              f"{constraint_ms / rest_ms * 100:.0f}% | " + " / ".join(f"{n / calls:.0%}" for n in shares) + " |")
    print(f"\nThe full search alone (random logits, {SLOT_TOKENS} positions, one slot per request):\n"
          f"| batch | free-text engine step ms (median of {args.rounds}) | full search ms, all rows | search / step |"
          "\n|---:|---:|---:|---:|")
    for batch_size, row in rows.items():
        print(f"| {batch_size} | {row['free_step_ms']:.2f} | {row['full_search_ms']:.2f} | "
              f"{row['full_search_ms'] / row['free_step_ms'] * 100:.0f}% |")
    write_json("patterns", {"hardware": machine, "num_states": automaton.num_states,
                            "num_edges": automaton.num_edges, "compile_first_ms": first_ms,
                            "compile_cached_ms": statistics.median(cached), "rows": rows, "args": vars(args)},
               args.out)


AUTHORED = default_model_dir() / "templates" / "shopkeeper_authored.json"


def _served(engine, batch_size: int) -> dict[str, float]:
    """Every prompt through the engine with the authored template, `batch_size` at a time; the
    runner's step and its constraint timed, the searches counted."""
    runner, counts = engine.core.runner, {"step_ms": 0.0, "constraint_ms": 0.0, "num_steps": 0,
                                          "num_searches": 0, "num_pruned": 0, "num_full": 0}
    step, constrain = runner.step, runner._constrain_patterns
    pruned, full = automaton_module._pruned, automaton_module._full

    def timed(action, key, count_key=None):
        def wrapper(*args):
            started = time.perf_counter()
            out = action(*args)
            counts[key] += (time.perf_counter() - started) * 1000
            if count_key is not None:
                counts[count_key] += 1
            return out
        return wrapper

    def constrain_counted(requests, renoise):
        counts["num_searches"] += sum(len(r.automata) for r in requests)
        constrain(requests, renoise)

    runner.step = timed(step, "step_ms", "num_steps")
    runner._constrain_patterns = timed(constrain_counted, "constraint_ms")
    automaton_module._pruned = timed(pruned, "pruned_ms", "num_pruned")
    automaton_module._full = timed(full, "full_ms", "num_full")
    counts.update(pruned_ms=0.0, full_ms=0.0)
    try:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(max(8, len(PROMPTS)))]
        for first in range(0, len(prompts), batch_size):
            handles = [engine.submit(AUTHORED, prompt, prefix=PERSONA, seed=first + i, values=SAY_VALUES)
                       for i, prompt in enumerate(prompts[first:first + batch_size])]
            for handle in handles:
                engine.wait(handle)
    finally:
        del runner.step, runner._constrain_patterns
        automaton_module._pruned, automaton_module._full = pruned, full
    return counts


def _summed(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(r[key] for r in rounds) for key in rounds[0]}


SAY_VALUES = {"player": "Aria", "name": "Brom"}


if __name__ == "__main__":
    main()

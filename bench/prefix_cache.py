"""Prefix cache: a 300-token persona and 20 player turns, with and without the cache.

Per request: tokens the encoder ran over, prefill ms, and whole-request ms. Both engines get the
same turns and seeds, alternating, and their outputs are compared (they must be identical).

    python bench/prefix_cache.py [--persona-tokens 300] [--turns 20] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    TEMPLATE, add_model_arguments, describe, headline, load_backend, load_settings, write_json)

from npc_engine.engine import Engine, EngineConfig  # noqa: E402

PERSONA_SENTENCES = [
    "You are Old Brannoc, keeper of the Crooked Lantern inn at the edge of the Fenwood.",
    "You speak slowly, with long pauses, and you call everyone 'traveller'.",
    "You lost your brother to the marsh lights twenty winters ago and you never go out after dark.",
    "You trust the town guard, distrust the new mayor, and owe money to the smuggler Vess.",
    "You know every rumour in the valley but share them only with people who buy a drink first.",
    "Your stew is famous, your ale is not, and you get angry when anyone says so.",
]
TURNS = ["Evening.", "A room for the night?", "What's in the stew?", "Heard any rumours?", "Who is Vess?",
         "Why don't you go out at night?", "Tell me about the mayor.", "Your ale is awful.",
         "Sorry, I take it back.", "What are the marsh lights?", "Is the road north safe?", "How much for a meal?",
         "Do you need help with anything?", "Who was your brother?", "Can I trust the guard?",
         "Where can I buy a map?", "Any work for me?", "I found a strange coin.", "Good night.", "See you tomorrow."]


def persona_of(engine: Engine, num_tokens: int) -> str:
    text = ""
    while len(engine.prompts.encode("x", text)[0]) < num_tokens:
        text += PERSONA_SENTENCES[len(text) % len(PERSONA_SENTENCES)] + " "
    ids = engine.backend.tokenizer.encode(text, add_special_tokens=False)
    framing = len(engine.prompts.turn_prefix_ids)
    return engine.backend.tokenizer.decode(ids[: num_tokens - framing])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persona-tokens", type=int, default=300)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--out", default=None)
    add_model_arguments(parser)
    args = parser.parse_args(argv)

    backend = load_backend(args)
    settings = load_settings(backend, args)
    cached = Engine(backend, settings, EngineConfig())
    uncached = Engine(backend, settings, EngineConfig(prefix_cache_bytes=0))
    persona = persona_of(cached, args.persona_tokens)
    num_persona_tokens = len(cached.prompts.encode("x", persona)[0])
    cached.fill(TEMPLATE, "warm-up", seed=0, prefix="warm-up persona")
    uncached.fill(TEMPLATE, "warm-up", seed=0, prefix="warm-up persona")

    results: dict[str, list] = {"cache": [], "no cache": []}
    num_identical = 0
    for turn_index in range(args.turns):
        turn = TURNS[turn_index % len(TURNS)]
        with_cache = cached.fill(TEMPLATE, turn, seed=turn_index, prefix=persona)
        without = uncached.fill(TEMPLATE, turn, seed=turn_index, prefix=persona)
        results["cache"].append(with_cache)
        results["no cache"].append(without)
        num_identical += with_cache.fields == without.fields

    meta = describe(backend) | {"persona_tokens": num_persona_tokens, "turns": args.turns}
    rows = []
    for mode, fills in results.items():
        rows.append({
            "mode": mode,
            "encoder_tokens_per_request": statistics.mean(r.num_prompt_tokens - r.num_cached_prompt_tokens for r in fills),
            "prefill_ms_per_request": statistics.median(r.prefill_ms for r in fills),
            "request_ms": statistics.median(r.elapsed_ms for r in fills),
        })
    ratio = rows[1]["encoder_tokens_per_request"] / rows[0]["encoder_tokens_per_request"]
    print(headline(f"prefix cache, {num_persona_tokens}-token persona, {args.turns} turns", meta))
    print(f"{'mode':<9} | {'encoder tokens/request':>22} | {'prefill ms (median)':>19} | {'request ms (median)':>19}")
    for row in rows:
        print(f"{row['mode']:<9} | {row['encoder_tokens_per_request']:>22.1f} | {row['prefill_ms_per_request']:>19.2f} | "
              f"{row['request_ms']:>19.2f}")
    print(f"encoder tokens: {ratio:.1f}x fewer with the cache (goal >= 5x); identical outputs {num_identical}/{args.turns}; "
          f"hit rate {cached.stats().prefix_cache_hit_rate:.2f}")
    write_json("prefix_cache", {"meta": meta, "rows": rows, "token_ratio": ratio,
                                "identical_outputs": num_identical}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

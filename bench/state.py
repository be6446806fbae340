"""Character state: store ops/s on 1,000 characters, and prompt build time for 500 memories.

Side by side in one run: the database file with synchronous=FULL (the default: acknowledged
writes survive a power cut), with synchronous=NORMAL (survive a process crash), and `:memory:`.
Operations: get (a whole character), update (one relationship delta), say-effects (the
shopkeeper template's effects plus the two turn records, in one transaction). Rounds interleave
the stores; the table shows medians. Then prompt building for a character with 500 memories and
64 turns: a cold builder (token counts not cached yet), a warm one, and load + build together.
Last, a say's host work before the engine: build the prompt and submit it, as a `Dialogue` does
now (the registered template's plan, the prompt's ids checked once where it is built) and as it
did before issue 35 (the say's Template compiled through the plan cache, keyed by its slots as
JSON, and the prompt's ids checked again in `Engine.submit`), alternating round by round.

    python bench/state.py [--characters 1000] [--ops 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TEMPLATE, MODEL_SIZES, hardware, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine.characters import PromptBuilder, Store, apply_reply, read_prompt_inputs  # noqa: E402
from npc_engine.engine import Engine  # noqa: E402
from npc_engine.models.prompt import EncodedPrompt, PromptEncoder  # noqa: E402
from npc_engine.models import build_tiny_model  # noqa: E402
from npc_engine.templates import load_template  # noqa: E402

FIELDS = {"say": "Welcome back, traveller.", "emotion": "happy", "action": "nod", "trust_delta": 1,
          "ends_conversation": False}


def populate(store: Store, num_characters: int) -> list[str]:
    ids = [f"npc_{i:04d}" for i in range(num_characters)]
    store.upsert_speaker({"id": "player", "name": "Aria"})
    with store.transaction():
        for i, character_id in enumerate(ids):
            store.upsert_character({
                "id": character_id, "name": f"Villager {i}", "speaking_style": "Plain.",
                "persona": f"Villager {i} of Thornvale, who farms barley and worries about the weather.",
                "knowledge": ["The mill burned last spring.", "The mayor is new."]})
            for m in range(5):
                store.add_memory(character_id, f"Villager {i} remembers event {m}.", 0.1 * m)
    return ids


def ops_per_s(action, ids: list[str], num_ops: int, rng: random.Random) -> float:
    picks = [rng.choice(ids) for _ in range(num_ops)]
    start = time.perf_counter()
    for character_id in picks:
        action(character_id)
    return num_ops / (time.perf_counter() - start)


def store_table(args, folder: Path) -> dict:
    template = load_template(TEMPLATE)
    stores = {"file, synchronous=full": Store(folder / "full.db", synchronous="full"),
              "file, synchronous=normal": Store(folder / "normal.db", synchronous="normal"),
              ":memory:": Store(":memory:")}
    ids = {name: populate(store, args.characters) for name, store in stores.items()}
    actions = {
        "get": lambda s: lambda c: s.get_character(c),
        "update": lambda s: lambda c: s.adjust_relationship(c, "player", trust=1),
        "say-effects": lambda s: lambda c: apply_reply(s, character_id=c, speaker_id="player", template=template,
                                                       fields=FIELDS, utterance="Good morning!"),
    }
    samples: dict[str, dict[str, list[float]]] = {n: {a: [] for a in actions} for n in stores}
    rng = random.Random(0)
    for _ in range(args.rounds):
        for operation, make in actions.items():
            for name, store in stores.items():
                samples[name][operation].append(ops_per_s(make(store), ids[name], args.ops, rng))
    return {name: {op: statistics.median(values) for op, values in ops.items()} for name, ops in samples.items()}


def prompt_table(args, folder: Path) -> dict:
    model_dir = build_tiny_model(folder / "model", MODEL_SIZES["tiny"])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = PromptEncoder(tokenizer, max_position_embeddings=MODEL_SIZES["tiny"].max_position_embeddings,
                            canvas_length=MODEL_SIZES["tiny"].canvas_length)
    store = Store(folder / "prompt.db", max_turns_per_character=64)
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "sage", "name": "The Sage", "persona": "An old sage who remembers everything."})
    rng = random.Random(1)
    with store.transaction():
        for m in range(500):
            store.add_memory("sage", f"In year {m} the sage saw {rng.choice(['a comet', 'a flood', 'a war'])} "
                             f"near {rng.choice(['the river', 'the hills', 'the mill'])}.", rng.random())
        for t in range(64):
            store.add_turn("sage", "player" if t % 2 == 0 else "sage", f"Line {t} of a long talk about the past.")
    character = store.get_character("sage")

    def build(builder: PromptBuilder):
        return builder.build(character, speaker_id="player", speaker_name="Aria", utterance="Tell me more.",
                             name_of={"player": "Aria", "sage": "The Sage"}.__getitem__)

    cold, warm, prepared, plain_inputs, ranked_inputs = [], [], [], [], []
    line = "Tell me about the comet near the river."
    shared = PromptBuilder(encoder)  # as a Dialogue holds one: its line counts are warm
    for utterance in ("", line):
        shared.build_from(read_prompt_inputs(store, "sage", "player", utterance), "player", line)
    for _ in range(args.rounds * 4):
        for utterance, samples in (("", plain_inputs), (line, ranked_inputs)):  # "" searches nothing
            start = time.perf_counter()
            shared.build_from(read_prompt_inputs(store, "sage", "player", utterance), "player", utterance or line)
            samples.append((time.perf_counter() - start) * 1000)
    for _ in range(args.rounds * 4):
        builder = PromptBuilder(encoder)
        start = time.perf_counter()
        built = build(builder)
        cold.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        build(builder)
        warm.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        builder.build(store.get_character("sage"), speaker_id="player", speaker_name="Aria",
                      utterance="Tell me more.", world_facts=store.list_world_facts())
        prepared.append((time.perf_counter() - start) * 1000)
    return {"num_memories": 500, "num_turns": 64, "budget_tokens": encoder.max_prompt_tokens,
            "num_tokens": built.num_tokens, "num_facts_kept": built.num_facts, "num_turns_kept": built.num_turns,
            "cold_ms": statistics.median(cold), "warm_ms": statistics.median(warm),
            "load_and_build_ms": statistics.median(prepared),
            "inputs_and_build_ms": statistics.median(plain_inputs),
            "inputs_ranked_and_build_ms": statistics.median(ranked_inputs)}


def submit_table(args, folder: Path) -> dict:
    """Prompt build + Engine.submit per say, now and the way before issue 35, in one run."""
    engine = Engine.from_pretrained(build_tiny_model(folder / "submit-model", MODEL_SIZES["tiny"]))
    engine.register_template(TEMPLATE)
    plan = engine.plan_for("shopkeeper_reply")
    store = Store(":memory:")
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."})
    for m in range(40):
        store.add_memory("brom", f"Brom sold sword {m} to a stranger from the hills.", 0.02 * m)
    builder = PromptBuilder(engine.prompts)
    values = {"name": "Brom", "player": "Aria"}

    def say(is_before: bool) -> float:
        started = time.perf_counter()
        built = builder.build_from(read_prompt_inputs(store, "brom", "player", "Any work?"), "player", "Any work?")
        effects = plan.template.with_effect_values(values)
        if is_before:  # the say's Template object, compiled by key; the prompt walked again
            handle = engine.submit(effects, EncodedPrompt(*built.encoded), seed=1, values=values)
        else:
            handle = engine.submit(plan, built.encoded, seed=1, values=values)
        elapsed = (time.perf_counter() - started) * 1000
        engine.cancel(handle.request_id)
        return elapsed

    samples: dict[str, list[float]] = {"before": [], "now": []}
    for _ in range(20):
        say(True), say(False)
    for _ in range(args.rounds * 40):
        samples["before"].append(say(True))
        samples["now"].append(say(False))
    engine.close()
    return {"num_says": len(samples["now"]), "before_ms": statistics.median(samples["before"]),
            "now_ms": statistics.median(samples["now"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--characters", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=200, help="operations per sample")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    machine = hardware(torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="npc-state-bench-") as folder:
        stores = store_table(args, Path(folder))
        prompts = prompt_table(args, Path(folder))
        says = submit_table(args, Path(folder))
    print(f"Character store on {machine}; {args.characters} characters, median of {args.rounds} rounds "
          f"x {args.ops} ops (ops/s)")
    print("| store | get | update | say-effects |\n|---|---:|---:|---:|")
    for name, row in stores.items():
        print(f"| {name} | {row['get']:,.0f} | {row['update']:,.0f} | {row['say-effects']:,.0f} |")
    print(f"\nPrompt build, {prompts['num_memories']} memories + {prompts['num_turns']} turns, budget "
          f"{prompts['budget_tokens']} tokens (kept {prompts['num_facts_kept']} facts, {prompts['num_turns_kept']} "
          f"turns; {prompts['num_tokens']} tokens)")
    print("| builder | ms |\n|---|---:|")
    for label, key in [("cold (token counts not cached)", "cold_ms"), ("warm", "warm_ms"),
                       ("get_character from SQLite + build", "load_and_build_ms"),
                       ("read_prompt_inputs (no search: empty line) + build", "inputs_and_build_ms"),
                       ("read_prompt_inputs ranked by FTS5 against the line + build", "inputs_ranked_and_build_ms")]:
        print(f"| {label} | {prompts[key]:.2f} |")
    print(f"\nA say's prompt build + Engine.submit, host ms per say (median of {says['num_says']}, alternating)")
    print("| path | ms |\n|---|---:|")
    print(f"| before issue 35: Template compiled by key, prompt checked again | {says['before_ms']:.3f} |")
    print(f"| now: the registered plan, the prompt checked once | {says['now_ms']:.3f} |")
    write_json("state", {"hardware": machine, "stores": stores, "prompt": prompts, "submit": says,
                         "args": vars(args)}, args.out)


if __name__ == "__main__":
    main()

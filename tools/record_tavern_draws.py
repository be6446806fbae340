"""Record digests of the procedural generator's draws (tests/data/tavern_draws.json): what the
tavern world must reproduce draw for draw (tests/test_worlds.py). Run once, before the corpus
moved into npc_engine/worlds/tavern.json; kept to show how the fixture was made.

    python tools/record_tavern_draws.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc_engine.training.data import DataConfig, generate, stream  # noqa: E402

PARAPHRASES = ROOT / "tests" / "data" / "paraphrases.jsonl"
CONFIGS = {
    "default": DataConfig(num_train=120, num_heldout=40),
    "shipped": DataConfig(num_train=120, num_heldout=40, event_fraction=0.15, npc_fraction=0.1),
    "paraphrased": DataConfig(num_train=120, num_heldout=40, seed=3, event_fraction=0.15, npc_fraction=0.1,
                              paraphrase_file=str(PARAPHRASES)),
}


def digest(samples) -> str:
    text = json.dumps([[s.prefix, s.prompt, s.template.model_dump(mode="json"), s.fields, list(s.combination),
                        s.meta] for s in samples], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def draws() -> dict[str, str]:
    out = {}
    for name, config in CONFIGS.items():
        for split in ("train", "heldout", "paraphrase", "variant", "events"):
            out[f"{name}/{split}"] = digest(generate(config, split=split))
        out[f"{name}/stream"] = digest([s for step in range(4) for s in stream(config, step, 24)])
    return out


if __name__ == "__main__":
    (ROOT / "tests" / "data" / "tavern_draws.json").write_text(json.dumps(draws(), indent=1) + "\n")

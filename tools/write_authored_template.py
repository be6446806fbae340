"""Writes the built-in model's authored-line template (shopkeeper_authored.json) from the corpus
grammar, so a line is written once: `python tools/write_authored_template.py`. A test checks
that the shipped files equal what this writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc_engine.training.line_pattern import world_line_pattern  # noqa: E402

TARGETS = [ROOT / "npc_engine" / "default_model" / "templates" / "shopkeeper_authored.json",
           ROOT / "schemas" / "templates" / "shopkeeper_authored.json"]


def authored_template() -> dict:
    reply = json.loads((ROOT / "schemas" / "templates" / "shopkeeper_reply.json").read_text())
    reply["name"] = "shopkeeper_authored"
    reply["description"] = ("The shopkeeper's reply with an authored line: a mood opener and one of the corpus's "
                            "lines, items and places from the world, names from state ({player}, {name}).")
    reply["slots"][0]["pattern"] = world_line_pattern(placeholders=("player", "name"))
    return reply


def main() -> None:
    text = json.dumps(authored_template(), indent=2) + "\n"
    for target in TARGETS:
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Writes the built-in model's authored-line template (shopkeeper_authored.json) from the tavern
world (`line_pattern.authored_template`), so a line is written once:
`python tools/write_authored_template.py`. A test checks that the shipped files equal what this
writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc_engine.training.line_pattern import authored_template  # noqa: E402

TARGETS = [ROOT / "npc_engine" / "default_model" / "templates" / "shopkeeper_authored.json",
           ROOT / "schemas" / "templates" / "shopkeeper_authored.json"]


def main() -> None:
    text = json.dumps(authored_template(), indent=2) + "\n"
    for target in TARGETS:
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

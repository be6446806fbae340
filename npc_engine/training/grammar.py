"""The line-quality checker for the procedural corpus: is a line one its own grammar can produce?

A generated sample's reference line is a mood opener followed by one of the intent's (or the game
event's, corpus_events.py) lines with
fillers from the sample's world. The checker accepts a line only if that grammar can produce it
*for that sample*: an opener of the character's mood, a line of the player's intent, and fillers
the prompt determines (the player's and the character's names, the town, the signature phrase,
an item or place the player named) exactly as given; a filler the prompt leaves open (a place
nobody mentioned) may be any the world offers. Shuffled, repeated or truncated words, another
intent's line or another mood's opener are refused.
"""

from __future__ import annotations

import itertools
from typing import Any

from .corpus import MOOD_OPENERS
from .data import TURN_KINDS, compose_line

__all__ = ["grammar_lines", "is_grammatical"]

_FILLERS = ("town", "name", "player", "signature", "role", "place", "item")


def grammar_lines(meta: dict[str, Any]) -> set[str]:
    """Every line the corpus grammar can produce for a generated sample (from its `meta`)."""
    world = meta["world"]
    lines: set[str] = set()
    for opener, pattern in itertools.product(MOOD_OPENERS[meta["mood"]], TURN_KINDS[meta["intent"]]["lines"]):
        used = [key for key in _FILLERS if "{" + key + "}" in pattern]
        for values in itertools.product(*(world[key] for key in used)):
            fixed = {key: world[key][0] for key in _FILLERS}
            lines.add(compose_line(opener, pattern, {**fixed, **dict(zip(used, values))}))
    return lines


def is_grammatical(line: str, meta: dict[str, Any]) -> bool:
    """True when the corpus grammar can produce `line` for the sample (surrounding spaces ignored)."""
    return line.strip() in grammar_lines(meta)

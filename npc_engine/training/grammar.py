"""The line-quality checker for the procedural corpus: is a line one its own grammar can produce?

A generated sample's reference line is a mood opener followed by one of the intent's (or the game
event's) lines with fillers from the sample's world (world.py). The checker accepts a line only if that grammar can produce it
*for that sample*: an opener of the character's mood, a line of the player's intent, and fillers
the prompt determines (the player's and the character's names, the town, the signature phrase,
an item or place the player named) exactly as given; a filler the prompt leaves open (a place
nobody mentioned) may be any the world offers. Shuffled, repeated or truncated words, another
intent's line or another mood's opener are refused.
"""

from __future__ import annotations

import itertools
from typing import Any

from .data import compose_line
from .world import World, tavern_world

__all__ = ["grammar_lines", "is_grammatical"]

_FILLERS = ("town", "name", "player", "signature", "role", "place", "item")


def grammar_lines(meta: dict[str, Any], world: World | None = None) -> set[str]:
    """Every line the world's grammar (default: the tavern's) can produce for a generated sample
    (from its `meta`)."""
    grammar = world or tavern_world()
    values = meta["world"]
    lines: set[str] = set()
    for opener, pattern in itertools.product(grammar.mood_openers[meta["mood"]],
                                             grammar.turn_kinds[meta["intent"]].lines):
        used = [key for key in _FILLERS if "{" + key + "}" in pattern]
        for chosen in itertools.product(*(values[key] for key in used)):
            fixed = {key: values[key][0] for key in _FILLERS}
            lines.add(compose_line(opener, pattern, {**fixed, **dict(zip(used, chosen))}))
    return lines


def is_grammatical(line: str, meta: dict[str, Any], world: World | None = None) -> bool:
    """True when the world's grammar can produce `line` for the sample (surrounding spaces ignored)."""
    return line.strip() in grammar_lines(meta, world)

"""A world's NPC lines (world.py) as one regular expression, for pattern text slots.

A line is a mood opener, then an intent's (or a game event's) line, exactly as `compose_line`
writes it: after an opener ending in a comma the line goes on in lower case, unless it starts
with "I" or a name. `{player}`, `{name}`, `{town}`, `{signature}` and `{role}` stay placeholders
(a say fills them from state); items and places become alternations of the world's own.
"""

from __future__ import annotations

import re

from .world import World, tavern_world

__all__ = ["world_line_pattern", "authored_template", "LINE_PLACEHOLDERS"]

LINE_PLACEHOLDERS = ("player", "name", "town", "signature", "role")
_NAMES = ("{player}", "{name}", "{town}")


def world_line_pattern(world: World | None = None, *, placeholders: tuple[str, ...] = LINE_PLACEHOLDERS) -> str:
    """Every line the world's grammar (default: the tavern's) can produce, as a pattern: lines that
    need a placeholder outside `placeholders` are left out (a game that cannot fill `{signature}`
    asks for `placeholders=("player", "name")`)."""
    world = world or tavern_world()
    bodies = sorted({line for kind in world.turn_kinds.values() for line in kind.lines
                     if set(re.findall(r"\{([a-z]+)\}", line)) <= {*placeholders, "item", "place"}})
    all_openers = sorted({o for mood_openers in world.mood_openers.values() for o in mood_openers})
    plain = [o for o in all_openers if not o.endswith(",")]
    comma = [o for o in all_openers if o.endswith(",")]
    fillers = {"item": _any_of(world.items), "place": _any_of(world.places)}
    upper = _any_of([_body(b, fillers, lower=False) for b in bodies], is_escaped=True)
    lower = _any_of([_body(b, fillers, lower=True) for b in bodies], is_escaped=True)
    if not comma:
        return f"{_any_of(plain)} {upper}"
    if not plain:
        return f"{_any_of(comma)} {lower}"
    return f"({_any_of(plain)} {upper}|{_any_of(comma)} {lower})"


def authored_template(world: World | None = None) -> dict:
    """The world's reply template with an authored line (JSON, as a template file holds it): its
    `say` slot carries `world_line_pattern(world, placeholders=("player", "name"))`, so a game
    fills the names per say and every other line is the world's own. Named after the world's
    template: `shopkeeper_reply` -> `shopkeeper_authored`, `crew_reply` -> `crew_authored`."""
    world = world or tavern_world()
    reply = world.template.model_dump(mode="json", exclude_unset=True)
    base = reply["name"].removesuffix("_reply")
    reply["name"] = f"{base}_authored"
    reply["description"] = (f"The {base} reply with an authored line: a mood opener and one of the world's lines, "
                            "items and places from the world, names from state ({player}, {name}).")
    reply["slots"][0]["pattern"] = world_line_pattern(world, placeholders=("player", "name"))
    return reply


def _body(line: str, fillers: dict[str, str], *, lower: bool) -> str:
    """One line as a regex: escaped text, placeholders kept, items and places as alternations."""
    if lower and not line.startswith("I ") and not line.startswith(_NAMES):
        if line.startswith(("{item}", "{place}")):
            key = line[1:line.index("}")]
            return _lower_first(fillers[key]) + _escaped(line[len(key) + 2:], fillers)
        line = line[0].lower() + line[1:]
    elif not lower and line.startswith(("{item}", "{place}")):
        key = line[1:line.index("}")]
        return _upper_first(fillers[key]) + _escaped(line[len(key) + 2:], fillers)
    return _escaped(line, fillers)


def _escaped(text: str, fillers: dict[str, str]) -> str:
    parts = re.split(r"(\{[a-z]+\})", text)
    return "".join(fillers.get(p[1:-1], p) if p.startswith("{") else re.escape(p) for p in parts)


def _any_of(options: list[str], *, is_escaped: bool = False) -> str:
    return "(" + "|".join(o if is_escaped else re.escape(o) for o in options) + ")"


def _upper_first(alternation: str) -> str:
    options = alternation[1:-1].split("|")
    return "(" + "|".join(o[0].upper() + o[1:] for o in options) + ")"


def _lower_first(alternation: str) -> str:
    options = alternation[1:-1].split("|")
    return "(" + "|".join(o[0].lower() + o[1:] for o in options) + ")"

"""Player lines as players type them: a paraphrase grammar per intent, registers and typos.

Each intent of a world (world.py) has a list of phrasing *patterns*; a pattern is a phrase with
alternatives (`[a|b|]`, an empty alternative makes the group optional) and fillers (`{item}`,
`{place}`, `{town}`, `{name}`). A drawn line then passes through a register (plain, or one of
the world's casual or formal openers) and, sometimes, typing noise (lower case, a dropped
question mark, a swapped or dropped letter). Whole patterns are held out for evaluation, so
"held-out paraphrases" are phrasings the model never saw.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path

from .world import DataError, World, tavern_world

__all__ = ["FILLERS", "expand", "load_paraphrases", "pattern_split", "player_line"]

FILLERS = ("item", "place", "town", "name")
MAX_PATTERN_CHARS = 200

_GROUP = re.compile(r"\[([^\[\]]*)\]")


def expand(pattern: str, rng: random.Random, fillers: dict[str, str]) -> str:
    """One phrasing of `pattern`: each `[a|b]` group picks an alternative; fillers are substituted."""
    text = _GROUP.sub(lambda match: rng.choice(match.group(1).split("|")), pattern)
    for key, value in fillers.items():
        text = text.replace("{" + key + "}", value)
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:] if text else text


def pattern_split(world: World, intent: str, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) pattern indices of `intent`: about one in five held out, at least one."""
    indices = list(range(len(world.intents[intent].phrasings)))
    random.Random(zlib.crc32(f"{seed}-{intent}".encode())).shuffle(indices)
    num_heldout = max(1, len(indices) // 5)
    return sorted(indices[num_heldout:]), sorted(indices[:num_heldout])


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def load_paraphrases(path: str | Path, world: World | None = None) -> dict[str, list[str]]:
    """Extra player-line patterns (written by hand, or offline by a teacher model), one JSON object
    per line: `{"intent": "buy", "text": "Got any {item} for sale?"}`. The text may use the
    grammar's `[a|b]` groups and the fillers {item} {place} {town} {name}. Raises DataError naming
    the file and line for anything else: a missing file, bad JSON, an unknown intent or filler."""
    intents = (world or tavern_world()).intents
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the paraphrase file {path}: {exc}") from None
    patterns: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or set(record) != {"intent", "text"}:
            raise DataError(f'{where}: expected an object with exactly "intent" and "text"')
        intent, text = record["intent"], record["text"]
        if intent not in intents:
            raise DataError(f"{where}: unknown intent {intent!r}; expected one of {sorted(intents)}")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_PATTERN_CHARS:
            raise DataError(f"{where}: text must be a non-empty string of at most {MAX_PATTERN_CHARS} characters")
        unknown = set(re.findall(r"\{([^{}]*)\}", text)) - set(FILLERS)
        if unknown or text.count("{") != text.count("}") or text.count("[") != text.count("]"):
            raise DataError(f"{where}: unknown filler or unbalanced brackets in {text!r} "
                            f"(fillers: {', '.join('{' + f + '}' for f in FILLERS)})")
        patterns.setdefault(intent, []).append(text)
    if not patterns:
        raise DataError(f"{path}: no paraphrase lines")
    return patterns


def player_line(world: World, pattern: str, rng: random.Random, fillers: dict[str, str]) -> str:
    """A player's line from one pattern, in a random register, sometimes mistyped. Fillers (items,
    places, names) are never mistyped: the reply may have to repeat them."""
    text = expand(pattern, rng, fillers)
    register = rng.random()
    if register < 0.2:
        text = f"{rng.choice(world.casual_openers)} {text[0].lower() + text[1:]}"
    elif register < 0.35:
        text = f"{rng.choice(world.formal_openers)} {text[0].lower() + text[1:]}"
    protected = {word for value in fillers.values() for word in value.split()}
    if rng.random() < 0.25:
        words = text.split(" ")
        index = rng.randrange(len(words))
        if words[index] not in protected:
            words[index] = _typo(words[index], rng)
        text = " ".join(words)
    if rng.random() < 0.2:
        text = text.lower() if not protected & set(text.split()) else text[0].lower() + text[1:]
    if rng.random() < 0.2:
        text = text.rstrip("?.!")
    return text or expand(pattern, rng, fillers)

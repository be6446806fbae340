"""Training samples: procedurally generated NPC exchanges, or a user's own JSONL.

A sample is exactly what the engine sees: the characters prompt builder's layout (persona
prefix + state + the player's line) and the template's target fields. The held-out split is by
*combination*: (archetype, intent, mood) triples of the held-out split never occur in training.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from ..characters import Character, WorldFact
from ..characters.prompt import PromptBuilder, normalize_utterance
from ..errors import NpcEngineError, TemplateError
from ..templates import Template, load_template
from ..templates.compiler import _output_model
from .corpus import (
    ARCHETYPES,
    EMOTION_RULES,
    INTENTS,
    MEMORIES,
    MOOD_OPENERS,
    MOODS,
    PLACES,
    PLAYER_NAMES,
    TOWNS,
    WORLD_FACTS,
)

__all__ = ["Sample", "DataConfig", "generate", "combinations", "expected_emotion", "load_jsonl", "DataError",
           "default_template_path", "iter_texts"]

def default_template_path() -> Path:
    """The template the default model is trained on: from the repository, else the shipped model."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "schemas" / "templates" / "shopkeeper_reply.json",
                      package / "default_model" / "templates" / "shopkeeper_reply.json"):
        if candidate.is_file():
            return candidate
    raise TemplateError("the shopkeeper_reply template is missing from this installation")


class DataError(NpcEngineError, ValueError):
    """A training data file cannot be used (a malformed line under --strict, no usable lines)."""


@dataclass(frozen=True)
class Sample:
    prefix: str            # the stable persona part of the prompt
    prompt: str            # state + history + the player's line
    template: Template
    fields: dict[str, Any]
    combination: tuple[str, str, str] = ("", "", "")  # (archetype, intent, mood); empty for user data
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """What the generator makes. The same config and seed always give the same samples."""

    num_train: int = 20_000
    num_heldout: int = 600
    heldout_fraction: float = 0.1   # of (archetype, intent, mood) combinations
    max_history_turns: int = 2
    seed: int = 0


def expected_emotion(intent: str, mood: str) -> str:
    rules = EMOTION_RULES.get(intent)
    if rules is None:
        return mood
    return rules.get(mood, rules["*"])


def combinations(config: DataConfig) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(train, held-out) (archetype, intent, mood) triples; disjoint, fixed by the seed."""
    triples = [(a[0], i, m) for a in ARCHETYPES for i in INTENTS for m in MOODS]
    random.Random(config.seed).shuffle(triples)
    num_heldout = max(1, int(len(triples) * config.heldout_fraction))
    return triples[num_heldout:], triples[:num_heldout]


def _fill(text: str, rng: random.Random, slots: dict[str, str]) -> str:
    for key, value in slots.items():
        text = text.replace("{" + key + "}", value)
    return text[0].upper() + text[1:] if text else text


def _sample(rng: random.Random, combination: tuple[str, str, str], template: Template, max_history: int) -> Sample:
    archetype_key, intent_key, mood = combination
    archetype = next(a for a in ARCHETYPES if a[0] == archetype_key)
    _, names, persona, style, goods, signature = archetype
    intent = INTENTS[intent_key]
    town, name, player = rng.choice(TOWNS), rng.choice(names), rng.choice(PLAYER_NAMES)
    slots = {"town": town, "name": name, "player": player, "place": rng.choice(PLACES),
             "item": rng.choice(goods + ["rope", "bread"]), "signature": signature, "role": archetype_key}
    character = Character(
        id="npc", name=name, persona=_fill(persona, rng, slots) + ".", speaking_style=style.capitalize() + ".",
        knowledge=[f"You live in {town}.", f"You sell {', '.join(goods)}."], mood=mood,
        relationships={"player": {"trust": rng.choice([-50, -10, 0, 15, 40]),
                                  "affinity": rng.choice([-20, 0, 20]), "familiarity": rng.choice([0, 10, 60])}},
        memories=[{"text": m, "salience": 0.5, "created_ms": 0} for m in rng.sample(MEMORIES, rng.randint(0, 2))],
        recent_turns=_history(rng, archetype, player, slots, max_history))
    facts = [WorldFact(key=f"fact{i}", text=t) for i, t in enumerate(rng.sample(WORLD_FACTS, rng.randint(0, 2)))]
    utterance = normalize_utterance(_fill(rng.choice(intent["utterances"]), rng, slots))
    prefix, prompt = PromptBuilder.layout(character, speaker_id="player", speaker_name=player, utterance=utterance,
                                          world_facts=facts,
                                          name_of={"player": player, "npc": name}.get)
    opener = rng.choice(MOOD_OPENERS[mood])
    line = _fill(f"{opener} {rng.choice(intent['lines'])}", rng, slots)
    sign = intent["trust"]
    fields = {"say": line, "emotion": expected_emotion(intent_key, mood), "action": rng.choice(intent["actions"]),
              "trust_delta": sign * rng.randint(1, 3) if sign else 0, "ends_conversation": intent["ends"]}
    fields = {key: value for key, value in fields.items() if key in {s.name for s in template.slots}}
    return Sample(prefix, prompt, template, fields, combination, {"player": player, "name": name})


def _history(rng: random.Random, archetype: tuple, player: str, slots: dict[str, str], max_turns: int) -> list:
    turns = []
    for _ in range(rng.randint(0, max_turns)):
        intent = INTENTS[rng.choice(["greet", "ask_rumours", "ask_price", "ask_weather"])]
        turns.append({"speaker_id": "player", "text": _fill(rng.choice(intent["utterances"]), rng, slots),
                      "created_ms": 0})
        turns.append({"speaker_id": "npc", "text": _fill(rng.choice(intent["lines"]), rng, slots), "created_ms": 0})
    return turns


def generate(config: DataConfig, *, split: str, template: Template | None = None) -> list[Sample]:
    """`split` "train" or "heldout": samples drawn uniformly from that split's combinations."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    template = template or load_template(default_template_path())
    train, heldout = combinations(config)
    pool = train if split == "train" else heldout
    count = config.num_train if split == "train" else config.num_heldout
    rng = random.Random(f"{config.seed}-{split}")
    return [_sample(rng, rng.choice(pool), template, config.max_history_turns) for _ in range(count)]


def load_jsonl(path: str | Path, templates: dict[str, Template], *,
               is_strict: bool = False) -> tuple[list[Sample], int]:
    """A user's own data: one JSON object per line,

        {"prompt": {"character": {...}, "speaker": {"id": ..., "name": ...}, "utterance": "...",
                    "world_facts": [{"key": ..., "text": ...}]},
         "template": "<registered name>" or {...a template...},
         "fields": {...the target fields...}}

    Returns (samples, number of lines skipped). With `is_strict`, the first bad line raises
    DataError naming its line number.
    """
    samples, num_skipped = [], 0
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            samples.append(_parse_line(line, templates))
        except (ValueError, KeyError, TypeError, ValidationError, NpcEngineError) as exc:
            if is_strict:
                raise DataError(f"{path}:{number}: {str(exc).splitlines()[0]}") from None
            num_skipped += 1
    if not samples:
        raise DataError(f"{path}: no usable lines ({num_skipped} skipped)")
    return samples, num_skipped


def _parse_line(line: str, templates: dict[str, Template]) -> Sample:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("a line must be a JSON object")
    prompt, raw_template, fields = record["prompt"], record["template"], record["fields"]
    if isinstance(raw_template, str):
        if raw_template not in templates:
            raise TemplateError(f"unknown template {raw_template!r}")
        template = templates[raw_template]
    else:
        template = load_template(raw_template)
    character = Character.model_validate(prompt["character"])
    speaker = prompt["speaker"]
    facts = [WorldFact.model_validate(f) for f in prompt.get("world_facts", [])]
    utterance = normalize_utterance(prompt["utterance"])
    prefix, text = PromptBuilder.layout(character, speaker_id=speaker["id"], speaker_name=speaker["name"],
                                        utterance=utterance, world_facts=facts)
    checked = _output_model(template).model_validate(fields).model_dump()
    return Sample(prefix, text, template, checked)


def iter_texts(samples: list[Sample]) -> Iterator[str]:
    """Every text the tokenizer should know well: prompts and filled templates."""
    for sample in samples:
        yield sample.prefix
        yield sample.prompt
        yield json.dumps(sample.fields, ensure_ascii=False)

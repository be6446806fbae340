"""Training samples: procedurally generated NPC exchanges, or a user's own JSONL.

A sample is exactly what the engine sees: the characters prompt builder's layout (persona
prefix + state + the player's line) and the template's target fields. The held-out split is by
*combination*: (archetype, intent, mood) triples of the held-out split never occur in training.
"""

from __future__ import annotations

import functools
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
from .family import TemplateVariant, random_variant, variant_of_base
from .utterances import load_paraphrases, pattern_split, player_line
from .world import DataError, World, tavern_world, world_at

__all__ = ["Sample", "DataConfig", "SPLITS", "generate", "stream", "combinations", "event_combinations",
           "expected_emotion", "load_jsonl", "DataError", "default_template_path", "iter_texts", "world_of"]


def default_template_path() -> Path:
    """The template the default model is trained on: from the repository, else the shipped model."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "schemas" / "templates" / "shopkeeper_reply.json",
                      package / "default_model" / "templates" / "shopkeeper_reply.json"):
        if candidate.is_file():
            return candidate
    raise TemplateError("the shopkeeper_reply template is missing from this installation")


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
    variant_fraction: float = 0.5   # training samples on a family variant instead of the shipped template
    paraphrase_file: str | None = None  # extra player-line patterns for training (utterances.load_paraphrases)
    event_fraction: float = 0.0     # training samples answering a game event (corpus_events.py)
    npc_fraction: float = 0.0       # training samples whose speaker is another character, not the player
    world: str | None = None        # a world file (world.py); None: the tavern, the built-in model's


# split -> (combinations, utterance patterns, templates) it draws from
SPLITS = {
    "train": ("train", "train", "train"),
    "heldout": ("heldout", "train", "base"),       # held-out combinations
    "paraphrase": ("heldout", "heldout", "base"),  # ... and phrasings never seen
    "variant": ("heldout", "train", "heldout"),    # ... and template variants never seen
    "events": ("heldout", "train", "base"),        # game events, held-out (archetype, event, mood) combinations
}


def world_of(config: DataConfig) -> World:
    """The world a config draws from."""
    return world_at(config.world)


def expected_emotion(intent: str, mood: str, world: World | None = None) -> str:
    """The emotion a reply to `intent` (or an event) shows in `mood` (default world: the tavern)."""
    return (world or tavern_world()).expected_emotion(intent, mood)


def combinations(config: DataConfig) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(train, held-out) (archetype, intent, mood) triples; disjoint, fixed by the seed."""
    world = world_of(config)
    triples = [(a.key, i, m) for a in world.archetypes for i in world.intents for m in world.moods]
    random.Random(config.seed).shuffle(triples)
    num_heldout = max(1, int(len(triples) * config.heldout_fraction))
    return triples[num_heldout:], triples[:num_heldout]


@functools.lru_cache(maxsize=8)
def event_combinations(config: DataConfig) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(train, held-out) (archetype, event, mood) triples, split as `combinations` splits intents."""
    world = world_of(config)
    triples = [(a.key, e, m) for a in world.archetypes for e in world.events for m in world.moods]
    random.Random(f"{config.seed}-events").shuffle(triples)
    num_heldout = max(1, int(len(triples) * config.heldout_fraction))
    return triples[num_heldout:], triples[:num_heldout]


def _fill(text: str, slots: dict[str, str]) -> str:
    for key, value in slots.items():
        text = text.replace("{" + key + "}", value)
    return text[0].upper() + text[1:] if text else text


def compose_line(opener: str, pattern: str, slots: dict[str, str]) -> str:
    """The corpus's line grammar: a mood opener, then the intent's line with its fillers. After an
    opener that ends in a comma the line goes on in lower case (unless it starts with "I" or a name)."""
    body = _fill(pattern, slots)
    names = (slots.get("player", ""), slots.get("name", ""), slots.get("town", ""))
    if opener.endswith(",") and not body.startswith("I ") and not any(n and body.startswith(n) for n in names):
        body = body[0].lower() + body[1:]
    return f"{opener} {body}"


def _truth(world: World, concept: str, intent_key: str, mood: str, line: str, rng: random.Random) -> Any:
    intent = world.turn_kinds[intent_key]
    if concept == "line":
        return line
    if concept == "emotion":
        return world.expected_emotion(intent_key, mood)
    if concept == "action":
        return rng.choice(intent.actions)
    if concept == "trust":
        return intent.trust * rng.randint(1, 3) if intent.trust else 0
    if concept == "ends":
        return intent.ends
    return intent.topic


def _sample(world: World, rng: random.Random, combination: tuple[str, str, str], variant: TemplateVariant,
            max_history: int, pattern_pool: str, seed: int, extra_patterns: dict[str, list[str]], *,
            is_npc_speaker: bool = False) -> Sample:
    archetype_key, intent_key, mood = combination
    archetype = world.archetype(archetype_key)
    names, goods = archetype.names, archetype.goods
    intent = world.turn_kinds[intent_key]
    is_event = intent_key in world.events
    town, name = rng.choice(world.towns), rng.choice(names)
    # The one spoken to as {player}: the player, or (NPC-to-NPC) a character of another archetype.
    speaker = "other" if is_npc_speaker else "player"
    player = rng.choice([n for a in world.archetypes if a.key != archetype_key for n in a.names] if is_npc_speaker
                        else world.player_names)
    items = goods + world.common_goods
    slots = {"town": town, "name": name, "player": player, "place": rng.choice(world.places),
             "item": rng.choice(items), "signature": archetype.signature, "role": archetype_key}
    character = Character(
        id="npc", name=name, persona=_fill(archetype.persona, slots) + ".",
        speaking_style=archetype.style.capitalize() + ".",
        knowledge=[f"You live in {town}.", f"You sell {', '.join(goods)}."], mood=mood,
        relationships={speaker: {"trust": rng.choice([-50, -10, 0, 15, 40]),
                                 "affinity": rng.choice([-20, 0, 20]), "familiarity": rng.choice([0, 10, 60])}},
        memories=[{"text": m, "salience": 0.5, "created_ms": 0}
                  for m in rng.sample(world.memories, rng.randint(0, 2))],
        recent_turns=_history(world, rng, slots, max_history, speaker))
    facts = [WorldFact(key=f"fact{i}", text=t) for i, t in enumerate(rng.sample(world.world_facts, rng.randint(0, 2)))]
    if is_event:
        event_text = rng.choice(intent.texts)
        pattern_index, used = intent.texts.index(event_text), event_text
        utterance = normalize_utterance(_fill(event_text, slots), is_event=True)
        causer = speaker if intent.causer else None
    else:
        train_patterns, heldout_patterns = pattern_split(world, intent_key, seed)
        own = intent.phrasings
        patterns = own + extra_patterns.get(intent_key, [])  # extras only ever train
        candidates = (train_patterns + list(range(len(own), len(patterns)))
                      if pattern_pool == "train" else heldout_patterns)
        pattern_index = rng.choice(candidates)
        used = patterns[pattern_index]
        utterance = normalize_utterance(player_line(world, used, rng, slots))
        causer = speaker
    prefix, prompt = PromptBuilder.layout(character, speaker_id=causer, speaker_name=player if causer else None,
                                          utterance=utterance, world_facts=facts,
                                          name_of={speaker: player, "npc": name}.get, is_event=is_event)
    line = compose_line(rng.choice(world.mood_openers[mood]), rng.choice(intent.lines), slots)
    fields = {slot: _truth(world, concept, intent_key, mood, line, rng) for slot, concept in variant.concepts.items()}
    world_values = {**{key: [slots[key]] for key in ("town", "name", "player", "signature", "role")},
                    "place": [slots["place"]] if "{place}" in used else list(world.places),
                    "item": [slots["item"]] if "{item}" in used else items}
    meta = {"player": player, "name": name, "intent": intent_key, "mood": mood, "pattern": pattern_index,
            "world": world_values, "concepts": dict(variant.concepts), "is_base_template": variant.is_base,
            "is_event": is_event, "is_npc_speaker": is_npc_speaker}
    return Sample(prefix, prompt, variant.template, fields, combination, meta)


def _history(world: World, rng: random.Random, slots: dict[str, str], max_turns: int,
             speaker: str = "player") -> list:
    turns = []
    for _ in range(rng.randint(0, max_turns)):
        intent = world.intents[rng.choice(world.history_intents)]
        turns.append({"speaker_id": speaker, "text": _fill(rng.choice(intent.utterances), slots),
                      "created_ms": 0})
        turns.append({"speaker_id": "npc", "text": _fill(rng.choice(intent.lines), slots), "created_ms": 0})
    return turns


def _draw(rng: random.Random, config: DataConfig, split: str, base: TemplateVariant,
          pools: tuple[list, list]) -> Sample:
    combos, patterns, templates = SPLITS[split]
    # The fractions are checked before any draw: with both 0 the stream is the one earlier models
    # were trained on, draw for draw.
    is_event = split == "events" or bool(config.event_fraction and split == "train"
                                         and rng.random() < config.event_fraction)
    if is_event:
        pools = event_combinations(config)
    is_npc_speaker = bool(not is_event and config.npc_fraction and split == "train"
                          and rng.random() < config.npc_fraction)
    pool = pools[0] if combos == "train" else pools[1]
    world = world_of(config)
    if templates == "base" or (templates == "train" and rng.random() >= config.variant_fraction):
        variant = base
    else:
        variant = random_variant(world, rng, seed=config.seed, is_heldout=templates == "heldout")
    extra = _extra_patterns(config.paraphrase_file, config.world) if config.paraphrase_file else {}
    return _sample(world, rng, rng.choice(pool), variant, config.max_history_turns, patterns, config.seed, extra,
                   is_npc_speaker=is_npc_speaker)


def _setup(config: DataConfig, template: Template | None) -> tuple[TemplateVariant, tuple[list, list]]:
    """The base template and the combination split; with the world's own template, read once per
    config (`stream` runs every optimizer step)."""
    if template is None:
        return _default_setup(config)
    return variant_of_base(template), combinations(config)


@functools.lru_cache(maxsize=8)
def _default_setup(config: DataConfig) -> tuple[TemplateVariant, tuple[list, list]]:
    return variant_of_base(world_of(config).template), combinations(config)


@functools.lru_cache(maxsize=4)
def _extra_patterns(path: str, world: str | None) -> dict[str, list[str]]:
    return load_paraphrases(path, world_at(world))


def generate(config: DataConfig, *, split: str, template: Template | None = None,
             count: int | None = None) -> list[Sample]:
    """A fixed list of samples of one split (see SPLITS): "train" (training combinations, phrasings
    and templates), "heldout" (held-out combinations), "paraphrase" (held-out combinations and
    phrasings), "variant" (held-out combinations and template variants)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    base, pools = _setup(config, template)
    if count is None:
        count = config.num_train if split == "train" else config.num_heldout
    rng = random.Random(f"{config.seed}-{split}")
    return [_draw(rng, config, split, base, pools) for _ in range(count)]


def stream(config: DataConfig, step: int, count: int, template: Template | None = None) -> list[Sample]:
    """`count` fresh training samples for optimizer step `step`: the same step always gets the same
    samples (so a resumed run continues exactly), and no two steps share a draw."""
    base, pools = _setup(config, template)
    rng = random.Random(f"{config.seed}-stream-{step}")
    return [_draw(rng, config, "train", base, pools) for _ in range(count)]


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

"""The template family the default model is trained on: variants of `shopkeeper_reply`.

A variant picks which slots appear, their order, a name for each from a list of synonyms
(`emotion`/`mood`/`feeling`, `action`/`gesture`, `say`/`line`/`speech`, ...), the line's length,
the trust range and extra (never true) action options; so the model must read the skeleton to
know what a slot means. A variant's meaning is a *concept* per slot; `value_of` turns a sample's
ground truth into that slot's value. Variants are held out whole (by a hash of their spec).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from ..templates import Template, load_template
from .world import World, tavern_world

__all__ = ["CONCEPTS", "TemplateVariant", "is_heldout_variant", "random_variant", "largest_variant",
           "variant_of_base"]

# concept -> slot names a variant may give it
CONCEPTS: dict[str, tuple[str, ...]] = {
    "line": ("say", "line", "speech"),
    "emotion": ("emotion", "mood", "feeling"),
    "action": ("action", "gesture"),
    "trust": ("trust_delta", "trust_change", "trust"),
    "ends": ("ends_conversation", "leaves", "is_leaving"),
    "topic": ("topic", "subject"),
}
@dataclass(frozen=True)
class TemplateVariant:
    template: Template
    concepts: dict[str, str]      # slot name -> concept
    is_base: bool = False


def variant_of_base(template: Template) -> TemplateVariant:
    """The shipped template itself, as a member of the family."""
    names = {"say": "line", "emotion": "emotion", "action": "action", "trust_delta": "trust",
             "ends_conversation": "ends"}
    return TemplateVariant(template, {slot.name: names[slot.name] for slot in template.slots}, is_base=True)


def _spec(world: World, concepts: list[str], rng: random.Random, line_tokens: int | None = None) -> dict:
    slots, mapping = [], {}
    trust_max = rng.choice([3, 5])
    for concept in concepts:
        name = rng.choice(CONCEPTS[concept])
        mapping[name] = concept
        if concept == "line":
            slots.append({"name": name, "kind": "text", "max_tokens": line_tokens or rng.choice([16, 24, 32])})
        elif concept == "emotion":
            slots.append({"name": name, "kind": "choice", "options": rng.sample(world.moods, len(world.moods))})
        elif concept == "action":
            extra = rng.sample(world.extra_actions, min(rng.randint(0, 2), len(world.extra_actions)))
            options = world.actions + extra
            slots.append({"name": name, "kind": "choice", "options": rng.sample(options, len(options))})
        elif concept == "trust":
            slots.append({"name": name, "kind": "integer", "min": -trust_max, "max": trust_max})
        elif concept == "ends":
            slots.append({"name": name, "kind": "boolean"})
        else:
            slots.append({"name": name, "kind": "choice", "options": world.topics})
    key = zlib.crc32(repr(slots).encode())
    return {"name": f"reply_variant_{key:08x}", "slots": slots, "_concepts": mapping}


def _build(spec: dict) -> TemplateVariant:
    concepts = spec.pop("_concepts")
    return TemplateVariant(load_template(spec), concepts)


def is_heldout_variant(template: Template, seed: int) -> bool:
    """About one in eight variant specs is held out for evaluation (never the shipped template)."""
    return zlib.crc32(f"{seed}-{template.name}".encode()) % 8 == 0


def random_variant(world: World, rng: random.Random, *, seed: int, is_heldout: bool) -> TemplateVariant:
    """A random family member from the training (or held-out) side of the split."""
    while True:
        concepts = [c for c in CONCEPTS if c != "topic"]
        if rng.random() < 0.3:
            concepts.append("topic")
        keep = [c for c in concepts if rng.random() < (0.9 if c == "line" else 0.75)]
        if len(keep) < 2:
            continue
        rng.shuffle(keep)
        variant = _build(_spec(world, keep, rng))
        if is_heldout_variant(variant.template, seed) == is_heldout:
            return variant


def largest_variant(world: World | None = None) -> TemplateVariant:
    """Six fields with a 32-token line, the longest names: what the canvas must hold."""
    rng = random.Random(0)
    spec = _spec(world or tavern_world(), list(CONCEPTS), rng, line_tokens=32)
    for slot in spec["slots"]:
        concept = spec["_concepts"].pop(slot["name"])
        slot["name"] = max(CONCEPTS[concept], key=len)
        spec["_concepts"][slot["name"]] = concept
        if slot["kind"] == "integer":
            slot["min"], slot["max"] = -5, 5
    spec["name"] = "reply_variant_largest"
    return _build(spec)

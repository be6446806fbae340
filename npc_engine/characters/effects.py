"""Apply a finished reply to state: the template's effects plus the turn record, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from ..templates import Template
from ..templates.effects import MAX_MEMORY_CHARS
from .model import MAX_UTTERANCE_CHARS, FlagValue, Turn
from .store import Store

__all__ = ["StateChange", "apply_reply"]


class StateChange(BaseModel):
    """One change a reply made. `path` is where, e.g. "mood", "relationships.player.trust",
    "flags.conversation_over", "memories"; `old`/`new` are the values before and after
    (`delta` is the requested change of a relationship, before clamping)."""

    kind: Literal["mood", "relationship", "memory", "flag"]
    slot: str
    path: str
    old: FlagValue | None = None
    new: FlagValue | None = None
    delta: int | None = None


def apply_reply(store: Store, *, character_id: str, speaker_id: str, template: Template,
                fields: Mapping[str, Any], utterance: str) -> tuple[list[StateChange], list[Turn]]:
    """Record the exchange and apply `template.effects` for `fields`; all or nothing.

    Raises UnknownCharacterError / UnknownSpeakerError when either was deleted meanwhile (then
    nothing is written).
    """
    changes: list[StateChange] = []
    with store.transaction():
        turns = [store.add_turn(character_id, speaker_id, utterance)]
        line_slot = template.line_slot_name
        line = str(fields.get(line_slot, "")).strip()[:MAX_UTTERANCE_CHARS] if line_slot else ""
        if line:
            turns.append(store.add_turn(character_id, character_id, line))
        for effect in template.effects:
            value = fields[effect.slot]
            if effect.kind == "set_mood":
                old = store.set_mood(character_id, value)
                changes.append(StateChange(kind="mood", slot=effect.slot, path="mood", old=old, new=value))
            elif effect.kind == "add_to_relationship":
                before, after = store.adjust_relationship(character_id, speaker_id, **{effect.dimension: value})
                changes.append(StateChange(
                    kind="relationship", slot=effect.slot, path=f"relationships.{speaker_id}.{effect.dimension}",
                    old=getattr(before, effect.dimension), new=getattr(after, effect.dimension), delta=value))
            elif effect.kind == "remember":
                text = " ".join(str(value).split())[:MAX_MEMORY_CHARS]
                if text:
                    store.add_memory(character_id, text, effect.salience)
                    changes.append(StateChange(kind="memory", slot=effect.slot, path="memories", new=text))
            elif effect.kind == "set_flag":
                old = store.set_flag(character_id, effect.flag, value)
                changes.append(StateChange(kind="flag", slot=effect.slot, path=f"flags.{effect.flag}",
                                           old=old, new=value))
    return changes, turns

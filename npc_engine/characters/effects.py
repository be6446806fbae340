"""Apply a finished reply to state: the template's effects plus the turn record, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..templates import Template
from ..templates.effects import MAX_MEMORY_CHARS
from ..templates.placeholders import substitute
from . import epochs as state_epochs
from . import keys, rows
from .keys import ReplyKey
from .model import MAX_UTTERANCE_CHARS, StateChange, Turn
from .store import Store

__all__ = ["AppliedReply", "ReplyKey", "StateChange", "apply_reply"]


@dataclass(frozen=True)
class AppliedReply:
    """What a reply changed, as stored: for a retried key, the first attempt's fields, changes and
    turns (`is_repeat`), never the retry's own generation."""

    fields: dict[str, Any]
    changes: list[StateChange]
    turns: list[Turn]
    is_repeat: bool = False


def apply_reply(store: Store, *, character_id: str, speaker_id: str | None, template: Template,
                fields: Mapping[str, Any], utterance: str, idempotency_key: str | ReplyKey | None = None,
                is_event: bool = False, epochs: Mapping[str, int] | None = None) -> AppliedReply:
    """Record the exchange and apply `template.effects` for `fields`; all or nothing.

    With `is_event`, `utterance` is a game event: it is recorded as an event turn (caused by
    `speaker_id`, or by no one: None, then relationship effects have no one to apply to and are
    skipped). When the speaker of a line is another character, that character records the
    exchange in its own recent turns too (its relationships change when it is the one replying).

    With `idempotency_key`, a second call with the same key changes nothing and returns what the
    first call stored: its fields, changes and turns (the key is stored in the same transaction as
    the changes, so a retried reply lands exactly once and answers with the reply that landed; keys
    are kept as keys.py says, and a retry older than that is refused: KeyExpiredError). With
    `epochs` (`PromptInputs.epochs`, read with the prompt), a reply whose state was replaced
    meanwhile raises StateChangedError. Raises UnknownCharacterError / UnknownSpeakerError when
    either was deleted meanwhile. Whatever it raises, nothing is written.
    """
    key = ReplyKey(idempotency_key) if isinstance(idempotency_key, str) else idempotency_key
    with store.transaction() as conn:
        if key is not None:
            recorded = keys.lookup(conn, key, character_id=character_id)
            if recorded is not None:
                return AppliedReply(dict(recorded.get("fields", fields)),  # rows written before fields were kept
                                    [StateChange.model_validate(c) for c in recorded["changes"]],
                                    [Turn.model_validate(t) for t in recorded["turns"]], is_repeat=True)
        state_epochs.check(conn, epochs or {}, character_id=character_id)
        changes, turns = _apply(store, character_id, speaker_id, template, fields, utterance, is_event)
        if key is not None:
            result = {"fields": dict(fields), "changes": [c.model_dump(mode="json") for c in changes],
                      "turns": [t.model_dump(mode="json") for t in turns]}
            keys.record(conn, key, result, window_s=store.key_window_s, max_keys=store.max_applied_keys)
    return AppliedReply(dict(fields), changes, turns)


def _apply(store: Store, character_id: str, speaker_id: str | None, template: Template, fields: Mapping[str, Any],
           utterance: str, is_event: bool) -> tuple[list[StateChange], list[Turn]]:
    """The changes themselves; the caller holds the transaction."""
    changes: list[StateChange] = []
    if is_event:
        turns = [store.add_turn(character_id, speaker_id or character_id, utterance, kind="event")]
    else:
        turns = _add_line_once(store, character_id, speaker_id, utterance)
    line_slot = template.line_slot_name
    line = str(fields.get(line_slot, "")).strip()[:MAX_UTTERANCE_CHARS] if line_slot else ""
    if line:
        turns.append(store.add_turn(character_id, character_id, line))
    if not is_event and speaker_id != character_id and store.has_character(speaker_id):
        _add_line_once(store, speaker_id, speaker_id, utterance)  # the other character's own view
        if line:
            store.add_turn(speaker_id, character_id, line)
    for effect in template.effects:
        value = fields[effect.slot]
        if effect.kind == "set_mood":
            old = store.set_mood(character_id, value)
            changes.append(StateChange(kind="mood", slot=effect.slot, path="mood", old=old, new=value))
        elif effect.kind == "add_to_relationship" and speaker_id is None:
            continue  # an event nobody caused: no one to trust more or less
        elif effect.kind == "add_to_relationship":
            before, after = store.adjust_relationship(character_id, speaker_id, **{effect.dimension: value})
            changes.append(StateChange(
                kind="relationship", slot=effect.slot, path=f"relationships.{speaker_id}.{effect.dimension}",
                old=getattr(before, effect.dimension), new=getattr(after, effect.dimension), delta=value))
        elif effect.kind == "remember":
            said = substitute(effect.text, fields) if effect.text and str(value).strip() else value
            text = " ".join(str(said).split())[:MAX_MEMORY_CHARS]
            if text:
                store.add_memory(character_id, text, effect.salience)
                changes.append(StateChange(kind="memory", slot=effect.slot, path="memories", new=text))
        elif effect.kind == "set_flag":
            old = store.set_flag(character_id, effect.flag, value)
            changes.append(StateChange(kind="flag", slot=effect.slot, path=f"flags.{effect.flag}",
                                       old=old, new=value))
    return changes, turns


def _add_line_once(store: Store, character_id: str, speaker_id: str, text: str) -> list[Turn]:
    """Record `speaker_id`'s line unless it is already the character's newest turn: when two
    characters talk, a reply is recorded on both sides and then comes back as the next say's
    utterance."""
    with store.reading() as conn:
        newest = rows.last_turn(conn, character_id)
    if newest is not None and newest[0] == speaker_id and newest[2] == "line" \
            and " ".join(newest[1].split()) == " ".join(text.split()):
        return []
    return [store.add_turn(character_id, speaker_id, text)]

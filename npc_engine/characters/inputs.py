"""What a character's prompt is built from, read from the store in one consistent snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import epochs, rows
from .model import Character, WorldFact
from .relevance import FactRelevance, read_relevance
from .store import Store

__all__ = ["PromptInputs", "read_prompt_inputs"]


@dataclass(frozen=True)
class PromptInputs:
    """The character, the speaker's display name, names of everyone in the recent turns, the
    world facts, how relevant each fact is to the turn, and the state epochs it was read at (the
    reply's apply checks them: epochs.py). A cluster's replicas receive this from the state service."""

    character: Character
    speaker_name: str | None  # None: an event nobody caused
    names: dict[str, str]
    world_facts: list[WorldFact]
    relevance: FactRelevance = field(default_factory=FactRelevance)
    epochs: dict[str, int] = field(default_factory=dict)


def read_prompt_inputs(store: Store, character_id: str, speaker_id: str | None,
                       utterance: str = "") -> PromptInputs:
    """What a prompt for `utterance` needs, with facts ranked against it (characters/relevance.py);
    `speaker_id` None for an event nobody caused. Raises UnknownCharacterError / UnknownSpeakerError."""
    with store.reading() as conn:
        character = rows.load_character(conn, character_id)
        names = {character.id: character.name}
        speaker_name = None
        if speaker_id is not None:
            speaker_name = names[speaker_id] = rows.speaker_name(conn, speaker_id, character_id=character_id)
        for turn in character.recent_turns:
            if turn.speaker_id not in names:
                names[turn.speaker_id] = rows.display_name(conn, turn.speaker_id) or turn.speaker_id
        world_facts = rows.load_world_facts(conn)
        relevance = read_relevance(conn, character_id, utterance)
        # The reply also writes into a speaking character's own turns: its epoch counts too.
        scopes = [epochs.WORLD, epochs.character_scope(character_id)]
        if speaker_id is not None and rows.character_exists(conn, speaker_id):
            scopes.append(epochs.character_scope(speaker_id))
        read_epochs = epochs.read(conn, scopes)
    return PromptInputs(character, speaker_name, names, world_facts, relevance, read_epochs)

"""Characters: state model, SQLite store, prompt building, effects of a reply."""

from .dialogue import Dialogue, SayHandle, SayResult
from .effects import StateChange, apply_reply
from .model import (
    MAX_PERSONA_CHARS,
    MAX_UTTERANCE_CHARS,
    RELATIONSHIP_RANGES,
    Character,
    FlagValue,
    Memory,
    Relationship,
    Speaker,
    Turn,
    WorldFact,
)
from .prompt import BuiltPrompt, PromptBuilder, normalize_utterance
from .schema import SCHEMA_VERSION
from .snapshots import SnapshotInfo, Snapshots
from .store import Store, default_database_path

__all__ = [
    "MAX_PERSONA_CHARS",
    "MAX_UTTERANCE_CHARS",
    "RELATIONSHIP_RANGES",
    "SCHEMA_VERSION",
    "BuiltPrompt",
    "Character",
    "Dialogue",
    "FlagValue",
    "Memory",
    "PromptBuilder",
    "Relationship",
    "SayHandle",
    "SayResult",
    "SnapshotInfo",
    "Snapshots",
    "Speaker",
    "StateChange",
    "Store",
    "Turn",
    "WorldFact",
    "apply_reply",
    "default_database_path",
    "normalize_utterance",
]

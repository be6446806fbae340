"""Characters: state model, SQLite store, prompt building, effects of a reply.

`model` is a leaf (pydantic only): the wire types and the client import it without the store.
Everything is imported on first use (see `npc_engine._lazy`).
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "StateChange": ".model", "SnapshotInfo": ".model",
    "MAX_PERSONA_CHARS": ".model", "MAX_UTTERANCE_CHARS": ".model", "RELATIONSHIP_RANGES": ".model",
    "Character": ".model", "FlagValue": ".model", "Memory": ".model", "Relationship": ".model",
    "Speaker": ".model", "Turn": ".model", "WorldFact": ".model",
    "apply_reply": ".effects",
    "AppliedReply": ".effects", "ReplyKey": ".keys",
    "PromptInputs": ".inputs", "read_prompt_inputs": ".inputs",
    "BuiltPrompt": ".prompt", "PromptBuilder": ".prompt", "normalize_utterance": ".prompt",
    "SCHEMA_VERSION": ".schema",
    "Snapshots": ".snapshots",
    "Store": ".store", "default_database_path": ".store",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

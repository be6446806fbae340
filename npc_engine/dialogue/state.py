"""Where a say reads a character's state and writes its reply: a `StateAccess`.

`LocalState` is a `Store` in this process (`serve`, scripts). A cluster replica reaches the
state service instead (`npc_engine.cluster.replica.RemoteState`), with the same two calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..characters.effects import AppliedReply, ReplyKey, apply_reply
from ..characters.inputs import PromptInputs, read_prompt_inputs
from ..characters.store import Store
from ..templates import Template

__all__ = ["LocalState", "StateAccess"]


class StateAccess(Protocol):
    """Read before a reply, write after it. Both may block (SQLite, a remote call); the dialogue
    service calls them on the caller's thread and on its state-writer thread, never in a frame."""

    def prompt_inputs(self, character_id: str, speaker_id: str | None, utterance: str = "") -> PromptInputs:
        """What the prompt for `utterance` needs, its facts ranked against it. Raises
        UnknownCharacterError / UnknownSpeakerError."""
        ...

    def apply_reply(self, key: str | ReplyKey | None, character_id: str, speaker_id: str | None,
                    template: Template, fields: Mapping[str, Any], utterance: str, *,
                    is_event: bool = False, epochs: Mapping[str, int] | None = None) -> AppliedReply:
        """Apply the reply's effects and record the turns, all or nothing; a second call with the
        same `key` changes nothing and returns what the first stored (its fields too). `is_event`:
        `utterance` is a game event caused by `speaker_id` (or by no one). `epochs`: the prompt's
        (`PromptInputs.epochs`); StateChangedError when the state was replaced since."""
        ...


class LocalState:
    """A `StateAccess` over a `Store` in this process."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def prompt_inputs(self, character_id: str, speaker_id: str | None, utterance: str = "") -> PromptInputs:
        return read_prompt_inputs(self.store, character_id, speaker_id, utterance)

    def apply_reply(self, key: str | ReplyKey | None, character_id: str, speaker_id: str | None,
                    template: Template, fields: Mapping[str, Any], utterance: str, *,
                    is_event: bool = False, epochs: Mapping[str, int] | None = None) -> AppliedReply:
        return apply_reply(self.store, character_id=character_id, speaker_id=speaker_id, template=template,
                           fields=fields, utterance=utterance, idempotency_key=key, is_event=is_event,
                           epochs=epochs)

"""`say`: read a character's state, build its prompt, generate, then apply the reply to state.

The reply's effects and turn record are written on one state-writer thread after the generation
finishes (complete, or finalized at its deadline), so neither the engine's frame nor the game's
thread waits on SQLite, and a reply nobody collects still lands. A cancelled or failed
generation changes nothing. `SayHandle.result()` returns only once the state is written.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..engine.handle import RequestHandle
from ..engine.request import Draft, FillResult
from ..errors import GenerationError
from . import rows
from .effects import StateChange, apply_reply
from .model import Turn
from .prompt import BuiltPrompt, PromptBuilder, normalize_utterance
from .store import Store

if TYPE_CHECKING:
    from ..engine.engine import Engine

__all__ = ["Dialogue", "PromptInputs", "SayHandle", "SayResult", "read_prompt_inputs"]

_APPLIED_REASONS = ("complete", "deadline")


@dataclass(frozen=True)
class SayResult:
    """A finished `say`: the reply's fields (None when cancelled or failed) and what it changed."""

    character_id: str
    speaker_id: str
    request_id: str
    finish_reason: str
    fields: dict[str, Any] | None
    changes: list[StateChange] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    prompt: BuiltPrompt | None = None
    fill: FillResult | None = None


@dataclass(frozen=True)
class PromptInputs:
    """What a character's prompt is built from, read in one consistent snapshot of the state
    (a cluster's replicas receive this from the state service and build the prompt themselves)."""

    character: Any
    speaker_name: str
    names: dict[str, str]
    world_facts: list[Any]


def read_prompt_inputs(store: Store, character_id: str, speaker_id: str) -> PromptInputs:
    """Raises UnknownCharacterError / UnknownSpeakerError."""
    with store.reading() as conn:
        character = rows.load_character(conn, character_id)
        speaker_name = rows.speaker_name(conn, speaker_id, character_id=character_id)
        names = {character.id: character.name, speaker_id: speaker_name}
        for turn in character.recent_turns:
            if turn.speaker_id not in names:
                names[turn.speaker_id] = rows.display_name(conn, turn.speaker_id) or turn.speaker_id
        world_facts = rows.load_world_facts(conn)
    return PromptInputs(character, speaker_name, names, world_facts)


def build_prompt(builder: PromptBuilder, inputs: PromptInputs, speaker_id: str, utterance: str) -> BuiltPrompt:
    return builder.build(inputs.character, speaker_id=speaker_id, speaker_name=inputs.speaker_name,
                         utterance=utterance, world_facts=inputs.world_facts, name_of=inputs.names.get)


class SayHandle:
    """Follow one `say` from any thread. `result()` raises what applying the reply raised
    (for example UnknownCharacterError when the character was deleted meanwhile)."""

    def __init__(self, request: RequestHandle, character_id: str, speaker_id: str, prompt: BuiltPrompt) -> None:
        self.request = request
        self.request_id = request.request_id
        self.character_id = character_id
        self.speaker_id = speaker_id
        self.prompt = prompt
        self.future: Future[SayResult] = Future()

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> SayResult:
        return self.future.result(timeout)

    def cancel(self) -> None:
        self.request.cancel()

    @property
    def latest_draft(self) -> Draft | None:
        return self.request.latest_draft

    def drafts(self, timeout: float | None = None) -> Iterator[Draft]:
        return self.request.drafts(timeout)


class Dialogue:
    """Characters talking through one engine and one store (`engine.use_store(store)` makes one)."""

    def __init__(self, engine: "Engine", store: Store, *, max_prompt_tokens: int | None = None) -> None:
        self.engine = engine
        self.store = store
        self.builder = PromptBuilder(engine.prompts, max_prompt_tokens=max_prompt_tokens)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-state")
        self._writer_lock = threading.Lock()
        self._is_closed = False

    def prepare(self, character_id: str, speaker_id: str, text: str) -> tuple[BuiltPrompt, str]:
        """(prompt, normalized utterance) from the current state. Raises UnknownCharacterError,
        UnknownSpeakerError, PromptError."""
        utterance = normalize_utterance(text, character_id=character_id)
        inputs = read_prompt_inputs(self.store, character_id, speaker_id)
        return build_prompt(self.builder, inputs, speaker_id, utterance), utterance

    def submit(self, character_id: str, speaker_id: str, text: str, *, template: Any, seed: int | None = None,
               priority: float = 0.0, deadline_ms: float | None = None, request_id: str | None = None,
               on_draft: Callable[[Draft], None] | None = None, stream: bool = False) -> SayHandle:
        """Queue a reply and return at once. Raises (before queueing anything) TemplateError,
        UnknownCharacterError, UnknownSpeakerError, PromptError, and the engine's RequestErrors."""
        resolved = self.engine.resolve_template(template)
        prompt, utterance = self.prepare(character_id, speaker_id, text)
        request = self.engine.submit(resolved, prompt.prompt, prefix=prompt.prefix, seed=seed, priority=priority,
                                     deadline_ms=deadline_ms, request_id=request_id, character_id=character_id,
                                     on_draft=on_draft, stream=stream)
        handle = SayHandle(request, character_id, speaker_id, prompt)

        def on_generated(future: Future[FillResult]) -> None:
            job = (handle, resolved, utterance, future.result())
            with self._writer_lock:
                if not self._is_closed:
                    self._writer.submit(self._finish, *job)
                    return
            self._finish(*job)

        request.future.add_done_callback(on_generated)
        return handle

    def say(self, character_id: str, speaker_id: str, text: str, *, template: Any,
            timeout: float | None = None, **options: Any) -> SayResult:
        """Submit and wait (running the engine in this thread when it has no thread of its own).
        Raises GenerationError when the generation failed inside the engine."""
        handle = self.submit(character_id, speaker_id, text, template=template, **options)
        self.engine.wait(handle.request, timeout)
        result = handle.result(timeout)
        if result.finish_reason == "error":
            raise GenerationError(f"generation failed: {result.fill.error if result.fill else ''}",
                                  request_id=result.request_id, character_id=character_id)
        return result

    def _finish(self, handle: SayHandle, template: Any, utterance: str, fill: FillResult) -> None:
        try:
            changes: list[StateChange] = []
            turns: list[Turn] = []
            if fill.finish_reason in _APPLIED_REASONS and fill.fields is not None:
                changes, turns = apply_reply(self.store, character_id=handle.character_id,
                                             speaker_id=handle.speaker_id, template=template,
                                             fields=fill.fields, utterance=utterance)
            handle.future.set_result(SayResult(
                character_id=handle.character_id, speaker_id=handle.speaker_id, request_id=handle.request_id,
                finish_reason=fill.finish_reason,
                fields=fill.fields if fill.finish_reason in _APPLIED_REASONS else None,
                changes=changes, turns=turns, prompt=handle.prompt, fill=fill))
        except BaseException as exc:  # the handle must always resolve
            handle.future.set_exception(exc)

    def close(self) -> None:
        """Finish pending state writes; later replies are applied on the engine's thread."""
        with self._writer_lock:
            self._is_closed = True
        self._writer.shutdown(wait=True)

"""`Dialogue`: the say path. Read a character's state, build its prompt (tokenized once), resolve
the template once, submit to the engine, then apply the reply's effects to state.

The reply's effects and turn record are written on one state-writer thread after the generation
finishes with a reply (`FinishReason.applies_state`: complete, or finalized at its deadline), so
neither the engine's frame nor the game's thread waits on SQLite, and a reply nobody collects
still lands. A cancelled or failed generation changes nothing. `SayHandle.result()` returns only
once the state is written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..characters.model import StateChange, Turn
from ..characters.prompt import BuiltPrompt, PromptBuilder, normalize_utterance
from ..characters.store import Store
from ..engine import Draft, Engine, FillResult, FinishReason, RequestHandle
from ..errors import GenerationError
from ..templates import Template
from .state import LocalState, StateAccess

__all__ = ["Dialogue", "SayHandle", "SayResult"]


@dataclass(frozen=True)
class SayResult:
    """A finished `say`: the reply's fields (None when cancelled or failed), what it changed, and
    the generation's own result (`fill`: seed, steps, timings)."""

    character_id: str
    speaker_id: str
    request_id: str
    finish_reason: FinishReason
    fields: dict[str, Any] | None
    fill: FillResult
    changes: list[StateChange] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    prompt: BuiltPrompt | None = None


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
        """Cancel the generation (UnknownRequestError when it already finished)."""
        self.request.cancel()

    @property
    def latest_draft(self) -> Draft | None:
        return self.request.latest_draft

    def drafts(self, timeout: float | None = None) -> Iterator[Draft]:
        return self.request.drafts(timeout)


class Dialogue:
    """Characters talking through one engine and one state (a `Store`, or any `StateAccess`).

    >>> dialogue = Dialogue(engine, Store("game.db"))
    >>> reply = dialogue.say("brom", "player", "Any work?", template="shopkeeper_reply")
    """

    def __init__(self, engine: Engine, state: Store | StateAccess, *, max_prompt_tokens: int | None = None) -> None:
        self.engine = engine
        self.store: Store | None = state if isinstance(state, Store) else None
        self.state: StateAccess = LocalState(state) if isinstance(state, Store) else state
        self.builder = PromptBuilder(engine.prompts, max_prompt_tokens=max_prompt_tokens)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-state")
        self._writer_lock = threading.Lock()
        self._is_closed = False

    def prepare(self, character_id: str, speaker_id: str, text: str) -> tuple[BuiltPrompt, str]:
        """(prompt, normalized utterance) from the current state. Raises UnknownCharacterError,
        UnknownSpeakerError, PromptError."""
        utterance = normalize_utterance(text, character_id=character_id)
        inputs = self.state.prompt_inputs(character_id, speaker_id, utterance)
        return self.builder.build_from(inputs, speaker_id, utterance), utterance

    def submit(self, character_id: str, speaker_id: str, text: str, *,
               template: Template | Mapping[str, Any] | str | Path, seed: int | None = None,
               priority: float = 0.0, deadline_ms: float | None = None, request_id: str | None = None,
               on_draft: Callable[[Draft], None] | None = None, stream: bool = False,
               key: str | None = None) -> SayHandle:
        """Queue a reply and return at once. `key` makes applying it idempotent (a retried say
        changes state once). Raises (before queueing anything) TemplateError,
        UnknownCharacterError, UnknownSpeakerError, PromptError, and the engine's RequestErrors."""
        resolved = self.engine.resolve_template(template)
        prompt, utterance = self.prepare(character_id, speaker_id, text)
        request = self.engine.submit(resolved, prompt.encoded or prompt.prompt, prefix=prompt.prefix, seed=seed,
                                     priority=priority, deadline_ms=deadline_ms, request_id=request_id,
                                     character_id=character_id, on_draft=on_draft, stream=stream)
        handle = SayHandle(request, character_id, speaker_id, prompt)

        def on_generated(future: Future[FillResult]) -> None:
            job = (handle, resolved, utterance, future.result(), key)
            with self._writer_lock:
                if not self._is_closed:
                    self._writer.submit(self._finish, *job)
                    return
            self._finish(*job)

        request.future.add_done_callback(on_generated)
        return handle

    def say(self, character_id: str, speaker_id: str, text: str, *,
            template: Template | Mapping[str, Any] | str | Path, timeout: float | None = None,
            **options: Any) -> SayResult:
        """Submit and wait (running the engine in this thread when it has no thread of its own).
        Raises GenerationError when the generation failed inside the engine."""
        handle = self.submit(character_id, speaker_id, text, template=template, **options)
        self.engine.wait(handle.request, timeout)
        result = handle.result(timeout)
        if result.finish_reason == FinishReason.ERROR:
            raise GenerationError(f"generation failed: {result.fill.error}", request_id=result.request_id,
                                  character_id=character_id)
        return result

    def _finish(self, handle: SayHandle, template: Template, utterance: str, fill: FillResult,
                key: str | None) -> None:
        try:
            changes: list[StateChange] = []
            turns: list[Turn] = []
            reason = FinishReason(fill.finish_reason)
            has_reply = reason.applies_state and fill.fields is not None
            if has_reply:
                changes, turns = self.state.apply_reply(key, handle.character_id, handle.speaker_id, template,
                                                        fill.fields, utterance)
            handle.future.set_result(SayResult(
                character_id=handle.character_id, speaker_id=handle.speaker_id, request_id=handle.request_id,
                finish_reason=reason, fields=fill.fields if has_reply else None, fill=fill,
                changes=changes, turns=turns, prompt=handle.prompt))
        except BaseException as exc:  # the handle must always resolve
            handle.future.set_exception(exc)

    def close(self) -> None:
        """Finish pending state writes; later replies are applied on the engine's thread."""
        with self._writer_lock:
            self._is_closed = True
        self._writer.shutdown(wait=True)

    def __enter__(self) -> "Dialogue":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

from ..characters.effects import ReplyKey
from ..characters.inputs import PromptInputs
from ..characters.model import StateChange, Turn
from ..characters.prompt import BuiltPrompt, PromptBuilder, normalize_utterance
from ..characters.store import Store
from ..engine import Draft, Engine, FillResult, FinishReason, RequestHandle
from ..errors import RequestError
from ..templates import CanvasPlan, Template
from .events import DEFAULT_MIN_EVENT_INTERVAL_MS, CoalescedEvent, EventGate
from .state import LocalState, StateAccess

__all__ = ["Dialogue", "SayHandle", "SayResult"]


@dataclass(frozen=True)
class SayResult:
    """A finished `say`: the reply's fields as applied (None when cancelled or failed; for a say
    retried with a key already applied, the first attempt's), what it changed, and this
    generation's own result (`fill`: seed, steps, timings)."""

    character_id: str
    speaker_id: str | None  # None: an event nobody caused
    request_id: str
    finish_reason: FinishReason
    fields: dict[str, Any] | None
    fill: FillResult
    changes: list[StateChange] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    prompt: BuiltPrompt | None = None
    coalesced: bool = False  # an event answered by the reply to an earlier one (events.py)

    @classmethod
    def cancelled(cls, request_id: str, character_id: str, speaker_id: str | None, template_name: str,
                  seed: int = 0) -> "SayResult":
        """A say cancelled before anything was generated: nothing changed."""
        fill = FillResult(request_id=request_id, template=template_name, fields=None,
                          finish_reason=FinishReason.CANCELLED, seed=seed, num_steps=0, tokens_per_forward=0.0,
                          elapsed_ms=0.0, num_prompt_tokens=0, num_cached_prompt_tokens=0, character_id=character_id)
        return cls(character_id=character_id, speaker_id=speaker_id, request_id=request_id,
                   finish_reason=FinishReason.CANCELLED, fields=None, fill=fill)


class SayHandle:
    """Follow one `say` from any thread. `result()` raises what applying the reply raised
    (for example UnknownCharacterError when the character was deleted meanwhile)."""

    def __init__(self, request: RequestHandle, character_id: str, speaker_id: str | None, prompt: BuiltPrompt, *,
                 is_event: bool = False) -> None:
        self.request = request
        self.request_id = request.request_id
        self.character_id = character_id
        self.speaker_id = speaker_id
        self.prompt = prompt
        self.is_event = is_event
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

    def __init__(self, engine: Engine, state: Store | StateAccess, *, max_prompt_tokens: int | None = None,
                 min_event_interval_ms: float = DEFAULT_MIN_EVENT_INTERVAL_MS) -> None:
        self.engine = engine
        self.store: Store | None = state if isinstance(state, Store) else None
        self.state: StateAccess = LocalState(state) if isinstance(state, Store) else state
        self.builder = PromptBuilder(engine.prompts, max_prompt_tokens=max_prompt_tokens)
        self.events = EventGate(min_event_interval_ms)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-state")
        self._writer_lock = threading.Lock()
        self._is_closed = False

    def prepare(self, character_id: str, speaker_id: str | None, text: str, *,
                is_event: bool = False) -> tuple[BuiltPrompt, str]:
        """(prompt, normalized text) from the current state: `speaker_id` says `text` to the
        character, or with `is_event` the event `text` happened (caused by `speaker_id`, or None).
        Raises UnknownCharacterError, UnknownSpeakerError, PromptError, RequestError (a character
        speaking to itself)."""
        prompt, utterance, _ = self._prepare(character_id, speaker_id, text, is_event=is_event)
        return prompt, utterance

    def _prepare(self, character_id: str, speaker_id: str | None, text: str, *,
                 is_event: bool, num_canvas_tokens: int | None = None) -> tuple[BuiltPrompt, str, PromptInputs]:
        if speaker_id == character_id:
            raise RequestError(f"{character_id!r} cannot speak to itself: the speaker must be someone else "
                               "(another character, or a registered speaker)", character_id=character_id)
        if speaker_id is None and not is_event:
            raise RequestError("a say needs a speaker; only an event may have none", character_id=character_id)
        utterance = normalize_utterance(text, character_id=character_id, is_event=is_event)
        inputs = self.state.prompt_inputs(character_id, speaker_id, utterance)
        built = self.builder.build_from(inputs, speaker_id, utterance, is_event=is_event,
                                        num_canvas_tokens=num_canvas_tokens)
        return built, utterance, inputs

    def submit(self, character_id: str, speaker_id: str | None, text: str, *,
               template: Template | Mapping[str, Any] | str | Path, seed: int | None = None,
               priority: float = 0.0, deadline_ms: float | None = None, request_id: str | None = None,
               on_draft: Callable[[Draft], None] | None = None, stream: bool = False,
               key: str | ReplyKey | None = None, is_event: bool = False, trace: bool = False,
               values: Mapping[str, str] | None = None,
               options: Mapping[str, list[str]] | None = None) -> SayHandle | CoalescedEvent:
        """Queue a reply and return at once. `key` makes applying it idempotent (a retried say
        changes state once; a `ReplyKey` names a retry's first attempt: characters/keys.py). The
        reply is applied only onto the state it was prepared on: a save loaded, the character
        deleted or the world changed meanwhile makes `result()` raise StateChangedError. With `is_event`, `text` is a game event caused by `speaker_id` (or by
        no one: None), admitted per character as events.py says: it may be coalesced into the
        reply already running (a `CoalescedEvent`) or refused (RateLimitedError). `trace` adds each
        step's canvas to the drafts (`Engine.submit`). `values` fill the template's pattern
        placeholders and its `remember` texts, over the ones read from state (`line_values`); `options`
        replace choice slots' options for this say (`Template.with_choice_options`). Raises (before
        queueing anything) TemplateError, UnknownCharacterError, UnknownSpeakerError, PromptError,
        and the engine's RequestErrors."""
        plan = self.engine.plan_for(template)  # the one lookup of the say's template
        if options:
            plan = self.engine.plan_for(plan.template.with_choice_options(options))

        def start() -> SayHandle:
            return self._start(character_id, speaker_id, text, plan, seed=seed, priority=priority,
                               deadline_ms=deadline_ms, request_id=request_id, on_draft=on_draft, stream=stream,
                               key=key, is_event=is_event, trace=trace, values=values)

        if not is_event:
            return start()
        return self.events.admit(character_id, plan.template.name, request_id or "", start)

    def _start(self, character_id: str, speaker_id: str | None, text: str, plan: CanvasPlan, *,
               seed: int | None, priority: float, deadline_ms: float | None, request_id: str | None,
               on_draft: Callable[[Draft], None] | None, stream: bool, key: str | ReplyKey | None,
               is_event: bool, trace: bool, values: Mapping[str, str] | None) -> SayHandle:
        prompt, utterance, inputs = self._prepare(character_id, speaker_id, text, is_event=is_event,
                                                  num_canvas_tokens=plan.num_tokens)
        say_values = {**line_values(inputs), **(values or {})}
        request = self.engine.submit(plan, prompt.encoded or prompt.prompt, prefix=prompt.prefix, seed=seed,
                                     priority=priority, deadline_ms=deadline_ms, request_id=request_id,
                                     character_id=character_id, on_draft=on_draft, stream=stream, trace=trace,
                                     values=say_values)
        handle = SayHandle(request, character_id, speaker_id, prompt, is_event=is_event)
        effects = plan.template.with_effect_values(say_values)  # what applying the reply writes

        def on_generated(future: Future[FillResult]) -> None:
            job = (handle, effects, utterance, future.result(), key, inputs.epochs)
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
        return self._wait(self.submit(character_id, speaker_id, text, template=template, **options), timeout)

    def react(self, character_id: str, event: str, *, causer_id: str | None = None,
              template: Template | Mapping[str, Any] | str | Path, timeout: float | None = None,
              **options: Any) -> SayResult:
        """The character's reply to a game event ("Aria walks into the forge"), caused by
        `causer_id` (a speaker or another character) or by no one; recorded as an event turn.
        Raises RateLimitedError as events.py says, and what `say` raises."""
        handle = self.submit(character_id, causer_id, event, template=template, is_event=True, **options)
        return self._wait(handle, timeout)

    def _wait(self, handle: SayHandle | CoalescedEvent, timeout: float | None) -> SayResult:
        shared = handle.shared if isinstance(handle, CoalescedEvent) else handle
        self.engine.wait(shared.request, timeout)
        result = handle.result(timeout)
        result.fill.raise_if_failed()
        return result

    def _finish(self, handle: SayHandle, template: Template, utterance: str, fill: FillResult,
                key: str | ReplyKey | None, epochs: dict[str, int]) -> None:
        try:
            fields: dict[str, Any] | None = None
            changes: list[StateChange] = []
            turns: list[Turn] = []
            reason = FinishReason(fill.finish_reason)
            if reason.applies_state and fill.fields is not None:
                # A retried key answers with what the first attempt stored, not this generation.
                applied = self.state.apply_reply(key, handle.character_id, handle.speaker_id, template,
                                                 fill.fields, utterance, is_event=handle.is_event, epochs=epochs)
                fields, changes, turns = applied.fields, applied.changes, applied.turns
            handle.future.set_result(SayResult(
                character_id=handle.character_id, speaker_id=handle.speaker_id, request_id=handle.request_id,
                finish_reason=reason, fields=fields, fill=fill, changes=changes, turns=turns, prompt=handle.prompt))
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


def line_values(inputs: PromptInputs) -> dict[str, str]:
    """Pattern placeholders state fills: `{name}` the character's name, `{player}` the speaker's
    (when someone speaks), `{town}` the world fact keyed "town" (when the world sets one)."""
    values = {"name": inputs.character.name}
    if inputs.speaker_name:
        values["player"] = inputs.speaker_name
    town = next((fact.text.strip().rstrip(".") for fact in inputs.world_facts if fact.key == "town"), None)
    if town:
        values["town"] = town
    return values

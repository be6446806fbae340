"""One engine replica: its own model, scheduler and prefix cache, and no state of its own.

Requests for a character always reach the same replica (see `app.py`), so its persona prefix
stays in this replica's prefix cache; that cache is only a cache: a character that lands on
another replica (one was lost or added) costs one prefill there, never a wrong answer, because
every say reads the character from the state service first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, AsyncIterator

from ..characters.inputs import PromptInputs
from ..characters.effects import AppliedReply, ReplyKey
from ..dialogue import Dialogue
from ..engine import Draft, Engine, EngineConfig
from ..errors import UnknownRequestError, UnknownTemplateError
from ..templates import Template
from .remote import result_of

__all__ = ["EngineReplica", "RemoteState", "ReplicaOptions"]

log = logging.getLogger("npc_engine.cluster")

_STATS_EVERY_S = 1.0
# Cancels that came before their say (two calls to one replica may arrive in either order).
_MAX_EARLY_CANCELS = 10_000


@dataclasses.dataclass(frozen=True)
class ReplicaOptions:
    model: str | None = None          # a model folder; None: the built-in model
    backend: str = "torch"
    device: str | None = "cpu"
    frame_budget_ms: float | None = None
    target_fps: float = 60.0
    max_batch_size: int = 32
    max_denoising_steps: int | None = None


class RemoteState:
    """The dialogue service's `StateAccess`, answered by the state service (blocking calls: the
    service makes them on a say's preparing thread and on its state-writer thread)."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def prompt_inputs(self, character_id: str, speaker_id: str | None, utterance: str = "") -> PromptInputs:
        return result_of(self._state.prompt_inputs.remote(character_id, speaker_id, utterance))

    def apply_reply(self, key: str | ReplyKey | None, character_id: str, speaker_id: str | None,
                    template: Template, fields: Mapping[str, Any], utterance: str, *,
                    is_event: bool = False, epochs: Mapping[str, int] | None = None) -> AppliedReply:
        return result_of(self._state.apply_reply.remote(key, character_id, speaker_id, template, dict(fields),
                                                        utterance, is_event=is_event, epochs=dict(epochs or {})))


class EngineReplica:
    """The body of the replica deployment (`app.py` wraps it with `serve.deployment`)."""

    router = "consistent_hash"  # how gateways route to this replica class (see app.py)

    def __init__(self, state: Any, options: ReplicaOptions) -> None:
        self.state = state
        overrides = {"max_denoising_steps": options.max_denoising_steps} if options.max_denoising_steps else {}
        config = EngineConfig(frame_budget_ms=options.frame_budget_ms, target_fps=options.target_fps,
                              max_batch_size=options.max_batch_size)
        self.engine = Engine.from_pretrained(options.model, device=options.device, backend=options.backend,
                                             config=config, **overrides)
        self.dialogue = Dialogue(self.engine, RemoteState(state))
        self.engine.start()
        self.replica_id = _replica_id()
        self._says: dict[str, Any] = {}  # idempotency key -> the say's handle, while it runs
        self._early_cancels: OrderedDict[str, None] = OrderedDict()
        self._says_lock = threading.Lock()
        self._is_closed = threading.Event()
        threading.Thread(target=self._report_stats, name="npc-replica-stats", daemon=True).start()

    def _report_stats(self) -> None:
        while not self._is_closed.wait(_STATS_EVERY_S):
            try:
                self.state.report_stats.remote(self.replica_id, self.stats())
            except Exception as exc:  # the state service restarting: report again next time
                log.debug("stats report failed: %s", exc)

    async def _template(self, name: str) -> Template:
        template = self.engine.templates.get(name)
        if template is None:
            known = await self.state.get_templates.remote()
            for known_template in known.values():
                if known_template.name not in self.engine.templates:
                    self.engine.register_template(known_template)
            template = self.engine.templates.get(name)
        if template is None:
            raise UnknownTemplateError(f"no template is registered as {name!r}", template=name)
        return template

    async def say(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Stream a say: {"event": "draft", "draft": Draft} events while it denoises (when asked),
        then one {"event": "result", "said": SayResult} after the reply was applied to the state
        service (under the request's idempotency key)."""
        template = await self._template(request["template"])
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_draft(draft: Draft) -> None:
            loop.call_soon_threadsafe(events.put_nowait, draft)

        key = ReplyKey(request["key"], request.get("key_first_sent_ms"))
        handle = await asyncio.to_thread(  # reads the character from the state service
            self.dialogue.submit, request["character_id"], request["speaker_id"], request["text"],
            template=template, seed=request.get("seed"), priority=request.get("priority", 0.0),
            deadline_ms=request.get("deadline_ms"), on_draft=on_draft if request.get("stream") else None,
            key=key, is_event=request.get("is_event", False), trace=request.get("trace", False),
            values=request.get("values") or None, options=request.get("options") or None)
        with self._says_lock:
            self._says[key.value] = handle
            is_cancelled_early = key.value in self._early_cancels
            self._early_cancels.pop(key.value, None)
        if is_cancelled_early:
            _cancel_quietly(handle)

        def finished(_: Any) -> None:
            with self._says_lock:
                self._says.pop(key.value, None)
            loop.call_soon_threadsafe(events.put_nowait, None)

        handle.future.add_done_callback(finished)
        try:
            while (draft := await events.get()) is not None:
                yield {"event": "draft", "draft": draft}
        except (asyncio.CancelledError, GeneratorExit):  # the gateway is gone: nobody reads the answer
            _cancel_quietly(handle)
            raise
        yield {"event": "result", "said": handle.future.result()}

    def cancel(self, key: str) -> None:
        """Cancel the say running under `key`, if it is still generating. One that already
        finished goes on to apply its reply, and its stream answers with what was committed: the
        gateway never reports a cancel for a reply that landed. A cancel that comes before its
        say is held until the say arrives."""
        with self._says_lock:
            handle = self._says.get(key)
            if handle is None:
                self._early_cancels[key] = None
                while len(self._early_cancels) > _MAX_EARLY_CANCELS:
                    self._early_cancels.popitem(last=False)
                return
        _cancel_quietly(handle)

    async def register_template(self, template: Template) -> str:
        """Compile here (a bad or oversized template fails now), then publish it to every replica."""
        registered = self.engine.register_template(template)
        return await self.state.register_template.remote(registered)

    def check_template(self, template: Template) -> dict[str, Any]:
        return self.engine.check_template(template)

    def whoami(self, character_id: str | None = None) -> str:
        return self.replica_id

    def routing(self) -> str:
        return self.router

    def stats(self) -> dict[str, Any]:
        return self.engine.stats_dict()

    def model_info(self) -> Any:
        return self.engine.model_info()

    def engine_config(self) -> EngineConfig:
        """The frame budget and rate this replica's engine runs (the gateway's hello reports it)."""
        return self.engine.config

    def __del__(self) -> None:
        closed = getattr(self, "_is_closed", None)
        if closed is not None:
            closed.set()
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
        dialogue = getattr(self, "dialogue", None)
        if dialogue is not None:
            dialogue.close()


def _cancel_quietly(handle: Any) -> None:
    try:
        handle.cancel()
    except UnknownRequestError:  # it finished: its reply is applied and on its way
        pass


def _replica_id() -> str:
    try:
        from ray import serve
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a Serve replica (unit use)
        return f"pid-{os.getpid()}"

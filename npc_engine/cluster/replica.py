"""One engine replica: its own model, scheduler and prefix cache, and no state of its own.

Requests for a character always reach the same replica (see `app.py`), so its persona prefix
stays in this replica's prefix cache; that cache is only a cache: a character that lands on
another replica (one was lost or added) costs one prefill there, never a wrong answer, because
every say reads the character from the state service first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from typing import Any, AsyncIterator

from ..characters.dialogue import build_prompt
from ..characters.prompt import PromptBuilder, normalize_utterance
from ..engine import Engine, EngineConfig
from ..errors import UnknownTemplateError
from ..templates import Template

__all__ = ["EngineReplica", "ReplicaOptions"]

_STATS_EVERY_S = 1.0


@dataclasses.dataclass(frozen=True)
class ReplicaOptions:
    model: str | None = None          # a model folder; None: the built-in model
    backend: str = "torch"
    device: str | None = "cpu"
    frame_budget_ms: float | None = None
    target_fps: float = 60.0
    max_batch_size: int = 32
    max_denoising_steps: int | None = None


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
        self.builder = PromptBuilder(self.engine.prompts)
        self.engine.start()
        self.replica_id = _replica_id()
        self._is_closed = threading.Event()
        threading.Thread(target=self._report_stats, name="npc-replica-stats", daemon=True).start()

    def _report_stats(self) -> None:
        while not self._is_closed.wait(_STATS_EVERY_S):
            try:
                self.state.report_stats.remote(self.replica_id, self.stats())
            except Exception:  # the state service restarting: report again next time
                pass

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
        """Stream a say: {"event": "draft", ...} events while it denoises (when asked), then one
        {"event": "result", ...} after the reply was applied to the state service."""
        template = await self._template(request["template"])
        character_id, speaker_id = request["character_id"], request["speaker_id"]
        utterance = normalize_utterance(request["text"], character_id=character_id)
        inputs = await self.state.prompt_inputs.remote(character_id, speaker_id)
        prompt = build_prompt(self.builder, inputs, speaker_id, utterance)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_draft(draft: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, ("draft", draft))

        handle = self.engine.submit(template, prompt.prompt, prefix=prompt.prefix, seed=request.get("seed"),
                                    priority=request.get("priority", 0.0), deadline_ms=request.get("deadline_ms"),
                                    character_id=character_id, on_draft=on_draft if request.get("stream") else None)
        handle.future.add_done_callback(lambda _: loop.call_soon_threadsafe(events.put_nowait, ("done", None)))
        try:
            while True:
                kind, draft = await events.get()
                if kind == "done":
                    break
                yield {"event": "draft", "fields": draft.fields, "num_steps": draft.num_steps}
        except (asyncio.CancelledError, GeneratorExit):
            handle.cancel()
            raise
        fill = handle.future.result()
        changes: list = []
        if fill.finish_reason in ("complete", "deadline") and fill.fields is not None:
            changes, _ = await self.state.apply_reply.remote(request["key"], character_id, speaker_id, template,
                                                             fill.fields, utterance)
        yield {"event": "result", "fill": fill, "changes": changes}

    async def register_template(self, template: Template) -> str:
        """Compile here (a bad or oversized template fails now), then publish it to every replica."""
        registered = self.engine.register_template(template)
        return await self.state.register_template.remote(registered)

    def whoami(self, character_id: str | None = None) -> str:
        return self.replica_id

    def routing(self) -> str:
        return self.router

    def stats(self) -> dict[str, Any]:
        return self.engine.stats_dict()

    def model_info(self) -> Any:
        return self.engine.backend.info()

    def __del__(self) -> None:
        closed = getattr(self, "_is_closed", None)
        if closed is not None:
            closed.set()
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


def _replica_id() -> str:
    try:
        from ray import serve
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a Serve replica (unit use)
        return f"pid-{os.getpid()}"

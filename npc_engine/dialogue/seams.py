"""The typed seams the server depends on: what it needs of an engine and of a say service.

`Engine` with a `Dialogue` implements them in one process; the cluster's `ClusterEngine`
implements both over Ray Serve replicas. The server never sees a concrete class.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Callable, Protocol

from ..engine import Draft, EngineConfig
from ..model_info import ModelInfo
from ..templates import Template
from .service import SayResult

__all__ = ["EngineSeam", "SayService", "SayTicket"]


class EngineSeam(Protocol):
    """The engine as a server sees it: templates, the frame budget it runs, model and stats."""

    config: EngineConfig  # frame_budget_ms and target_fps as hello reports them

    @property
    def templates(self) -> Mapping[str, Template]: ...

    def register_template(self, template: Template | Mapping[str, Any]) -> Template:
        """Validate, compile and register (TemplateError / TemplateTooLargeError)."""
        ...

    def check_template(self, template: Template | Mapping[str, Any]) -> dict[str, Any]:
        """Validate and compile without registering: the `template.check` result map."""
        ...

    def model_info(self) -> ModelInfo: ...

    def stats_dict(self) -> dict[str, Any]:
        """The wire's `stats.engine` map."""
        ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


class SayTicket(Protocol):
    """One outstanding say: its future resolves once the reply was applied to state."""

    request_id: str
    future: Future[SayResult]

    def cancel(self) -> None:
        """Ask to stop; the future then resolves with finish_reason cancelled (or already did).
        Raises UnknownRequestError when the generation has already finished."""
        ...


class SayService(Protocol):
    """Queue says; never blocks on generation (it may read state)."""

    def submit(self, character_id: str, speaker_id: str | None, text: str, *, template: Template,
               seed: int | None = None, priority: float = 0.0, deadline_ms: float | None = None,
               request_id: str | None = None, on_draft: Callable[[Draft], None] | None = None,
               is_event: bool = False, trace: bool = False,
               values: Mapping[str, str] | None = None,
               options: Mapping[str, list[str]] | None = None) -> SayTicket:
        """Raises, before queueing anything, what preparing the say raised (unknown character or
        speaker, a prompt that does not fit, a full queue, an event too soon: RateLimitedError,
        a pattern placeholder without a good value: TemplateError). With `is_event`, `text` is a
        game event caused by `speaker_id` (or by no one); `trace` asks for each step's canvas in
        the drafts (`Draft.trace`); `values` fill the template's pattern placeholders; `options`
        replace choice slots' options for this say."""
        ...

    def close(self) -> None: ...

"""The `observe` op's wire types (since 1.2): what a server did, as a numbered, bounded stream.

An observer polls: `observe` with `since` (the `next_seq` of its previous poll, 0 at first)
returns the events numbered `since` and later that the server still holds. The server keeps the
newest `capacity` events in a ring; an observer that polls too slowly finds the oldest gone
(`num_dropped` says how many), and nothing it does slows the engine or other clients.

Per say, in order: `say.start` (who, what, which template), zero or more `say.draft` (the best
fields after a step; with `debug`, each step's canvas), then exactly one of `say.reply` (the
fields, state changes, timings and the prompt's make-up) or `say.error`. `frames` events carry
the engine's per-frame device time while someone observes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..characters.model import StateChange
from .base import Wire

__all__ = ["OBSERVE_KINDS", "ObserveEvent", "ObserveResult", "PromptLine", "PromptSummary", "SayStart",
           "ObservedDraft", "ObservedReply", "ObservedError", "FrameStats", "CanvasStep"]

OBSERVE_KINDS = ("say.start", "say.draft", "say.reply", "say.error", "frames")


class SayStart(Wire):
    character_id: str
    speaker_id: str | None = Field(description="who spoke, or caused the event; null for an event nobody caused")
    text: str = Field(description="the line said, or the event's text")
    is_event: bool
    template: str
    client_request_id: str = Field(description="the id the saying client gave its request")


class CanvasStep(Wire):
    """One denoising step: the canvas after it, a token string per position, and per position
    "s" (skeleton, clamped), "a" (accepted: kept its sampled token) or "r" (renoised)."""
    step: int
    tokens: list[str]
    states: str


class ObservedDraft(Wire):
    num_steps: int
    fields: dict[str, Any]
    canvas: list[CanvasStep] = Field(default_factory=list, description="with `debug`: the steps since the "
                                                                       "previous draft")


class PromptLine(Wire):
    section: Literal["world", "memories", "turns"]
    text: str
    score: float | None = Field(description="facts: relevance, salience and recency weighed (lowest is "
                                            "dropped first); null for turns (dropped oldest first)")
    is_kept: bool


class PromptSummary(Wire):
    """What went into the prompt and what the token budget left out."""
    num_tokens: int
    num_turns_dropped: int
    num_facts_dropped: int
    lines: list[PromptLine] = Field(description="every droppable line, in drop order (first dropped first)")


class ObservedReply(Wire):
    finish_reason: Literal["complete", "deadline", "cancelled", "error"]
    fields: dict[str, Any] | None
    changes: list[StateChange]
    num_steps: int
    elapsed_ms: float
    num_prompt_tokens: int
    num_cached_prompt_tokens: int
    coalesced: bool
    prompt: PromptSummary | None = Field(default=None, description="null when the say ran nowhere to "
                                                                   "be seen (cancelled before it started)")


class ObservedError(Wire):
    code: str
    message: str


class FrameStats(Wire):
    frame_device_ms: list[float] = Field(description="device ms of each frame that did work since the "
                                                     "previous frames event (at most 120, newest last)")
    frame_budget_ms: float | None
    frame_device_ms_p50: float
    frame_device_ms_p99: float
    num_waiting: int
    num_active: int


class ObserveEvent(Wire):
    seq: int = Field(description="consecutive from 1 over the server's life")
    time_ms: int = Field(description="server wall clock, ms since the Unix epoch")
    kind: Literal[OBSERVE_KINDS]  # type: ignore[valid-type]
    say_id: str | None = Field(default=None, description="the server's id of a say (unique across "
                                                         "clients); null for frames")
    start: SayStart | None = None
    draft: ObservedDraft | None = None
    reply: ObservedReply | None = None
    error: ObservedError | None = None
    frames: FrameStats | None = None


class ObserveResult(Wire):
    events: list[ObserveEvent]
    next_seq: int = Field(description="pass as `since` in the next poll")
    num_dropped: int = Field(description="events at or after `since` the ring no longer held")
    capacity: int = Field(description="how many events the server keeps")

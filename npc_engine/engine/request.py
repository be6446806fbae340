"""A request is a resumable state machine: everything needed to stop between steps and go on.

Status only moves forward (an ordered enum). The finished statuses map one to one onto the
wire's finish reasons (`FinishReason`) through `FINISH_REASONS`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..diffusion.noise import RequestNoise
from ..errors import GenerationError
from ..templates import CanvasPlan

__all__ = ["Draft", "FINISH_REASONS", "FillResult", "FinishReason", "Request", "RequestStatus", "StepTrace",
           "finish_reason"]


class RequestStatus(enum.IntEnum):
    WAITING = 0              # queued, nothing encoded yet
    PREFILLING = 1           # admitted; prompt partly encoded
    RUNNING = 2              # prompt encoded; a block being denoised (or a finished one encoded)
    FINISHED_COMPLETE = 3    # canvas converged (or reached the step cap)
    FINISHED_DEADLINE = 4    # soft deadline: finalized from the argmax canvas
    FINISHED_CANCELLED = 5
    FINISHED_ERROR = 6


class FinishReason(enum.StrEnum):
    """How a request ended, as the wire spells it (a str: `reason == "complete"` holds)."""

    COMPLETE = "complete"      # the canvas converged, or reached the step cap
    DEADLINE = "deadline"      # finalized from its best canvas when the soft deadline passed
    CANCELLED = "cancelled"
    ERROR = "error"

    @property
    def applies_state(self) -> bool:
        """Complete and deadline carry a reply, which a say applies to character state;
        cancelled and error leave the state as it was."""
        return self in (FinishReason.COMPLETE, FinishReason.DEADLINE)


FINISH_REASONS: dict[RequestStatus, FinishReason] = {
    RequestStatus.FINISHED_COMPLETE: FinishReason.COMPLETE,
    RequestStatus.FINISHED_DEADLINE: FinishReason.DEADLINE,
    RequestStatus.FINISHED_CANCELLED: FinishReason.CANCELLED,
    RequestStatus.FINISHED_ERROR: FinishReason.ERROR,
}


def finish_reason(status: RequestStatus) -> FinishReason | None:
    """The wire's finish reason for a finished status; None while the request is live."""
    return FINISH_REASONS.get(status)


@dataclass(frozen=True)
class FillResult:
    """A finished request: the template's fields (None when cancelled or failed) and its costs."""

    request_id: str
    template: str
    fields: dict[str, Any] | None
    finish_reason: FinishReason
    seed: int
    num_steps: int
    tokens_per_forward: float
    elapsed_ms: float
    num_prompt_tokens: int
    num_cached_prompt_tokens: int
    prefill_ms: float = 0.0           # time spent encoding this request's prompt
    character_id: str | None = None
    error: str | None = None

    def raise_if_failed(self) -> FillResult:
        """GenerationError when the generation failed inside the engine (never the caller's
        fault); else this result. Every layer that hands a result on says it this one way."""
        if self.finish_reason == FinishReason.ERROR:
            raise GenerationError(f"generation failed: {self.error or 'unknown error'}",
                                  request_id=self.request_id, character_id=self.character_id)
        return self


@dataclass(frozen=True)
class StepTrace:
    """One denoising step of a traced request, for inspection: the canvas after the step (token
    strings, skeleton included) and what each position is: "s" skeleton (clamped), "a" accepted
    (kept its sampled token), "r" renoised (a fresh random token for the next step). A renoised
    position whose random token equals the sampled one (odds 1 in the vocabulary size) reads "a":
    the canvas is the same either way."""

    step: int
    tokens: tuple[str, ...]
    states: str


@dataclass(frozen=True)
class Draft:
    """The best valid rendering of a live request after one of its steps; `trace`: the steps
    since the previous draft, when the request was submitted with `trace=True`."""

    request_id: str
    fields: dict[str, Any]
    num_steps: int
    character_id: str | None = None
    trace: tuple[StepTrace, ...] = ()


@dataclass(eq=False)
class Request:
    request_id: str
    plan: CanvasPlan
    prefix_ids: tuple[int, ...]       # stable part (chat framing + persona): prefix-cache key
    turn_ids: tuple[int, ...]         # the new turn, encoded per request
    seed: int
    generator: RequestNoise
    priority: float = 0.0
    deadline_s: float | None = None
    character_id: str | None = None
    on_draft: Callable[[Draft], None] | None = None
    automata: Mapping[str, Any] = field(default_factory=dict)  # pattern slot -> its filled TokenAutomaton
    arrival_index: int = 0
    submitted_s: float = 0.0
    status: RequestStatus = RequestStatus.WAITING
    # encoding: the prompt, then each finished block of a multi-block plan
    cache: Any = None                 # this request's encoder KV cache (batch of one)
    num_encoded: int = 0
    block_index: int = 0              # the plan's block being denoised (or encoded before it)
    done_ids: tuple[int, ...] = ()    # the committed blocks before it (templates/blocks.py)
    chosen: dict[str, int] = field(default_factory=dict)  # option slots of the committed blocks
    next_pads: np.ndarray | None = None  # positions of this block held to pad (a line that ended before)
    num_cached_prompt_tokens: int = 0
    prefill_ms: float = 0.0
    # denoising (row tensors of the backend: torch or numpy/ORT; see the runners)
    canvas: Any = None
    argmax_canvas: Any = None
    self_conditioning_logits: Any = None
    stability_history: Any = None
    pattern_lines: dict[str, Any] = field(default_factory=dict)  # pattern slot -> its ids after the last step
    num_steps: int = 0
    num_steps_left: int = 0
    num_steps_skipped: int = 0
    is_traced: bool = False
    trace_rows: list = field(default_factory=list, repr=False)  # (step, canvas ids, states) since the last draft
    error: str | None = None
    result: FillResult | None = field(default=None, repr=False)

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        return self.prefix_ids + self.turn_ids

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prefix_ids) + len(self.turn_ids)

    @property
    def context_ids(self) -> tuple[int, ...]:
        """What the encoder takes: the prompt, then the committed blocks."""
        return self.prefix_ids + self.turn_ids + self.done_ids

    @property
    def num_tokens_to_encode(self) -> int:
        """Context not encoded yet: the prompt at first, a finished block between blocks."""
        return self.num_prompt_tokens + len(self.done_ids) - self.num_encoded

    @property
    def block_start(self) -> int:
        """Where the live block starts in the plan's layout."""
        return self.block_index * self.plan.canvas_length

    @property
    def has_blocks_left(self) -> bool:
        """Another block of the plan follows the live one."""
        return self.block_index + 1 < self.plan.num_blocks

    def next_chunk(self, chunk_tokens: int, num_encoded: int | None = None) -> tuple[int, int]:
        """[start, end) of the next context chunk to encode.

        Chunks restart at the prefix/turn boundary, so the prefix is always encoded the same
        way (and its KV cache can be stored), and at each committed block; they never depend
        on timing.
        """
        start = self.num_encoded if num_encoded is None else num_encoded
        prefix_end, prompt_end = len(self.prefix_ids), self.num_prompt_tokens
        if start < prefix_end:
            segment_start, segment_end = 0, prefix_end
        elif start < prompt_end:
            segment_start, segment_end = prefix_end, prompt_end
        else:
            length = self.plan.canvas_length
            segment_start = prompt_end + (start - prompt_end) // length * length
            segment_end = segment_start + length
        offset = start - segment_start
        end = min(segment_start + (offset // chunk_tokens + 1) * chunk_tokens, segment_end)
        return start, end

    def close_block(self) -> None:
        """Drop the live block's row state (its block was committed; the cache stays)."""
        self.canvas = self.argmax_canvas = None
        self.self_conditioning_logits = self.stability_history = None
        self.pattern_lines = {}

    def release(self) -> None:
        """Drop every tensor at once (finish, cancel, error)."""
        self.cache = None
        self.close_block()

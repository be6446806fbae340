"""Who runs next: pure policy over plain data (no torch), so it is unit-tested without a model.

Each core step the scheduler sees every live request as a `RequestView` and the time left in the
frame, and returns a `SchedulerOutput`: requests to finalize (soft deadline reached), the batch
for one decoder forward, and prompt chunks to prefill. Rules, in order:

1. A request past its soft deadline that has had at least one step is finalized from its argmax
   canvas. One with no step yet is urgent: it is prefilled and stepped before anyone else.
2. Order: urgent first, then effective priority = priority + `aging_per_step` x steps it was
   left out (so a low priority is delayed, never starved), then the nearer deadline, then
   arrival order.
3. The batch is the longest prefix of that order, at most `max_batch_size`, whose predicted
   step cost fits the budget left. Under a budget its size is also rounded down to one of
   `batch_sizes` (the sizes measured at start-up): on a GPU the first step at a new shape
   costs several times a warm one, which no prediction can foresee. Prefill chunks (one per request) fill what remains, for
   requests already admitted and then for waiting ones while active slots are free.
4. At the start of a frame at least one thing always runs, even over budget: otherwise a budget
   below one step would stall every character forever (that case is reported at start-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .cost_model import CostModel

__all__ = ["PrefillChunk", "RequestView", "Scheduler", "SchedulerOutput"]


@dataclass(frozen=True)
class RequestView:
    """What the scheduler knows of one live request."""

    request_id: str
    priority: float
    arrival_index: int
    deadline_s: float | None          # monotonic seconds; None = no deadline
    num_steps: int                    # denoising steps taken
    num_tokens_to_encode: int         # the prompt, or a finished block; 0 while denoising
    next_chunk_tokens: int            # size of the next prefill chunk (0 when prefilled)
    is_admitted: bool                 # prefill started (holds a KV cache and a slot)
    num_steps_skipped: int = 0        # core steps it could have run but did not

    @property
    def is_prefilled(self) -> bool:
        return self.num_tokens_to_encode == 0


@dataclass(frozen=True)
class PrefillChunk:
    request_id: str
    num_tokens: int


@dataclass(frozen=True)
class SchedulerOutput:
    finalize: tuple[str, ...] = ()
    step: tuple[str, ...] = ()
    prefill: tuple[PrefillChunk, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.finalize or self.step or self.prefill)


class Scheduler:
    def __init__(self, *, max_batch_size: int, canvas_length: int, aging_per_step: float,
                 batch_sizes: Sequence[int] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.batch_sizes = sorted(batch_sizes) if batch_sizes else None
        self.canvas_length = canvas_length
        self.aging_per_step = aging_per_step

    def order(self, requests: Sequence[RequestView], now_s: float) -> list[RequestView]:
        """Most deserving first (rule 2)."""
        def key(view: RequestView) -> tuple:
            is_urgent = self._is_past_deadline(view, now_s)
            effective = view.priority + self.aging_per_step * view.num_steps_skipped
            deadline = view.deadline_s if view.deadline_s is not None else math.inf
            return (not is_urgent, -effective, deadline, view.arrival_index)
        return sorted(requests, key=key)

    @staticmethod
    def _is_past_deadline(view: RequestView, now_s: float) -> bool:
        return view.deadline_s is not None and view.deadline_s <= now_s

    def schedule(
        self,
        requests: Sequence[RequestView],
        *,
        now_s: float,
        budget_left_ms: float | None,
        is_frame_start: bool,
        cost: CostModel,
    ) -> SchedulerOutput:
        finalize = tuple(v.request_id for v in requests
                         if self._is_past_deadline(v, now_s) and v.num_steps > 0)
        finalized = set(finalize)
        ordered = [v for v in self.order(requests, now_s) if v.request_id not in finalized]
        ready = [v for v in ordered if v.is_prefilled]

        spent_ms = 0.0
        num_batch = min(len(ready), self.max_batch_size)
        if budget_left_ms is not None:
            if self.batch_sizes:
                num_batch = max((b for b in self.batch_sizes if b <= num_batch), default=num_batch)
            while num_batch > 0 and not self._fits(
                    cost.predict_step_ms(num_batch, self.canvas_length), budget_left_ms, is_frame_start):
                num_batch = self._next_smaller(num_batch)
            if num_batch == 0 and ready and is_frame_start:
                num_batch = 1  # rule 4: a frame always moves, even over its budget
        batch = tuple(v.request_id for v in ready[:num_batch])
        if batch:
            spent_ms += cost.predict_step_ms(num_batch, self.canvas_length) or 0.0

        prefill: list[PrefillChunk] = []
        num_free_slots = self.max_batch_size - sum(1 for v in requests if v.is_admitted)
        candidates = [v for v in ordered if not v.is_prefilled and v.is_admitted]
        candidates += [v for v in ordered if not v.is_prefilled and not v.is_admitted]
        for view in candidates:
            if not view.is_admitted:
                if num_free_slots <= 0:
                    break
            predicted = cost.predict_prefill_ms(view.next_chunk_tokens)
            if budget_left_ms is not None and not self._fits(
                    None if predicted is None else spent_ms + predicted, budget_left_ms, is_frame_start):
                if not (is_frame_start and not batch and not prefill):  # rule 4 again
                    break
            if not view.is_admitted:
                num_free_slots -= 1
            prefill.append(PrefillChunk(view.request_id, view.next_chunk_tokens))
            spent_ms += predicted or 0.0
        return SchedulerOutput(finalize=finalize, step=batch, prefill=tuple(prefill))

    def _next_smaller(self, num_batch: int) -> int:
        if not self.batch_sizes:
            return num_batch - 1
        return max((b for b in self.batch_sizes if b < num_batch), default=0)

    @staticmethod
    def _fits(predicted_ms: float | None, budget_left_ms: float, is_frame_start: bool) -> bool:
        # Never measured: only worth trying at a frame start, where the measurement is taken.
        if predicted_ms is None:
            return is_frame_start
        return predicted_ms <= budget_left_ms

"""Engine settings: frame budget, batch and queue limits, prefix cache size. Validated at once."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import BudgetError

__all__ = ["EngineConfig"]


@dataclass(frozen=True)
class EngineConfig:
    """How the engine shares the device with the game.

    - `frame_budget_ms`: device time the engine may take per frame; None = no budget (run flat
      out, for servers and benchmarks).
    - `target_fps`: frames per second of the engine's own thread (ignored in lockstep mode,
      where the game calls `Engine.tick(budget_ms)` each frame).
    - `strict`: refuse to start when one step of the smallest batch cannot fit the budget
      (otherwise: warn, and run that one step per frame anyway, counted as an overrun).
    - `max_batch_size`: most requests in one decoder forward.
    - `max_queued_requests`: most requests waiting for a slot; one more raises QueueFullError.
    - `prefix_cache_bytes`: cap of the prefix KV cache (LRU by bytes); 0 turns it off.
    - `prefill_chunk_tokens`: prompts are encoded in chunks of this many tokens, so a long
      persona never takes a whole frame. Chunk boundaries depend only on the prompt, never on
      timing, so outputs never depend on the budget.
    - `aging_per_step`: priority a waiting request gains per step it is left out, so lower
      priorities are never starved.
    """

    frame_budget_ms: float | None = None
    target_fps: float = 60.0
    strict: bool = False
    max_batch_size: int = 32
    max_queued_requests: int = 1024
    prefix_cache_bytes: int = 256 * 1024 * 1024
    prefill_chunk_tokens: int = 256
    aging_per_step: float = 0.25

    def __post_init__(self) -> None:
        if self.frame_budget_ms is not None:
            check_budget_ms(self.frame_budget_ms)
            if self.frame_budget_ms > self.frame_period_ms:
                raise BudgetError(
                    f"frame_budget_ms={self.frame_budget_ms} is longer than a frame at "
                    f"target_fps={self.target_fps} ({self.frame_period_ms:.2f} ms)")
        if not (isinstance(self.target_fps, (int, float)) and math.isfinite(self.target_fps)
                and self.target_fps > 0):
            raise BudgetError(f"target_fps must be a positive number, got {self.target_fps!r}")
        for name in ("max_batch_size", "max_queued_requests", "prefill_chunk_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BudgetError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.prefix_cache_bytes, int) or self.prefix_cache_bytes < 0:
            raise BudgetError(f"prefix_cache_bytes must be >= 0, got {self.prefix_cache_bytes!r}")
        if not (isinstance(self.aging_per_step, (int, float)) and self.aging_per_step >= 0):
            raise BudgetError(f"aging_per_step must be >= 0, got {self.aging_per_step!r}")

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 / self.target_fps


def check_budget_ms(budget_ms: float) -> float:
    """A budget must be a finite number of milliseconds above zero."""
    if isinstance(budget_ms, bool) or not isinstance(budget_ms, (int, float)) \
            or not math.isfinite(budget_ms) or budget_ms <= 0:
        raise BudgetError(f"a frame budget must be a positive number of milliseconds, got {budget_ms!r}")
    return float(budget_ms)

"""Engine statistics: recorded by the engine thread, snapshotted from any thread."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from .prefix_cache import PrefixCacheStats

__all__ = ["EngineStats", "StatsRecorder"]

_WINDOW_FRAMES = 4096
_RECENT_FRAMES = 120


@dataclass(frozen=True)
class EngineStats:
    """A snapshot. Frame figures cover the last 4096 frames that did work."""

    frame_budget_ms: float | None
    num_frames: int
    frame_device_ms_p50: float
    frame_device_ms_p99: float
    frame_device_ms_max: float
    num_overruns: int                 # frames whose device time exceeded the budget
    num_waiting: int                  # queue depth: submitted, not yet admitted
    num_active: int                   # admitted: prefilling or denoising
    num_steps: int                    # decoder forwards
    steps_per_s: float                # decoder forwards per second of wall time since the first
    num_finished: dict[str, int]      # by finish reason
    mean_tokens_per_forward: float
    prefix_cache: PrefixCacheStats
    step_cost_ms: dict[int, float]    # predicted step cost per measured batch size
    largest_batch_within_budget: int | None
    budget_warning: str | None
    recent_frame_device_ms: tuple[float, ...] = ()  # the last 120 frames that did work, newest last

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.prefix_cache.hit_rate


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class StatsRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame_ms: deque[float] = deque(maxlen=_WINDOW_FRAMES)
        self._num_frames = 0
        self._num_overruns = 0
        self._num_steps = 0
        self._first_step_s: float | None = None
        self._last_step_s: float | None = None
        self._num_finished: dict[str, int] = {}
        self._tokens_per_forward_sum = 0.0
        self._num_completed = 0
        self.budget_warning: str | None = None
        self.largest_batch_within_budget: int | None = None

    def record_frame(self, device_ms: float, budget_ms: float | None) -> None:
        with self._lock:
            self._frame_ms.append(device_ms)
            self._num_frames += 1
            if budget_ms is not None and device_ms > budget_ms:
                self._num_overruns += 1

    def record_step(self) -> None:
        now = time.perf_counter()
        with self._lock:
            self._num_steps += 1
            if self._first_step_s is None:
                self._first_step_s = now
            self._last_step_s = now

    def record_finish(self, reason: str, tokens_per_forward: float | None) -> None:
        with self._lock:
            key = str(reason)  # a FinishReason counts under its wire name
            self._num_finished[key] = self._num_finished.get(key, 0) + 1
            if tokens_per_forward is not None:
                self._tokens_per_forward_sum += tokens_per_forward
                self._num_completed += 1

    def snapshot(self, *, frame_budget_ms: float | None, num_waiting: int, num_active: int,
                 prefix_cache: PrefixCacheStats, step_cost_ms: dict[int, float]) -> EngineStats:
        with self._lock:
            frames = list(self._frame_ms)
            elapsed = (self._last_step_s or 0.0) - (self._first_step_s or 0.0)
            return EngineStats(
                frame_budget_ms=frame_budget_ms,
                num_frames=self._num_frames,
                frame_device_ms_p50=percentile(frames, 0.50),
                frame_device_ms_p99=percentile(frames, 0.99),
                frame_device_ms_max=max(frames, default=0.0),
                num_overruns=self._num_overruns,
                num_waiting=num_waiting,
                num_active=num_active,
                num_steps=self._num_steps,
                steps_per_s=(self._num_steps - 1) / elapsed if elapsed > 0 else 0.0,
                num_finished=dict(self._num_finished),
                mean_tokens_per_forward=(self._tokens_per_forward_sum / self._num_completed
                                         if self._num_completed else 0.0),
                prefix_cache=prefix_cache,
                step_cost_ms=step_cost_ms,
                largest_batch_within_budget=self.largest_batch_within_budget,
                budget_warning=self.budget_warning,
                recent_frame_device_ms=tuple(frames[-_RECENT_FRAMES:]),
            )

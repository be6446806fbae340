"""Predicts the device time of the next step or prefill chunk from what was measured so far.

Pure Python (no torch): the scheduler asks it, the core feeds it measurements. Each series keeps
a smoothed mean and mean deviation (as TCP does for round-trip times) and predicts mean + 2 x
deviation, so a prediction sits above most real costs and the frame budget holds at p99.
Unmeasured sizes are predicted from measured neighbours, never optimistically: a larger batch
costs at least what a smaller one did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

__all__ = ["CostModel", "measure_ms"]

T = TypeVar("T")

_SMOOTHING = 0.125
_DEVIATION_SMOOTHING = 0.25
_NUM_DEVIATIONS = 2.0


@dataclass
class _Estimate:
    mean_ms: float
    deviation_ms: float
    num_samples: int = 1

    def observe(self, ms: float) -> None:
        self.deviation_ms += _DEVIATION_SMOOTHING * (abs(ms - self.mean_ms) - self.deviation_ms)
        self.mean_ms += _SMOOTHING * (ms - self.mean_ms)
        self.num_samples += 1

    @property
    def predicted_ms(self) -> float:
        return self.mean_ms + _NUM_DEVIATIONS * self.deviation_ms


class _Series:
    """Estimates keyed by a size (batch size, token count), predicted for any size."""

    def __init__(self) -> None:
        self._by_size: dict[int, _Estimate] = {}

    def observe(self, size: int, ms: float) -> None:
        estimate = self._by_size.get(size)
        if estimate is None:
            self._by_size[size] = _Estimate(ms, ms / 4)
        else:
            estimate.observe(ms)

    def predict(self, size: int) -> float | None:
        if size in self._by_size:
            return self._by_size[size].predicted_ms
        if not self._by_size:
            return None
        below = [s for s in self._by_size if s < size]
        above = [s for s in self._by_size if s > size]
        if below and above:
            low, high = max(below), min(above)
            low_ms, high_ms = self._by_size[low].predicted_ms, self._by_size[high].predicted_ms
            return low_ms + (high_ms - low_ms) * (size - low) / (high - low)
        if above:  # cost grows with size: the next larger measurement bounds it
            return self._by_size[min(above)].predicted_ms
        low = max(below)  # beyond what was measured: scale linearly, an upper bound
        return self._by_size[low].predicted_ms * size / low

    @property
    def sizes(self) -> list[int]:
        return sorted(self._by_size)


class CostModel:
    """Step cost per (batch size, canvas length); prefill cost per chunk size in tokens."""

    def __init__(self) -> None:
        self._steps: dict[int, _Series] = {}
        self._prefill = _Series()

    def observe_step(self, batch_size: int, canvas_length: int, ms: float) -> None:
        self._steps.setdefault(canvas_length, _Series()).observe(batch_size, ms)

    def observe_prefill(self, num_tokens: int, ms: float) -> None:
        self._prefill.observe(num_tokens, ms)

    def predict_step_ms(self, batch_size: int, canvas_length: int) -> float | None:
        series = self._steps.get(canvas_length)
        return series.predict(batch_size) if series else None

    def predict_prefill_ms(self, num_tokens: int) -> float | None:
        return self._prefill.predict(num_tokens)

    def largest_batch_within(self, budget_ms: float, canvas_length: int, max_batch_size: int) -> int:
        """The largest batch whose predicted step fits `budget_ms` (0 when not even one does)."""
        best = 0
        for batch_size in range(1, max_batch_size + 1):
            predicted = self.predict_step_ms(batch_size, canvas_length)
            if predicted is None or predicted > budget_ms:
                break
            best = batch_size
        return best

    def measured_batch_sizes(self, canvas_length: int) -> list[int]:
        series = self._steps.get(canvas_length)
        return series.sizes if series else []


def measure_ms(action: Callable[[], T], synchronize: Callable[[], None]) -> tuple[T, float]:
    """(result, milliseconds) of `action`, with the device synchronized before and after, so the
    time is the device work it queued rather than the time to launch it."""
    synchronize()
    started = time.perf_counter()
    result = action()
    synchronize()
    return result, (time.perf_counter() - started) * 1000.0

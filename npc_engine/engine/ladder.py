"""The sizes the engine works in: one ladder for the batch sizes that calibration measures, the
scheduler picks under a budget and the static runner pads to, so the three agree by
construction (and for the static runner's cached-length buckets)."""

from __future__ import annotations

__all__ = ["batch_sizes", "ladder"]


def ladder(largest: int, smallest: int, *, step: int = 2) -> list[int]:
    """`smallest`, then each times `step`, up to the first that reaches `largest` (capped at it)."""
    sizes, size = [], smallest
    while size < largest:
        sizes.append(size)
        size *= step
    return sizes + [largest]


def batch_sizes(max_batch_size: int) -> list[int]:
    """Powers of two below `max_batch_size`, then it."""
    return ladder(max_batch_size, 1)

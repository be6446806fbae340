"""When a canvas is done: its argmax stable for `stability_threshold` steps and its mean entropy
below `confidence_threshold`. One rule for both backends: it runs on torch tensors (the PyTorch
runner, the parity oracle) and on numpy arrays (the ONNX Runtime runner) alike, and imports no
torch, so an ONNX-only install can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["stable_and_confident", "stack_histories"]


def _is_numpy(array: Any) -> bool:
    return isinstance(array, np.ndarray)


def _filled(like: Any, shape: tuple[int, ...], value: int) -> Any:
    """An integer array of `shape` full of `value`, of `like`'s kind, dtype and device."""
    return np.full(shape, value, dtype=like.dtype) if _is_numpy(like) else like.new_full(shape, value)


def stable_and_confident(argmax_canvas: Any, mean_entropy: Any, history: Any | None, stability_threshold: int,
                         confidence_threshold: float) -> tuple[Any, Any | None]:
    """Whether each row's argmax has been stable and its mean entropy is below the threshold.

    `argmax_canvas` is (B, L), `mean_entropy` each row's mean entropy over the canvas, (B,).
    `history` holds the last `stability_threshold` argmax canvases, shape (S, B, L); it starts
    as None. Returns (done per row, updated history).
    """
    is_confident = mean_entropy < confidence_threshold
    if stability_threshold == 0:
        return is_confident, history
    if history is None:
        history = _filled(argmax_canvas, (stability_threshold, *argmax_canvas.shape), -1)
    is_stable = (history == argmax_canvas[None]).all(-1).all(0)
    history = np.roll(history, -1, axis=0) if _is_numpy(history) else history.roll(-1, 0)
    history[-1] = argmax_canvas
    return is_stable & is_confident, history


def stack_histories(histories: Sequence[Any | None], stability_threshold: int, like: Any) -> Any | None:
    """The batch's (S, B, L) history from each row's own (S, L) one (None: no step yet, so a row
    of -1, which no argmax equals); None when no row has one. `like` is a (L,) canvas row."""
    if stability_threshold == 0 or all(h is None for h in histories):
        return None
    empty = _filled(like, (stability_threshold, like.shape[-1]), -1)
    rows = [empty if h is None else h for h in histories]
    if _is_numpy(like):
        return np.stack(rows, axis=1)
    import torch
    return torch.stack(rows, dim=1)

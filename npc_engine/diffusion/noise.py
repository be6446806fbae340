"""A request's random stream, drawn on the host so every backend sees the same numbers.

The engine's runners (PyTorch and ONNX Runtime) take their random tokens and sampling draws from
here, one generator per request: the same seed gives the same canvases on either backend and
whatever else shares the batch. Each step draws `canvas_length` uniforms, then `canvas_length`
renoise tokens, in that order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RequestNoise"]


class RequestNoise:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def tokens(self, num_tokens: int, vocab_size: int) -> np.ndarray:
        """`num_tokens` uniform token ids in [0, vocab_size), int64."""
        return self._rng.integers(0, vocab_size, num_tokens, dtype=np.int64)

    def uniform(self, num_draws: int) -> np.ndarray:
        """`num_draws` floats in [0, 1), float32."""
        return self._rng.random(num_draws, dtype=np.float32)

    def step_draws(self, canvas_length: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
        """One step's (uniform, renoise tokens)."""
        return self.uniform(canvas_length), self.tokens(canvas_length, vocab_size)

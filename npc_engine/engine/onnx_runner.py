"""The ONNX Runtime runner: the same step as `ModelRunner`, with numpy row state and no torch.

The decoder step graph does the forward and the sampler; this file keeps each request's row
(canvas, argmax canvas, previous logits, stability history), stacks rows into a batch when the
membership changes, and checks stability on the host. The draws come from each request's
`RequestNoise`, in the same order as the PyTorch runner, so the same seed gives the same canvases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..diffusion import DiffusionSettings
from ..diffusion.stability import stable_and_confident, stack_histories
from ..models.onnx_backend import OnnxBackend, StepBinding
from .prefix_cache import PrefixCache
from .request import Request, RequestStatus
from .runner_base import RunnerBase

__all__ = ["OnnxRunner"]


class LogitsRow:
    """One row of a step's logits, left where the step wrote them until someone reads it.

    Rendering reads a few spans of it; on the GPU that is the only time logits leave the device.
    """

    def __init__(self, logits: Any, row: int) -> None:
        self._logits, self._row = logits, row
        self._host: np.ndarray | None = None

    def host(self) -> np.ndarray:
        if self._host is None:
            logits = self._logits if isinstance(self._logits, np.ndarray) else self._logits.numpy()
            self._host = logits[self._row]
        return self._host

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.host()[index]


@dataclass
class _ResidentBatch:
    request_ids: tuple[str, ...]
    binding: StepBinding
    canvas: np.ndarray                  # (B, L) int64
    self_conditioning_logits: Any       # (B, L, V): a host array or the last step's device output
    has_self_conditioning: np.ndarray   # (B,) bool
    stability_history: np.ndarray | None


class OnnxRunner(RunnerBase):
    def __init__(self, backend: OnnxBackend, settings: DiffusionSettings, prefix_cache: PrefixCache,
                 *, prefill_chunk_tokens: int) -> None:
        super().__init__(backend, settings, prefix_cache, prefill_chunk_tokens=prefill_chunk_tokens)
        self._temperatures = settings.temperatures()
        self._resident: _ResidentBatch | None = None

    name = "onnx"

    def _open_canvas(self, request: Request) -> None:
        canvas = request.generator.tokens(self.canvas_length, self.vocab_size)
        clamp_ids = self.block_clamp_ids(request)
        request.canvas = request.argmax_canvas = np.where(clamp_ids >= 0, clamp_ids, canvas)
        request.num_steps_left = self.settings.max_denoising_steps
        request.status = RequestStatus.RUNNING

    def _stack(self, requests: list[Request]) -> _ResidentBatch:
        request_ids = tuple(r.request_id for r in requests)
        if self._resident is not None and self._resident.request_ids == request_ids:
            return self._resident
        logit_bias = np.stack([self.block_logit_bias(r) for r in requests])
        binding, _ = self.backend.bind_batch([r.cache for r in requests], logit_bias)
        rows = [r.self_conditioning_logits for r in requests]
        has_signal = np.array([row is not None for row in rows], dtype=np.bool_)
        zeros = None
        logits = []
        for row in rows:
            if row is None:
                zeros = np.zeros((self.canvas_length, self.vocab_size), np.float32) if zeros is None else zeros
                logits.append(zeros)
            else:
                logits.append(row.host())
        history = stack_histories([r.stability_history for r in requests], self.settings.stability_threshold,
                                  requests[0].argmax_canvas)
        self._resident = _ResidentBatch(
            request_ids=request_ids, binding=binding, canvas=np.stack([r.canvas for r in requests]),
            self_conditioning_logits=np.stack(logits), has_self_conditioning=has_signal,
            stability_history=history)
        return self._resident

    def step(self, requests: list[Request]) -> list[bool]:
        settings = self.settings
        batch = self._stack(requests)
        draws = [r.generator.step_draws(self.canvas_length, self.vocab_size) for r in requests]
        temperature = self._temperatures[[r.num_steps_left - 1 for r in requests]]
        renoise = np.stack([t for _, t in draws])
        canvas, argmax_canvas, mean_entropy, logits = self.backend.run_step(
            batch.binding, batch.canvas, batch.self_conditioning_logits, batch.has_self_conditioning,
            temperature, np.stack([u for u, _ in draws]), renoise, settings.entropy_bound)
        is_done, history = stable_and_confident(argmax_canvas, mean_entropy, batch.stability_history,
                                                settings.stability_threshold, settings.confidence_threshold)
        batch.canvas, batch.self_conditioning_logits, batch.stability_history = canvas, logits, history
        batch.has_self_conditioning = np.ones(len(requests), dtype=np.bool_)
        is_done = self._advance_rows(requests, is_done.tolist(), canvas, argmax_canvas,
                                     [LogitsRow(logits, row) for row in range(len(requests))], history)
        self._after_step(requests, renoise)
        return is_done

    def _write_span(self, request: Request, span: slice, tokens: np.ndarray, renoise: np.ndarray) -> None:
        request.argmax_canvas[span] = tokens
        canvas = request.canvas[span]
        is_accepted = canvas != renoise
        canvas[is_accepted] = tokens[is_accepted]

    def forget_batch(self) -> None:
        self._resident = None

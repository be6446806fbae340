"""The static-shape runner: our own forward over preallocated per-slot state, in batch buckets.

A request takes a slot when it first steps (its encoder cache is copied in once) and gives it
back when it finishes; a step names its rows by slot index (`StaticStep`). With `pads_batches`
a batch is padded to its bucket (1, 2, 4, ... up to the slot count) with scratch rows, and the
cached length to a power-of-two bucket, so every step has one of a few shapes; on CUDA each
shape is one graph captured at start-up (`StepGraphs`). Prefill, the prefix cache and rendering
are `TorchRunner`'s, as for the dynamic-shape runner.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch

from ..diffusion import DiffusionSettings
from ..errors import GenerationError, ModelLoadError
from ..models import DiffusionGemmaBackend
from ..models.kv import KVSnapshot
from .cuda_graphs import StepGraphs
from .prefix_cache import PrefixCache
from .request import Request
from .runner import TorchRunner
from .slots import SlotState
from .ladder import batch_sizes, ladder
from .static_step import StaticStep, StepInputs, StepOutputs

__all__ = ["StaticRunner"]

log = logging.getLogger("npc_engine.engine")

_SMALLEST_LENGTH_BUCKET = 64


class StaticRunner(TorchRunner):
    def __init__(self, backend: DiffusionGemmaBackend, settings: DiffusionSettings,
                 prefix_cache: PrefixCache[KVSnapshot], *, prefill_chunk_tokens: int, num_slots: int,
                 pads_batches: bool | None = None, uses_graphs: bool | None = None, compiles: bool = False) -> None:
        """`pads_batches` and `uses_graphs` default to whether the model is on CUDA; `compiles`
        runs the step through torch.compile (compiled here, at start-up). Raises
        torch.OutOfMemoryError when the slots do not fit (the caller falls back)."""
        super().__init__(backend, settings, prefix_cache, prefill_chunk_tokens=prefill_chunk_tokens)
        forward = backend.fast
        if forward is None:
            raise GenerationError("the static runner needs the fast forward")
        is_cuda = backend.device.type == "cuda"
        max_cached_tokens = int(backend.max_position_embeddings) - self.canvas_length
        window = forward.sliding_window - 1  # what transformers' sliding cache keeps
        layers = forward.decoder_layers
        self.slots = SlotState(
            num_slots=num_slots, max_cached_tokens=max_cached_tokens,
            layer_widths=[min(window, max_cached_tokens) if layer.is_sliding else max_cached_tokens for layer in layers],
            num_kv_heads=[layer.num_kv_heads for layer in layers], head_dims=[layer.head_dim for layer in layers],
            canvas_length=self.canvas_length, vocab_size=self.vocab_size,
            stability_threshold=settings.stability_threshold, dtype=backend.dtype,
            logits_dtype=self._embeddings_dtype, device=backend.device)
        self.pads_batches = is_cuda if pads_batches is None else pads_batches
        self.batch_buckets = batch_sizes(num_slots)
        self.length_buckets = ladder(max_cached_tokens, min(_SMALLEST_LENGTH_BUCKET, max_cached_tokens))
        self.static_step = StaticStep(forward, self.slots, settings, self._temperatures)
        self._step: Callable[[StepInputs, int], StepOutputs] = self.static_step
        self.is_compiled = False
        self._slot_of: dict[str, int] = {}
        self.graphs: StepGraphs | None = None
        if compiles:
            self._compile(is_strict=backend.strict)
        if is_cuda if uses_graphs is None else uses_graphs:
            self._capture_graphs(is_strict=backend.strict)

    @property
    def name(self) -> str:
        """"compiled" only while the step really runs through torch.compile (a failed compile
        leaves the eager step: "static")."""
        return "compiled" if self.is_compiled else "static"

    def _compile(self, *, is_strict: bool) -> None:
        """torch.compile the step with dynamic shapes, and run it once per graph it needs (a batch
        of one is its own: sizes 0 and 1 are specialised; every larger batch and cached length
        shares the other), so no compile lands in a frame. Dense experts: the routed form's
        data-dependent shapes do not trace."""
        forward = self.static_step.forward
        was_dense, forward.is_dense_experts = forward.is_dense_experts, True
        compiled = torch.compile(self.static_step, fullgraph=True, dynamic=True)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                for batch_size in sorted({1, min(2, self.slots.num_slots)}):
                    compiled(StepInputs.empty(batch_size, self.canvas_length, self.slots.scratch, self.backend.device),
                             self.length_buckets[0])
        except Exception as exc:  # a compiler missing or failing: any error of torch's stack
            forward.is_dense_experts = was_dense
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # torch's can run to pages
            if is_strict:
                raise ModelLoadError(f"torch.compile of the step failed: {reason}", path=self.backend.path) from exc
            log.warning("torch.compile of the step failed (%s); the step runs eagerly", reason)
            return
        self._step, self.is_compiled = compiled, True
        log.info("compiled the step with torch.compile in %.1f s", time.perf_counter() - started)

    def _capture_graphs(self, *, is_strict: bool) -> None:
        graphs = StepGraphs(self._step, self.slots, self.canvas_length, self.backend.device)
        try:
            with torch.inference_mode():
                for batch_size in self.batch_buckets:
                    for num_keys in self.length_buckets:
                        graphs.capture(batch_size, num_keys)
        except GenerationError as exc:
            if is_strict:
                raise ModelLoadError(f"CUDA graphs: {exc}", path=self.backend.path) from exc
            log.warning("CUDA graphs are off (%s); the static step runs eagerly", exc)
            return
        self.graphs = graphs
        log.info("captured %d CUDA graphs of the step (batch buckets %s, cached-length buckets %s)",
                 len(self.batch_buckets) * len(self.length_buckets), self.batch_buckets, self.length_buckets)

    # -- slots --------------------------------------------------------------------------------

    def _join(self, request: Request) -> None:
        slot = self.slots.open(request.cache, request.num_encoded, request.canvas,
                               self.block_logit_bias_on_device(request))
        self._slot_of[request.request_id] = slot
        if not request.has_blocks_left:  # else the next block's encode extends it, then rejoins
            request.cache = None  # the slot holds it now (a cached prefix keeps its own snapshot)
        request.canvas = self.slots.canvas[slot]  # views: they follow the slot from here on
        request.argmax_canvas = self.slots.argmax_canvas[slot]
        request.self_conditioning_logits = self.slots.logits[slot]  # read (by rendering) after a step

    def _leave_block(self, request: Request) -> None:
        slot = self._slot_of.pop(request.request_id, None)
        if slot is not None:
            self.slots.close(slot)

    def release(self, request: Request) -> None:
        self._leave_block(request)
        request.release()

    @staticmethod
    def _bucket(buckets: list[int], size: int) -> int:
        return next(b for b in buckets if b >= size)

    # -- one step -----------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self, requests: list[Request]) -> list[bool]:
        """One decoder forward and sampler update for `requests`; True where a canvas is done."""
        for request in requests:
            if request.request_id not in self._slot_of:
                self._join(request)
        num_rows, longest = len(requests), max(r.num_encoded for r in requests)
        if (self.pads_batches and not self.is_compiled) or self.graphs is not None:
            batch_size, num_keys = self._bucket(self.batch_buckets, num_rows), self._bucket(self.length_buckets, longest)
        else:  # exact shapes: without graphs (compiled: dynamic shapes), padding only adds work
            batch_size, num_keys = num_rows, longest
        draws = [r.generator.step_draws(self.canvas_length, self.vocab_size) for r in requests]
        inputs = self._step_inputs(batch_size, requests, draws)
        if self.graphs is not None:
            outputs = self.graphs.replay(batch_size, num_keys)
        else:
            outputs = self._step(inputs, num_keys)
        is_done = outputs.is_done[:num_rows].tolist()
        for row, request in enumerate(requests):
            request.num_steps += 1
            request.num_steps_left -= 1
            is_done[row] = bool(is_done[row]) or request.num_steps_left == 0
        self._after_step(requests, np.stack([t for _, t in draws]))
        return is_done

    def _step_inputs(self, batch_size: int, requests: list[Request],
                     draws: list[tuple[np.ndarray, np.ndarray]]) -> StepInputs:
        """The step's inputs for `requests` (their `draws`), padded to `batch_size` with the
        scratch slot; with graphs, written into the bucket's captured input tensors."""
        num_pad = batch_size - len(requests)
        uniform, renoise = (np.stack(rows) for rows in zip(*draws))
        if num_pad:
            uniform, renoise = (np.pad(rows, ((0, num_pad), (0, 0))) for rows in (uniform, renoise))
        device = self.backend.device
        fresh = StepInputs(
            torch.tensor([self._slot_of[r.request_id] for r in requests] + [self.slots.scratch] * num_pad,
                         device=device),
            torch.tensor([r.num_steps_left - 1 for r in requests] + [0] * num_pad, device=device),
            torch.from_numpy(uniform).to(device), torch.from_numpy(renoise).to(device))
        if self.graphs is None:
            return fresh
        captured = self.graphs.inputs_for(batch_size)
        for target, source in ((captured.slot_index, fresh.slot_index),
                               (captured.temperature_index, fresh.temperature_index),
                               (captured.uniform, fresh.uniform), (captured.renoise, fresh.renoise)):
            target.copy_(source)
        return captured

    def forget_batch(self) -> None:
        """Nothing is stacked: every step reads the slots."""

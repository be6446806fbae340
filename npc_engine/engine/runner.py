"""The PyTorch runners' shared part (`TorchRunner`) and the dynamic-shape one (`ModelRunner`).

Each request owns its encoder cache (a batch of one) and its row state. A decoder step stacks
the scheduled rows into one forward, with per-row positions, per-row temperatures and per-row
random generators, so a request's output does not depend on who shares its batch. The stacked
cache and masks are kept while the batch's membership stays the same (the usual case between
two steps), and rebuilt when a request joins or leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion import DiffusionSettings
from ..diffusion.sampler import sample_with_draws
from ..diffusion.stability import stable_and_confident, stack_histories
from ..models import DiffusionGemmaBackend
from ..models.kv import KVSnapshot, cache_length, merge_caches
from .prefix_cache import PrefixCache
from .request import Request, RequestStatus
from .runner_base import RunnerBase

__all__ = ["ModelRunner", "TorchRunner"]


@dataclass
class _ResidentBatch:
    """Stacked inputs of the last step, reused while the same requests step together."""

    request_ids: tuple[str, ...]
    cache: Any
    masks: dict
    position_ids: torch.Tensor
    logit_bias: torch.Tensor
    canvas: torch.Tensor
    self_conditioning_logits: torch.Tensor | None
    stability_history: torch.Tensor | None


class TorchRunner(RunnerBase):
    """What both PyTorch runners share: row state as torch tensors on the model's device, the
    canvas a block opens with, pattern writes, rendering. How a step's rows are held is each
    one's own (stacked per batch here in `ModelRunner`, gathered from slots in `StaticRunner`)."""

    def __init__(self, backend: DiffusionGemmaBackend, settings: DiffusionSettings,
                 prefix_cache: PrefixCache[KVSnapshot], *, prefill_chunk_tokens: int) -> None:
        super().__init__(backend, settings, prefix_cache, prefill_chunk_tokens=prefill_chunk_tokens)
        self._temperatures = torch.from_numpy(settings.temperatures()).to(backend.device)
        self._embeddings_dtype = backend.model.model.decoder.embed_tokens.weight.dtype

    @torch.inference_mode()
    def prefill(self, request: Request) -> int:
        return super().prefill(request)

    def _open_canvas(self, request: Request) -> None:
        device = self.backend.device
        canvas = torch.from_numpy(request.generator.tokens(self.canvas_length, self.vocab_size)).to(device)
        clamp_ids = self.block_clamp_ids_on_device(request)
        request.canvas = request.argmax_canvas = torch.where(clamp_ids >= 0, clamp_ids, canvas)
        request.num_steps_left = self.settings.max_denoising_steps
        request.status = RequestStatus.RUNNING

    def block_clamp_ids_on_device(self, request: Request) -> torch.Tensor:
        """`block_clamp_ids` on the model's device: a view of the plan's copy where nothing is held."""
        if request.next_pads is not None:
            return torch.from_numpy(self.block_clamp_ids(request)).to(self.backend.device)
        plan = request.plan
        return plan.constraint(self.backend.device).clamp_ids[plan.block(request.block_index)]

    def block_logit_bias_on_device(self, request: Request) -> torch.Tensor:
        """The live block's logit bias (L, V) on the model's device: a view of the plan's copy,
        or a fresh one where a line that ended earlier holds positions to pad."""
        plan = request.plan
        bias = plan.constraint(self.backend.device).logit_bias[plan.block(request.block_index)]
        if request.next_pads is None:
            return bias
        return self._hold_pads(bias.clone(), request)

    @staticmethod
    def _host_ids(row: torch.Tensor) -> np.ndarray:
        return row.cpu().numpy()

    def _write_span(self, request: Request, span: slice, tokens: np.ndarray, renoise: np.ndarray) -> None:
        device = request.argmax_canvas.device
        constrained = torch.from_numpy(tokens).to(device)
        request.argmax_canvas[span] = constrained
        canvas = request.canvas[span]
        canvas.copy_(torch.where(canvas == torch.from_numpy(renoise).to(device), canvas, constrained))

    @torch.inference_mode()
    def render(self, request: Request) -> dict[str, Any]:
        return super().render(request)


class ModelRunner(TorchRunner):
    """The dynamic-shape PyTorch runner: a batch's rows stacked into one forward."""

    def __init__(self, backend: DiffusionGemmaBackend, settings: DiffusionSettings,
                 prefix_cache: PrefixCache[KVSnapshot], *, prefill_chunk_tokens: int) -> None:
        super().__init__(backend, settings, prefix_cache, prefill_chunk_tokens=prefill_chunk_tokens)
        self._resident: _ResidentBatch | None = None

    @property
    def name(self) -> str:
        """What runs: "fast" (our own forward) or "general" (transformers')."""
        return "general" if self.backend.fast is None else "fast"

    # -- one denoising step -----------------------------------------------------------------

    def _stack(self, requests: list[Request]) -> _ResidentBatch:
        resident = self._resident
        request_ids = tuple(r.request_id for r in requests)
        if resident is not None and resident.request_ids == request_ids:
            return resident
        device = self.backend.device
        cache, padding_mask = merge_caches(self.backend.new_cache(), [r.cache for r in requests])
        canvas = torch.stack([r.canvas for r in requests])
        decoder_attention_mask = F.pad(padding_mask, (0, self.canvas_length), value=True)
        lengths = torch.tensor([cache_length(r.cache) for r in requests], dtype=torch.int32, device=device)
        offsets = torch.arange(self.canvas_length, dtype=torch.int32, device=device)
        history = stack_histories([r.stability_history for r in requests], self.settings.stability_threshold,
                                  requests[0].argmax_canvas)
        self._resident = _ResidentBatch(
            request_ids=request_ids,
            cache=cache,
            masks=self.backend.decoder_masks(canvas, cache, decoder_attention_mask),
            position_ids=lengths[:, None] + offsets[None, :],
            logit_bias=torch.stack([self.block_logit_bias_on_device(r) for r in requests]),
            canvas=canvas,
            self_conditioning_logits=self._stack_logits(requests),
            stability_history=history,
        )
        return self._resident

    def _stack_logits(self, requests: list[Request]) -> torch.Tensor | None:
        rows = [r.self_conditioning_logits for r in requests]
        if all(row is None for row in rows):
            return None
        zeros = torch.zeros((self.canvas_length, self.vocab_size), dtype=self._embeddings_dtype,
                            device=self.backend.device)
        return torch.stack([zeros if row is None else row for row in rows])

    @torch.inference_mode()
    def step(self, requests: list[Request]) -> list[bool]:
        """One decoder forward and sampler update for `requests`; True where a canvas is done."""
        settings = self.settings
        batch = self._stack(requests)
        device = self.backend.device
        has_signal = None
        if any(r.self_conditioning_logits is None for r in requests) and batch.self_conditioning_logits is not None:
            has_signal = torch.tensor([r.self_conditioning_logits is not None for r in requests], device=device)
        logits = self.backend.denoise(batch.canvas, batch.self_conditioning_logits, batch.cache,
                                      batch.masks, batch.position_ids, has_signal)
        temperature_index = torch.tensor([r.num_steps_left - 1 for r in requests], device=device)
        draws = [r.generator.step_draws(self.canvas_length, self.vocab_size) for r in requests]
        uniform = torch.from_numpy(np.stack([u for u, _ in draws])).to(device)
        renoise = torch.from_numpy(np.stack([t for _, t in draws])).to(device)
        canvas, argmax_canvas, mean_entropy, logits = sample_with_draws(
            logits, batch.logit_bias, self._temperatures[temperature_index], uniform, renoise,
            settings.entropy_bound)
        is_done, history = stable_and_confident(argmax_canvas, mean_entropy, batch.stability_history,
                                                settings.stability_threshold, settings.confidence_threshold)
        sc_logits = logits.to(self._embeddings_dtype)

        batch.canvas, batch.self_conditioning_logits, batch.stability_history = canvas, sc_logits, history
        is_done = self._advance_rows(requests, is_done.tolist(), canvas, argmax_canvas, sc_logits, history)
        self._after_step(requests, np.stack([t for _, t in draws]))
        return is_done

    def forget_batch(self) -> None:
        self._resident = None

"""The only code that touches a batch's tensors: prefill chunks, one batched denoising step, render.

Each request owns its encoder cache (a batch of one) and its row state. A decoder step stacks
the scheduled rows into one forward, with per-row positions, per-row temperatures and per-row
random generators, so a request's output does not depend on who shares its batch. The stacked
cache and masks are kept while the batch's membership stays the same (the usual case between
two steps), and rebuilt when a request joins or leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..diffusion import DiffusionSettings, RowNoise
from ..diffusion.sampler import (
    MASKED_LOGIT,
    sample_accept_renoise,
    stable_and_confident,
    temperature_schedule,
)
from ..models import DiffusionGemmaBackend
from ..models.kv import KVSnapshot, cache_length, merge_caches, restore_cache, snapshot_cache
from ..templates import render
from .prefix_cache import PrefixCache
from .request import Request, RequestStatus

__all__ = ["ModelRunner"]


@dataclass
class _ResidentBatch:
    """Stacked inputs of the last step, reused while the same requests step together."""

    request_ids: tuple[str, ...]
    cache: Any
    masks: dict
    position_ids: torch.Tensor
    disallowed_tokens: torch.Tensor
    canvas: torch.Tensor
    self_conditioning_logits: torch.Tensor | None
    stability_history: torch.Tensor | None


class ModelRunner:
    def __init__(self, backend: DiffusionGemmaBackend, settings: DiffusionSettings,
                 prefix_cache: PrefixCache[KVSnapshot], *, prefill_chunk_tokens: int) -> None:
        self.backend = backend
        self.settings = settings
        self.prefix_cache = prefix_cache
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.canvas_length = backend.canvas_length
        self.vocab_size = backend.vocab_size
        schedule = temperature_schedule(settings.t_min, settings.t_max, settings.max_denoising_steps)
        self._temperatures = torch.stack([schedule[n] for n in range(1, settings.max_denoising_steps + 1)])
        self._temperatures = self._temperatures.to(backend.device)
        self._embeddings_dtype = backend.model.model.decoder.embed_tokens.weight.dtype
        self._resident: _ResidentBatch | None = None

    # -- prefill --------------------------------------------------------------------------

    def next_chunk_tokens(self, request: Request) -> int:
        """Tokens the next prefill of `request` will encode (after a prefix-cache hit, if any)."""
        num_encoded = request.num_encoded
        if num_encoded == 0 and request.prefix_ids and request.prefix_ids in self.prefix_cache:
            num_encoded = len(request.prefix_ids)
        start, end = request.next_chunk(self.prefill_chunk_tokens, num_encoded)
        return end - start

    @torch.inference_mode()
    def prefill(self, request: Request) -> int:
        """Encode the request's next prompt chunk (restoring a cached prefix first). Returns the
        number of tokens encoded; opens the canvas once the whole prompt is in the cache."""
        backend = self.backend
        if request.cache is None:
            request.cache = backend.new_cache()
            request.status = RequestStatus.PREFILLING
            if request.prefix_ids and self.prefix_cache.capacity_bytes > 0:
                snapshot = self.prefix_cache.get(request.prefix_ids)
                if snapshot is not None:
                    request.cache = restore_cache(backend.new_cache(), snapshot)
                    request.num_encoded = request.num_cached_prompt_tokens = len(request.prefix_ids)
        num_tokens = 0
        if request.num_prompt_tokens_left > 0:
            start, end = request.next_chunk(self.prefill_chunk_tokens)
            device = backend.device
            ids = torch.tensor([request.prompt_ids[start:end]], dtype=torch.long, device=device)
            attention_mask = torch.ones((1, end), dtype=torch.bool, device=device)
            positions = torch.arange(start, end, dtype=torch.int32, device=device).unsqueeze(0)
            backend.encode(ids, attention_mask, request.cache, positions)
            request.num_encoded = end
            num_tokens = end - start
            if end == len(request.prefix_ids) and self.prefix_cache.capacity_bytes > 0:
                snapshot = snapshot_cache(request.cache)
                self.prefix_cache.put(request.prefix_ids, snapshot, snapshot.num_bytes)
        if request.num_prompt_tokens_left == 0:
            self._open_canvas(request)
        return num_tokens

    def _open_canvas(self, request: Request) -> None:
        device = self.backend.device
        canvas = torch.randint(0, self.vocab_size, (1, self.canvas_length), device=device,
                               generator=request.generator)[0]
        clamp_ids = request.plan.constraint(device).clamp_ids
        request.canvas = request.argmax_canvas = torch.where(clamp_ids >= 0, clamp_ids, canvas)
        request.num_steps_left = self.settings.max_denoising_steps
        request.status = RequestStatus.RUNNING

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
        histories = [r.stability_history for r in requests]
        history = None
        if self.settings.stability_threshold > 0 and any(h is not None for h in histories):
            empty = torch.full((self.settings.stability_threshold, self.canvas_length), -1,
                               dtype=torch.long, device=device)
            history = torch.stack([empty if h is None else h for h in histories], dim=1)
        self._resident = _ResidentBatch(
            request_ids=request_ids,
            cache=cache,
            masks=self.backend.decoder_masks(canvas, cache, decoder_attention_mask),
            position_ids=lengths[:, None] + offsets[None, :],
            disallowed_tokens=torch.stack([r.plan.constraint(device).disallowed_tokens for r in requests]),
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
        logits.masked_fill_(batch.disallowed_tokens, MASKED_LOGIT)
        temperature_index = torch.tensor([r.num_steps_left - 1 for r in requests], device=device)
        logits.div_(self._temperatures[temperature_index][:, None, None])

        noise = RowNoise([r.generator for r in requests])
        canvas, argmax_canvas, entropy = sample_accept_renoise(logits, batch.canvas, noise,
                                                               settings.entropy_bound)
        is_done, history = stable_and_confident(argmax_canvas, entropy, batch.stability_history,
                                                settings.stability_threshold, settings.confidence_threshold)
        sc_logits = logits.to(self._embeddings_dtype)

        batch.canvas, batch.self_conditioning_logits, batch.stability_history = canvas, sc_logits, history
        is_done_rows = is_done.tolist()
        for row, request in enumerate(requests):
            request.canvas = canvas[row]
            request.argmax_canvas = argmax_canvas[row]
            request.self_conditioning_logits = sc_logits[row]
            request.stability_history = None if history is None else history[:, row]
            request.num_steps += 1
            request.num_steps_left -= 1
            is_done_rows[row] = bool(is_done_rows[row]) or request.num_steps_left == 0
        return is_done_rows

    def forget_batch(self) -> None:
        """Drop the stacked batch (its membership changed, or the engine is idle)."""
        self._resident = None

    # -- output ----------------------------------------------------------------------------

    @torch.inference_mode()
    def render(self, request: Request) -> dict[str, Any]:
        """The template's fields from the request's argmax canvas (valid after any step >= 1)."""
        return render(request.plan, request.argmax_canvas, request.self_conditioning_logits,
                      self.backend.tokenizer)

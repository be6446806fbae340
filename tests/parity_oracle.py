"""The generate-parity oracle: DiffusionGemma's `generate`, taken apart one step at a time.

Tests only. The engine's runners are the step implementations (one per backend, sharing
`npc_engine.diffusion.sampler`); this loop is the bridge between that sampler and
`model.generate`: the tests prove it token-for-token equal to `generate`, and the sampler it
uses is the one the runners use.


`BlockDiffusion.start()` prefills the prompt and opens the first canvas; each `step()` runs one
decoder forward and the sampler; `end_canvas()` appends the finished canvas, checks EOS / length,
and opens the next canvas (block-autoregressive continuation). `run()` chains them and is
token-for-token equal to `model.generate` for the same seed and settings (tests prove it).

All state lives in a `DiffusionBatch`, so a caller can stop between any two steps, look at the
argmax canvas (a valid draft at any time), and resume later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from npc_engine.diffusion.constraint import CanvasConstraint, stack_constraints
from npc_engine.diffusion.stability import stable_and_confident
from npc_engine.diffusion.sampler import (
    MASKED_LOGIT,
    BatchNoise,
    NoiseSource,
    sample_accept_renoise,
    temperature_schedule,
)
from npc_engine.diffusion.settings import DiffusionSettings
from npc_engine.models.backend import DiffusionGemmaBackend

__all__ = ["BlockDiffusion", "DiffusionBatch", "DiffusionOutput"]


@dataclass
class DiffusionBatch:
    """The resumable state of a batch of generations (one row per prompt)."""

    sequences: torch.Tensor           # (B, prompt + finished canvases)
    attention_mask: torch.Tensor      # (B, cur_len) bool, over everything encoded so far
    cache: object                     # the encoder KV cache (transformers Cache)
    cur_len: int
    max_length: int
    num_canvases_left: int
    noise: NoiseSource
    # per canvas
    canvas: torch.Tensor = None               # (B, L) current noisy canvas
    argmax_canvas: torch.Tensor = None        # (B, L) best guess so far (the draft)
    self_conditioning_logits: torch.Tensor | None = None
    decoder_masks: dict = None
    decoder_attention_mask: torch.Tensor = None
    decoder_position_ids: torch.Tensor = None
    is_denoised: torch.Tensor = None          # (B,) canvas finished denoising
    stability_history: torch.Tensor | None = None
    num_steps_left: int = 0
    # whole generation
    is_finished: torch.Tensor = None          # (B,) sequence done (EOS or length)
    num_forwards: torch.Tensor = None         # (B,) decoder forwards that counted for each row
    num_steps: int = 0
    constraint: CanvasConstraint | None = field(default=None, repr=False)  # current canvas, batched

    @property
    def batch_size(self) -> int:
        return self.sequences.shape[0]

    @property
    def is_canvas_done(self) -> bool:
        return self.num_steps_left == 0 or bool(self.is_denoised.all())

    @property
    def is_done(self) -> bool:
        return bool(self.is_finished.all()) or self.num_canvases_left == 0


@dataclass(frozen=True)
class DiffusionOutput:
    sequences: torch.Tensor         # (B, prompt + generated), pads after EOS like `generate`
    tokens_per_forward: torch.Tensor
    num_steps: int
    last_logits: torch.Tensor | None  # processed logits of the final step of the last canvas


class BlockDiffusion:
    """Drives DiffusionGemma's block-diffusion sampler step by step over a batch."""

    def __init__(self, backend: DiffusionGemmaBackend, settings: DiffusionSettings, *,
                 is_exact: bool = False) -> None:
        """`is_exact=True` computes entropies with the very operations `generate` uses (bitwise
        parity); the default reuses the step's softmax, equal up to float rounding and cheaper."""
        self.backend = backend
        self.settings = settings
        self.is_exact = is_exact
        self.canvas_length = backend.canvas_length
        self.vocab_size = backend.vocab_size
        self._temperatures = temperature_schedule(settings.t_min, settings.t_max,
                                                  settings.max_denoising_steps)
        self._embeddings_dtype = backend.model.model.decoder.embed_tokens.weight.dtype

    # -- lifecycle --------------------------------------------------------------------------

    @torch.inference_mode()
    def start(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        max_new_tokens: int | None = None,
        noise: NoiseSource | None = None,
        constraints: list[CanvasConstraint | None] | None = None,
    ) -> DiffusionBatch:
        """Prefill `input_ids` (left-padded, with `attention_mask`) and open the first canvas.

        `constraints` apply to the first canvas only (a template is one canvas).
        """
        device = self.backend.device
        input_ids = input_ids.to(device)
        batch_size, cur_len = input_ids.shape
        max_new_tokens = max_new_tokens or self.canvas_length
        if attention_mask is None:
            attention_mask = torch.ones((batch_size, cur_len), dtype=torch.bool, device=device)
        attention_mask = attention_mask.to(device).bool()
        batch = DiffusionBatch(
            sequences=input_ids,
            attention_mask=attention_mask,
            cache=self.backend.new_cache(),
            cur_len=cur_len,
            max_length=cur_len + max_new_tokens,
            num_canvases_left=math.ceil(max_new_tokens / self.canvas_length),
            noise=noise or BatchNoise(),
            is_finished=torch.zeros(batch_size, dtype=torch.bool, device=device),
            num_forwards=torch.zeros(batch_size, dtype=torch.int, device=device),
        )
        batch.constraint = stack_constraints(constraints or [None] * batch_size, self.canvas_length,
                                             self.vocab_size, device)
        encoder_position_ids = torch.arange(0, cur_len, dtype=torch.int32, device=device).unsqueeze(0)
        batch.decoder_position_ids = torch.arange(cur_len, cur_len + self.canvas_length,
                                                  dtype=torch.int32, device=device).unsqueeze(0)
        batch.decoder_attention_mask = F.pad(attention_mask, (0, self.canvas_length), value=True)
        self.backend.encode(input_ids, attention_mask, batch.cache, encoder_position_ids)
        self._open_canvas(batch)
        return batch

    def _open_canvas(self, batch: DiffusionBatch) -> None:
        canvas = batch.noise.random_tokens(batch.batch_size, self.canvas_length, self.vocab_size,
                                           self.backend.device)
        if batch.constraint is not None:
            clamp_ids = batch.constraint.clamp_ids
            canvas = torch.where(clamp_ids >= 0, clamp_ids, canvas)
        batch.canvas = canvas
        batch.argmax_canvas = canvas
        batch.self_conditioning_logits = None
        batch.decoder_masks = self.backend.decoder_masks(canvas, batch.cache, batch.decoder_attention_mask)
        batch.is_denoised = torch.zeros(batch.batch_size, dtype=torch.bool, device=canvas.device)
        batch.stability_history = None
        batch.num_steps_left = self.settings.max_denoising_steps

    @torch.inference_mode()
    def step(self, batch: DiffusionBatch) -> None:
        """One denoising step: decoder forward, sample, accept, renoise, check stopping."""
        settings = self.settings
        batch.num_forwards += ~(batch.is_denoised | batch.is_finished)
        logits = self.backend.denoise(batch.canvas, batch.self_conditioning_logits, batch.cache,
                                      batch.decoder_masks, batch.decoder_position_ids)
        if batch.constraint is not None:
            logits.masked_fill_(batch.constraint.disallowed_tokens, MASKED_LOGIT)
        logits.div_(self._temperatures[batch.num_steps_left])  # fresh tensor from the forward

        canvas, argmax_canvas, entropy = sample_accept_renoise(
            logits, batch.canvas, batch.noise, settings.entropy_bound, is_exact=self.is_exact)

        if batch.is_denoised.any():
            # Rows that already stopped keep their canvas; they only ride along in the batch.
            keep = batch.is_denoised[:, None]
            argmax_canvas = torch.where(keep, batch.argmax_canvas, argmax_canvas)
            canvas = torch.where(keep, batch.canvas, canvas)
            logits = torch.where(keep[..., None], batch.self_conditioning_logits, logits)
        is_done, batch.stability_history = stable_and_confident(
            argmax_canvas, entropy.mean(dim=-1), batch.stability_history,
            settings.stability_threshold, settings.confidence_threshold,
        )
        batch.is_denoised |= is_done
        batch.canvas = canvas
        batch.argmax_canvas = argmax_canvas
        batch.self_conditioning_logits = logits.to(self._embeddings_dtype)
        batch.num_steps_left -= 1
        batch.num_steps += 1

    @torch.inference_mode()
    def end_canvas(self, batch: DiffusionBatch) -> None:
        """Append the denoised canvas; mark EOS/length; open the next canvas if any row needs one."""
        length = self.canvas_length
        batch.sequences = torch.cat([batch.sequences, batch.argmax_canvas], dim=-1)
        batch.num_canvases_left -= 1
        eos_ids = self.backend.eos_token_ids
        is_finished_now = torch.full_like(batch.is_finished, batch.sequences.shape[1] >= batch.max_length)
        eos = torch.tensor(eos_ids, device=batch.sequences.device) if eos_ids else None
        if eos is not None:
            is_finished_now |= torch.isin(batch.sequences[:, -length:], eos).any(dim=-1)
        was_finished = batch.is_finished
        batch.is_finished = was_finished | is_finished_now
        if batch.is_finished.any():
            # As `generate`: rows finished earlier get pads; rows finishing now get pads after EOS.
            pad = self.backend.pad_token_id
            batch.sequences[was_finished, -length:] = pad
            if eos is not None and is_finished_now.any():
                new_tokens = batch.sequences[:, -length:]
                is_eos = torch.isin(new_tokens, eos)
                eos_count = is_eos.cumsum(dim=-1)
                new_tokens[(eos_count > 0) & ~((eos_count == 1) & is_eos)] = pad
        if batch.is_done:
            return
        # Block-autoregressive continuation: encode the finished canvas, then denoise the next.
        batch.cur_len += length
        batch.decoder_attention_mask = F.pad(batch.decoder_attention_mask, (0, length), value=True)
        batch.attention_mask = F.pad(batch.attention_mask, (0, length), value=True)
        encoder_position_ids = batch.decoder_position_ids
        batch.decoder_position_ids = torch.arange(batch.cur_len, batch.cur_len + length,
                                                  dtype=torch.int32,
                                                  device=encoder_position_ids.device).unsqueeze(0)
        self.backend.encode(batch.sequences[:, -length:], batch.attention_mask, batch.cache,
                            encoder_position_ids)
        batch.constraint = None
        self._open_canvas(batch)

    @torch.inference_mode()
    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        max_new_tokens: int | None = None,
        noise: NoiseSource | None = None,
        constraints: list[CanvasConstraint | None] | None = None,
    ) -> DiffusionOutput:
        """The whole generation; equal to `model.generate` for the same seed and settings."""
        num_prompt_tokens = input_ids.shape[1]
        batch = self.start(input_ids, attention_mask, max_new_tokens=max_new_tokens, noise=noise,
                           constraints=constraints)
        while True:
            while not batch.is_canvas_done:
                self.step(batch)
            last_logits = batch.self_conditioning_logits
            self.end_canvas(batch)
            if batch.is_done:
                break
        new_tokens = batch.sequences[:, num_prompt_tokens:]
        num_valid = (new_tokens != self.backend.pad_token_id).sum(dim=-1)
        return DiffusionOutput(
            sequences=batch.sequences,
            tokens_per_forward=num_valid / batch.num_forwards,
            num_steps=batch.num_steps,
            last_logits=last_logits,
        )

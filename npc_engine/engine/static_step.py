"""One denoising step over slot state, in static shapes: what a CUDA graph captures.

Everything a step reads comes from a `StepInputs` of the batch bucket's size (slot indices,
temperature indices, the host's random draws) or from the `SlotState`; everything it changes is
written back into the slots. No host sync, no data-dependent shape, no Python state: replaying a
captured step with new slot indices is the same as calling it. The cached-length bucket
`num_keys` fixes how much of each slot's width is read (a layer reads min(its width, num_keys)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion import DiffusionSettings
from ..diffusion.sampler import sample_with_draws
from ..diffusion.stability import stable_and_confident
from ..models.fast_forward import FastForward, additive_mask
from .slots import SlotState

__all__ = ["StepInputs", "StepOutputs", "StaticStep"]


@dataclass(frozen=True)
class StepInputs:
    slot_index: torch.Tensor         # (B,) long: the slot of each row (the scratch slot pads)
    temperature_index: torch.Tensor  # (B,) long: steps left - 1, into the schedule
    uniform: torch.Tensor            # (B, L) float32: inverse-CDF draws
    renoise: torch.Tensor            # (B, L) long: tokens for the positions not accepted

    @classmethod
    def empty(cls, batch_size: int, canvas_length: int, scratch: int, device: torch.device) -> "StepInputs":
        return cls(torch.full((batch_size,), scratch, dtype=torch.long, device=device),
                   torch.zeros(batch_size, dtype=torch.long, device=device),
                   torch.zeros((batch_size, canvas_length), dtype=torch.float32, device=device),
                   torch.zeros((batch_size, canvas_length), dtype=torch.long, device=device))


@dataclass(frozen=True)
class StepOutputs:
    is_done: torch.Tensor            # (B,) bool: stable and confident
    canvas: torch.Tensor             # (B, L) long: the canvas after the step (graph capture checks it)


class StaticStep:
    def __init__(self, forward: FastForward, slots: SlotState, settings: DiffusionSettings,
                 temperatures: torch.Tensor) -> None:
        self.forward = forward
        self.slots = slots
        self.settings = settings
        self.temperatures = temperatures
        self.dtype = forward.decoder_embed.dtype

    def __call__(self, inputs: StepInputs, num_keys: int) -> StepOutputs:
        slots, settings, index = self.slots, self.settings, inputs.slot_index
        lengths = slots.lengths.index_select(0, index)
        canvas = slots.canvas.index_select(0, index)
        canvas_length = canvas.shape[1]
        keys, values, masks, by_capacity = [], [], [], {}
        canvas_keys = torch.ones(canvas.shape, dtype=torch.bool, device=canvas.device)
        for layer_keys, layer_values, capacity in zip(slots.keys, slots.values, slots.layer_widths):
            # sym_min: under torch.compile with dynamic shapes, no guard on which side is smaller
            width = torch.sym_min(capacity, num_keys)
            keys.append(layer_keys[:, :, :width].index_select(0, index))
            values.append(layer_values[:, :, :width].index_select(0, index))
            if capacity not in by_capacity:  # a layer's entries are its first min(length, width)
                is_real = torch.arange(width, device=canvas.device)[None, :] < lengths.clamp(max=width)[:, None]
                by_capacity[capacity] = additive_mask(torch.cat([is_real, canvas_keys], dim=1)[:, None, None, :],
                                                      self.dtype)
            masks.append(by_capacity[capacity])
        positions = lengths[:, None] + torch.arange(canvas_length, device=canvas.device)[None, :]
        logits = self.forward.denoise_prepared(
            canvas, slots.logits.index_select(0, index), keys, values, masks,
            self.forward.rotary(positions, self.dtype), slots.has_signal.index_select(0, index))
        canvas, argmax_canvas, mean_entropy, logits = sample_with_draws(
            logits, slots.logit_bias.index_select(0, index), self.temperatures[inputs.temperature_index],
            inputs.uniform, inputs.renoise, settings.entropy_bound)
        history = None if slots.history is None else slots.history.index_select(1, index)
        is_done, history = stable_and_confident(argmax_canvas, mean_entropy, history,
                                                settings.stability_threshold, settings.confidence_threshold)
        slots.canvas.index_copy_(0, index, canvas)
        slots.argmax_canvas.index_copy_(0, index, argmax_canvas)
        slots.logits.index_copy_(0, index, logits.to(slots.logits.dtype))
        slots.has_signal.index_fill_(0, index, True)
        if history is not None:
            slots.history.index_copy_(1, index, history)
        return StepOutputs(is_done, canvas)

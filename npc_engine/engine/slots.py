"""Preallocated per-slot state for the static runner: each running request owns one slot.

A slot holds the request's encoder KV cache (copied in once, when it first steps) and its row
state between steps (canvas, argmax canvas, self-conditioning logits, stability history, the
template's logit bias). A step gathers its rows by slot index and writes them back, so a request
joining or leaving a batch copies no cache and merges nothing: only the slot indices change.
Entries sit at the front of each slot's width (entry i of a full layer is position i; a sliding
layer keeps the last `sliding_window - 1` entries, as transformers' cache does); a step's masks
say which are real. One extra slot, `scratch`, takes the rows that pad a batch to its bucket.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import GenerationError

__all__ = ["SlotState"]


class SlotState:
    def __init__(self, *, num_slots: int, max_cached_tokens: int, layer_widths: list[int],
                 num_kv_heads: list[int], head_dims: list[int], canvas_length: int, vocab_size: int,
                 stability_threshold: int, dtype: torch.dtype, logits_dtype: torch.dtype,
                 device: torch.device) -> None:
        """`layer_widths`: per decoder layer, the most entries it caches (a full layer
        `max_cached_tokens`, a sliding one its window - 1)."""
        self.num_slots = num_slots
        self.scratch = num_slots
        self.max_cached_tokens = max_cached_tokens
        self.layer_widths = layer_widths
        rows = num_slots + 1
        self.keys = [torch.zeros((rows, h, w, d), dtype=dtype, device=device)
                     for w, h, d in zip(layer_widths, num_kv_heads, head_dims)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.lengths = torch.zeros(rows, dtype=torch.long, device=device)  # positions cached per slot
        self.canvas = torch.zeros((rows, canvas_length), dtype=torch.long, device=device)
        self.argmax_canvas = torch.zeros_like(self.canvas)
        self.logits = torch.zeros((rows, canvas_length, vocab_size), dtype=logits_dtype, device=device)
        self.has_signal = torch.zeros(rows, dtype=torch.bool, device=device)
        self.logit_bias = torch.zeros((rows, canvas_length, vocab_size), dtype=torch.float32, device=device)
        self.history = (torch.full((stability_threshold, rows, canvas_length), -1, dtype=torch.long, device=device)
                        if stability_threshold > 0 else None)
        self._free = list(range(num_slots))

    @property
    def num_free(self) -> int:
        return len(self._free)

    def open(self, cache: Any, num_tokens: int, canvas: torch.Tensor, logit_bias: torch.Tensor) -> int:
        """Take the lowest free slot for a request whose prompt is encoded: copy its cache in
        (a transformers `DynamicCache` of one row) and start its row state. Returns the slot."""
        if not self._free:
            raise GenerationError(f"all {self.num_slots} slots of the static runner are taken "
                              "(more running requests than max_batch_size)")
        if num_tokens > self.max_cached_tokens:
            raise GenerationError(f"a prompt of {num_tokens} tokens does not fit a slot of {self.max_cached_tokens}")
        slot = min(self._free)
        for index, layer in enumerate(cache.layers):
            count = layer.keys.shape[-2]
            if count > self.layer_widths[index]:
                raise GenerationError(f"layer {index} caches {count} entries, more than its slot width "
                                  f"{self.layer_widths[index]}")
            self.keys[index][slot, :, :count] = layer.keys[0]
            self.values[index][slot, :, :count] = layer.values[0]
        self._free.remove(slot)
        self.lengths[slot] = num_tokens
        self.canvas[slot] = canvas
        self.argmax_canvas[slot] = canvas
        self.logits[slot].zero_()
        self.has_signal[slot] = False
        self.logit_bias[slot] = logit_bias
        if self.history is not None:
            self.history[:, slot] = -1
        return slot

    def close(self, slot: int) -> None:
        if slot in self._free or not 0 <= slot < self.num_slots:
            raise GenerationError(f"slot {slot} is not in use")
        self._free.append(slot)

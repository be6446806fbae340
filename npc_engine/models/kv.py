"""Encoder KV caches as plain tensors: snapshot one, restore it, stack many into one batch.

A request encodes its prompt into its own cache (a batch of one). The decoder step of a batch
needs one cache for all rows, so `merge_caches` left-pads each row to the longest and returns
the 2D padding mask the decoder's mask builder expects. Sliding-window layers hold only the last
`sliding_window - 1` positions; left padding keeps every row right-aligned, so the same 2D mask
indexes both the full and the sliding layers correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer

__all__ = ["KVSnapshot", "cache_length", "merge_caches", "restore_cache", "snapshot_cache"]


@dataclass(frozen=True)
class KVSnapshot:
    """The tensors of a batch-of-one cache. Never mutated: caches that grow make new tensors."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    num_tokens: int

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def cache_length(cache: DynamicCache) -> int:
    return int(cache.get_seq_length())


def snapshot_cache(cache: DynamicCache) -> KVSnapshot:
    return KVSnapshot(tuple(layer.keys for layer in cache.layers),
                      tuple(layer.values for layer in cache.layers), cache_length(cache))


def _fill(cache: DynamicCache, keys: list[torch.Tensor], values: list[torch.Tensor], num_tokens: int) -> DynamicCache:
    for layer, k, v in zip(cache.layers, keys, values):
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
        if isinstance(layer, DynamicSlidingWindowLayer):
            layer.cumulative_length = num_tokens
    return cache


def restore_cache(empty: DynamicCache, snapshot: KVSnapshot) -> DynamicCache:
    """`empty` (a fresh cache for the model) holding the snapshot's tensors; encoding more tokens
    into it leaves the snapshot untouched (DynamicCache concatenates into new tensors)."""
    return _fill(empty, list(snapshot.keys), list(snapshot.values), snapshot.num_tokens)


def merge_caches(empty: DynamicCache, caches: list[DynamicCache]) -> tuple[DynamicCache, torch.Tensor]:
    """One cache for a batch of single-row caches, plus a (B, max_len) bool mask of real entries."""
    lengths = [cache_length(c) for c in caches]
    max_length = max(lengths)
    device = caches[0].layers[0].keys.device
    mask = torch.zeros((len(caches), max_length), dtype=torch.bool, device=device)
    for row, length in enumerate(lengths):
        mask[row, max_length - length:] = True
    keys, values = [], []
    for index in range(len(caches[0].layers)):
        row_keys = [c.layers[index].keys for c in caches]
        row_values = [c.layers[index].values for c in caches]
        width = max(k.shape[-2] for k in row_keys)
        keys.append(_stack_rows([_left_pad(k, width) for k in row_keys]))
        values.append(_stack_rows([_left_pad(v, width) for v in row_values]))
    return _fill(empty, keys, values, max_length), mask


def _stack_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    return rows[0] if len(rows) == 1 else torch.cat(rows)  # a lone row needs no copy


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - tensor.shape[-2]
    if missing == 0:
        return tensor
    pad = tensor.new_zeros((*tensor.shape[:-2], missing, tensor.shape[-1]))
    return torch.cat([pad, tensor], dim=-2)

"""The two graphs the ONNX backend runs, as torch modules built from a loaded DiffusionGemma.

- `EncoderGraph`: the causal encoder over a chunk of new tokens of one request, given its cached
  keys/values; returns the grown cache (full layers keep everything, sliding layers keep their
  last `sliding_window - 1` positions, as transformers' dynamic cache does).
- `DecoderStepGraph`: one denoising step for a batch: the decoder forward over the canvas
  (cross-attending to the stacked cache, self-conditioned on the previous step's logits) and the
  sampler after it (mask, temperature, sample by inverse CDF, entropy-bound acceptance, renoise).
  Random draws come in as inputs, so the graph is deterministic and the host owns the seeds.

Both call the checkpoint's own submodules, so weights and layer code are transformers'. Only the
plumbing around them is ours: masks are built from plain position arithmetic (as additive float
masks), the MoE loop runs over every expert (the reference loops over the experts that were hit,
which tracing would freeze into the graph), and RMSNorm is written in the form ONNX Runtime
fuses (see `exportable`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..diffusion.sampler import sample_with_draws

__all__ = ["DecoderStepGraph", "EncoderGraph", "exportable"]


class _Layer:
    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values


class _ReadOnlyCache:
    """What the decoder's attention reads: `layers[i].keys / .values`, never written."""

    is_compileable = False

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        self.layers = [_Layer(k, v) for k, v in zip(keys, values)]


class _GrowingCache:
    """What the encoder's attention writes through `update`: past + new, trimmed per layer."""

    is_compileable = False

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], keep: list[int | None]) -> None:
        self.keys, self.values, self.keep = list(keys), list(values), keep

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        keys = torch.cat([self.keys[layer_idx], key_states], dim=-2)
        values = torch.cat([self.values[layer_idx], value_states], dim=-2)
        keep = self.keep[layer_idx]
        self.keys[layer_idx] = keys if keep is None else keys[:, :, -keep:]
        self.values[layer_idx] = values if keep is None else values[:, :, -keep:]
        return keys, values


def sparse_experts(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                   top_k_weights: torch.Tensor) -> torch.Tensor:
    """transformers' expert loop over every expert instead of only those hit: the same sums, and
    a fixed graph (an expert no token chose runs on zero rows). The expert outputs are put back
    in (token, k) order with one gather, not a scatter-add per expert."""
    num_tokens, top_k = top_k_index.shape
    flat_experts = top_k_index.reshape(-1)
    flat_weights = top_k_weights.reshape(-1)
    pair_indices, outputs = [], []
    for expert in range(self.num_experts):
        pairs = torch.nonzero(flat_experts == expert).squeeze(-1)
        gate, up = nn.functional.linear(hidden_states[pairs // top_k], self.gate_up_proj[expert]).chunk(2, dim=-1)
        expert_out = nn.functional.linear(self.act_fn(gate) * up, self.down_proj[expert])
        outputs.append(expert_out * flat_weights[pairs, None].to(expert_out.dtype))
        pair_indices.append(pairs)
    in_pair_order = torch.cat(outputs)[torch.argsort(torch.cat(pair_indices))]
    return in_pair_order.view(num_tokens, top_k, -1).sum(dim=1).to(hidden_states.dtype)


def rms_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Gemma's RMSNorm as x / sqrt(mean(x^2) + eps): the form ONNX Runtime fuses into one kernel
    (transformers writes x * pow(., -0.5), equal up to rounding)."""
    hidden = hidden_states.float()
    normed = hidden / torch.sqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
    if self.with_scale:
        normed = normed * self.weight.float()
    return normed.type_as(hidden_states)


@contextmanager
def exportable(model: nn.Module) -> Iterator[None]:
    """Temporarily give `model` the forms that trace into a fixed, fast graph: the expert loop
    over every expert, and the fusable RMSNorm."""
    patched = []
    for module in model.modules():
        name = type(module).__name__
        if name.endswith("TextExperts"):
            module.forward = sparse_experts.__get__(module)
            patched.append(module)
        elif name.endswith("RMSNorm"):
            module.forward = rms_norm.__get__(module)
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _additive(allowed: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask as the additive float mask sdpa adds to its scores (a bool mask
    would trace into a select per layer, plus a NaN guard)."""
    return torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(torch.float32).min)


def _layer_keep(text_config) -> list[int | None]:
    window = int(text_config.sliding_window)
    return [window - 1 if kind == "sliding_attention" else None for kind in text_config.layer_types]


def _rotary(rotary_emb: nn.Module, hidden: torch.Tensor, positions: torch.Tensor, layer_types) -> dict:
    return {kind: rotary_emb(hidden, positions, kind) for kind in sorted(set(layer_types))}


class EncoderGraph(nn.Module):
    """(input_ids (1,T), past keys/values per layer) -> present keys/values per layer.

    Positions continue from the full layers' cached length: a request's cache is its own and
    always starts at position 0 with no padding.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.text_model = model.model.encoder.language_model
        self.text_config = self.text_model.config
        self.keep = _layer_keep(self.text_config)
        self.full_index = self.text_config.layer_types.index("full_attention")
        self.window = int(self.text_config.sliding_window)

    def forward(self, input_ids: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        num_layers = len(self.keep)
        past_keys, past_values = list(past[:num_layers]), list(past[num_layers:])
        num_past = past_keys[self.full_index].shape[2]
        num_new = input_ids.shape[1]
        query_pos = torch.arange(num_new, device=input_ids.device) + num_past
        hidden = self.text_model.embed_tokens(input_ids)
        positions = query_pos[None, :]
        rotary = _rotary(self.text_model.rotary_emb, hidden, positions, self.text_config.layer_types)
        masks = {}
        for kind in set(self.text_config.layer_types):
            index = self.text_config.layer_types.index(kind)
            num_keys = past_keys[index].shape[2] + num_new
            key_pos = torch.arange(num_keys, device=input_ids.device) + (num_past + num_new - num_keys)
            allowed = key_pos[None, :] <= query_pos[:, None]
            if kind == "sliding_attention":
                allowed = allowed & (query_pos[:, None] - key_pos[None, :] < self.window)
            masks[kind] = _additive(allowed[None, None])
        cache = _GrowingCache(past_keys, past_values, self.keep)
        for i, layer in enumerate(self.text_model.layers[:num_layers]):
            kind = self.text_config.layer_types[i]
            hidden = layer(hidden, position_embeddings=rotary[kind], attention_mask=masks[kind],
                           position_ids=positions, past_key_values=cache)
        return (*cache.keys, *cache.values)


class DecoderStepGraph(nn.Module):
    """One batched denoising step, decoder forward plus sampler (see the module docstring).

    Inputs: canvas (B,L) int64; self_conditioning_logits (B,L,V) float32; has_self_conditioning
    (B,) bool; position_ids (B,L) int64; key_mask (B,K) bool over the full layers' cache (left
    padded); logit_bias (B,L,V) float32 (0 or MASKED_LOGIT); temperature (B,) float32; uniform (B,L) float32; renoise
    (B,L) int64; entropy_bound () float32; then keys and values per layer. Outputs: next canvas, argmax canvas, mean
    entropy per row (B,), and the masked, temperature-scaled logits (the next step's
    self-conditioning input).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.decoder = model.model.decoder
        self.text_config = self.decoder.text_config
        self.num_layers = int(self.text_config.num_hidden_layers)
        self.softcap = model.final_logit_softcapping

    def logits(self, canvas, self_conditioning_logits, has_self_conditioning, position_ids, key_mask,
               keys, values) -> torch.Tensor:
        decoder = self.decoder
        embeddings = decoder.embed_tokens(canvas)
        weight = decoder.embed_tokens.weight
        soft = torch.matmul(self_conditioning_logits.softmax(dim=-1, dtype=torch.float32).to(weight.dtype),
                            weight) * decoder.embed_tokens.embed_scale.to(embeddings.dtype)
        soft = soft * has_self_conditioning.to(soft.dtype)[:, None, None]
        hidden = decoder.self_conditioning(embeddings, soft)
        rotary = _rotary(decoder.rotary_emb, hidden, position_ids, self.text_config.layer_types)
        canvas_mask = torch.ones_like(canvas, dtype=torch.bool)
        masks = {}
        for kind in set(self.text_config.layer_types):
            index = self.text_config.layer_types.index(kind)
            num_cached = keys[index].shape[2]
            row_mask = torch.cat([key_mask[:, key_mask.shape[1] - num_cached:], canvas_mask], dim=1)
            masks[kind] = _additive(row_mask[:, None, None, :])
        cache = _ReadOnlyCache(keys, values)
        for i, layer in enumerate(decoder.layers[: self.num_layers]):
            kind = self.text_config.layer_types[i]
            hidden = layer(hidden, position_embeddings=rotary[kind], attention_mask=masks[kind],
                           position_ids=position_ids, past_key_values=cache)
        logits = self.model.lm_head(decoder.norm(hidden)).to(torch.float32)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def forward(self, canvas, self_conditioning_logits, has_self_conditioning, position_ids, key_mask,
                logit_bias, temperature, uniform, renoise, entropy_bound, *cache: torch.Tensor):
        keys, values = list(cache[: self.num_layers]), list(cache[self.num_layers:])
        logits = self.logits(canvas, self_conditioning_logits, has_self_conditioning, position_ids,
                             key_mask, keys, values)
        return sample_with_draws(logits, logit_bias, temperature, uniform, renoise, entropy_bound)

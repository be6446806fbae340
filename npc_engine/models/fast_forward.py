"""Our own forward of DiffusionGemma's text encoder and decoder: plain tensor ops over the weights
a `transformers` checkpoint holds, as vLLM and nano-vllm own their model code.

Why: `transformers`' forward builds masks, cache objects and an expert loop in Python on every
call (the expert loop also syncs the device once per layer to find the experts that were hit),
so a step's host time dwarfs its compute on a GPU. Here a decoder step is a short sequence of
tensor ops: the masks come in as tensors (their additive form and the RoPE tables are built
once per batch and reused while the batch's tensors are), the cache as plain key/value tensors.
The mixture of experts has two forms: on a GPU every expert runs densely and each token's chosen
ones are weighted in (the same sums: an expert a token did not choose gets weight 0; no host
sync and no data-dependent shape, which CUDA graph replay needs); on the CPU only the tokens
routed to an expert go through it, as transformers does, since there a sync costs nothing and
the dense form would double the experts' work.

Covered: sliding and full attention layers (GQA, per-layer head sizes, full layers whose values
are their keys), RoPE from the checkpoint's own frequency tables, Gemma RMSNorms, the dense
feed-forward beside the routed experts, self-conditioning, tied or untied LM head, final logit
softcapping. `unsupported_reason` names anything else, and the backend then keeps the
`transformers` path (with a log line), never a silently different forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["FastForward", "additive_mask", "unsupported_reason"]

_ACTIVATIONS = {"gelu_pytorch_tanh"}
# On the CPU, the most tokens in a forward for which every expert runs densely (measured on the
# built-in model, 4 experts, top 2: one canvas of 64 tokens 15% faster dense, 8 canvases even).
_DENSE_EXPERTS_MAX_TOKENS = 256


def unsupported_reason(model: Any) -> str | None:
    """Why this checkpoint's configuration is outside what `FastForward` computes, or None."""
    text = model.config.text_config
    if getattr(text, "hidden_activation", None) not in _ACTIVATIONS:
        return f"hidden_activation {getattr(text, 'hidden_activation', None)!r} (covered: {sorted(_ACTIVATIONS)})"
    if getattr(text, "attention_bias", False):
        return "attention_bias=True"
    if getattr(text, "use_bidirectional_attention", None) == "all":
        return "a bidirectional encoder (use_bidirectional_attention='all')"
    if getattr(text, "attn_logit_softcapping", None) is not None:
        return "attention logit softcapping"
    if set(text.layer_types) - {"sliding_attention", "full_attention"}:
        return f"layer types {sorted(set(text.layer_types))}"
    if getattr(text, "use_clipped_linears", False):
        return "clipped linears"
    for layer in model.model.decoder.layers:
        if getattr(layer.self_attn, "is_kv_shared_layer", False):
            return "shared key/value layers"
    return None


def _rms(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Gemma's RMSNorm, in transformers' arithmetic (float32, x * (mean(x^2) + eps)^-0.5);
    `weight` is already float32 (see `_Layer.of`)."""
    hidden = x if x.dtype == torch.float32 else x.float()
    normed = hidden * torch.pow(hidden.pow(2).mean(-1, keepdim=True) + eps, -0.5)
    if weight is not None:
        normed = normed * weight
    return normed if normed.dtype == x.dtype else normed.type_as(x)


def _float32(weight: torch.Tensor) -> torch.Tensor:
    """A norm's weight as float32: the weight itself when it already is (shared, not copied)."""
    return weight if weight.dtype == torch.float32 else weight.detach().float()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on (B, T, heads, dim) with cos/sin (B, T, dim)."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


@dataclass(frozen=True)
class _Layer:
    is_sliding: bool
    num_heads: int
    num_kv_heads: int
    head_dim: int
    is_grouped: bool                # GQA: fewer key/value heads than query heads
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor | None          # None: a full layer, whose values are its (un-roped) keys
    o: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    input_norm: torch.Tensor
    post_attention_norm: torch.Tensor
    pre_feedforward_norm: torch.Tensor
    post_feedforward_norm: torch.Tensor
    post_feedforward_norm_1: torch.Tensor
    post_feedforward_norm_2: torch.Tensor
    pre_feedforward_norm_2: torch.Tensor
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor
    router_scale: torch.Tensor
    router_proj: torch.Tensor
    per_expert_scale: torch.Tensor
    experts_gate_up: torch.Tensor   # (E, 2I, H)
    experts_down: torch.Tensor      # (E, H, I)
    layer_scalar: torch.Tensor

    @classmethod
    def of(cls, layer: Any, is_sliding: bool, num_heads: int) -> "_Layer":
        attention = layer.self_attn
        head_dim = int(attention.q_norm.weight.shape[0])
        f32 = _float32
        num_kv_heads = int(attention.k_proj.weight.shape[0]) // head_dim
        return cls(
            is_sliding=is_sliding, num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
            is_grouped=num_kv_heads != num_heads, q=attention.q_proj.weight, k=attention.k_proj.weight,
            v=attention.v_proj.weight if attention.v_proj is not None else None, o=attention.o_proj.weight,
            q_norm=f32(attention.q_norm.weight), k_norm=f32(attention.k_norm.weight),
            input_norm=f32(layer.input_layernorm.weight), post_attention_norm=f32(layer.post_attention_layernorm.weight),
            pre_feedforward_norm=f32(layer.pre_feedforward_layernorm.weight),
            post_feedforward_norm=f32(layer.post_feedforward_layernorm.weight),
            post_feedforward_norm_1=f32(layer.post_feedforward_layernorm_1.weight),
            post_feedforward_norm_2=f32(layer.post_feedforward_layernorm_2.weight),
            pre_feedforward_norm_2=f32(layer.pre_feedforward_layernorm_2.weight),
            gate=layer.mlp.gate_proj.weight, up=layer.mlp.up_proj.weight, down=layer.mlp.down_proj.weight,
            router_scale=layer.router.scale, router_proj=layer.router.proj.weight,
            per_expert_scale=layer.router.per_expert_scale, experts_gate_up=layer.experts.gate_up_proj,
            experts_down=layer.experts.down_proj, layer_scalar=layer.layer_scalar)


class FastForward:
    """The encoder's chunk prefill and the decoder's denoising forward of one checkpoint, over
    its own weight tensors (shared, not copied)."""

    def __init__(self, model: Any) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ConfigError(f"the fast forward does not cover {reason}")  # callers check first
        text = model.config.text_config
        self.eps = float(text.rms_norm_eps)
        self.top_k = int(text.top_k_experts)
        self.sliding_window = int(text.sliding_window)
        self.layer_types = list(text.layer_types)
        num_heads = int(text.num_attention_heads)
        decoder = model.model.decoder
        encoder = model.model.encoder.language_model
        self.decoder_layers = [_Layer.of(layer, kind == "sliding_attention", num_heads)
                               for layer, kind in zip(decoder.layers, self.layer_types)]
        self.encoder_layers = [_Layer.of(layer, kind == "sliding_attention", num_heads)
                               for layer, kind in zip(encoder.layers, self.layer_types)]
        self.decoder_embed = decoder.embed_tokens.weight
        self.decoder_embed_scale = decoder.embed_tokens.embed_scale
        self.encoder_embed = encoder.embed_tokens.weight
        self.encoder_embed_scale = encoder.embed_tokens.embed_scale
        self.decoder_norm = _float32(decoder.norm.weight)
        self.encoder_norm = _float32(encoder.norm.weight)
        sc = decoder.self_conditioning
        self.sc_pre_norm, self.sc_gate, self.sc_up, self.sc_down = (
            _float32(sc.pre_norm.weight), sc.gate_proj.weight, sc.up_proj.weight, sc.down_proj.weight)
        # Dense experts where a host sync costs (a GPU, and what CUDA graphs capture); on the CPU
        # (None) dense for a few tokens, where the routed form's handful of ops per expert costs
        # more than the work the dense form repeats, routed above. True/False force a form (the
        # tests run both).
        self.is_dense_experts: bool | None = True if decoder.embed_tokens.weight.device.type != "cpu" else None
        self._per_batch: dict[str, tuple[torch.Tensor, Any]] = {}
        self.lm_head = model.lm_head.weight
        self.softcap = model.final_logit_softcapping
        self._rope = {kind: (getattr(decoder.rotary_emb, f"{kind}_inv_freq"),
                             float(getattr(decoder.rotary_emb, f"{kind}_attention_scaling")))
                      for kind in set(self.layer_types)}

    # -- shared pieces --------------------------------------------------------------------------

    def _reused(self, name: str, key: torch.Tensor, build: Any) -> Any:
        """`build()`, or what it gave for this very `key` tensor last time: a resident batch
        passes the same positions and key mask every step, so their RoPE tables and additive
        masks are built once per batch. Holding `key` keeps its id from being reused."""
        held = self._per_batch.get(name)
        if held is not None and held[0] is key:
            return held[1]
        value = build()
        self._per_batch[name] = (key, value)
        return value

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        tables = {}
        for kind, (inv_freq, scaling) in self._rope.items():
            freqs = positions[..., None].float() * inv_freq.to(device=positions.device, dtype=torch.float32)
            emb = torch.cat((freqs, freqs), dim=-1)
            tables[kind] = ((emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype))
        return tables

    def _attention_inputs(self, layer: _Layer, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(queries (B,h,T,d), keys (B,kvh,T,d), values (B,kvh,T,d)) of `hidden`, normed and roped."""
        batch, length, _ = hidden.shape
        shape = (batch, length, -1, layer.head_dim)
        query = _rotate(_rms(F.linear(hidden, layer.q).view(shape), layer.q_norm, self.eps), cos, sin)
        raw_key = F.linear(hidden, layer.k).view(shape)
        raw_value = F.linear(hidden, layer.v).view(shape) if layer.v is not None else raw_key
        key = _rotate(_rms(raw_key, layer.k_norm, self.eps), cos, sin)
        value = _rms(raw_value, None, self.eps)
        return query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)

    @staticmethod
    def _attend(layer: _Layer, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=1.0,
                                             enable_gqa=layer.is_grouped)
        batch, _, length, _ = out.shape
        return out.transpose(1, 2).reshape(batch, length, -1)

    def _feedforward(self, layer: _Layer, residual: torch.Tensor) -> torch.Tensor:
        """The dense MLP and the routed experts side by side, as a DiffusionGemma layer has them."""
        eps = self.eps
        dense_in = _rms(residual, layer.pre_feedforward_norm, eps)
        dense = F.linear(F.gelu(F.linear(dense_in, layer.gate), approximate="tanh") * F.linear(dense_in, layer.up),
                         layer.down)
        dense = _rms(dense, layer.post_feedforward_norm_1, eps)

        flat = residual.reshape(-1, residual.shape[-1])
        routed = _rms(flat, None, eps) * layer.router_scale * (flat.shape[-1] ** -0.5)
        probabilities = F.softmax(F.linear(routed, layer.router_proj), dim=-1, dtype=torch.float32)
        top_weights, top_index = torch.topk(probabilities, k=self.top_k, dim=-1)
        top_weights = top_weights / top_weights.sum(dim=-1, keepdim=True)
        top_weights = top_weights * layer.per_expert_scale[top_index]
        experts_in = _rms(flat, layer.pre_feedforward_norm_2, eps)
        is_dense = self.is_dense_experts
        if is_dense is None:
            is_dense = flat.shape[0] <= _DENSE_EXPERTS_MAX_TOKENS
        if is_dense:
            routed_out = _dense_experts(layer, experts_in, top_index, top_weights)
        else:
            routed_out = _routed_experts(layer, experts_in, top_index, top_weights)
        routed_out = _rms(routed_out.reshape(residual.shape).to(residual.dtype), layer.post_feedforward_norm_2, eps)
        return _rms(dense + routed_out, layer.post_feedforward_norm, eps)

    def _layer(self, layer: _Layer, hidden: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
               past: tuple[torch.Tensor, torch.Tensor] | Any, mask: torch.Tensor, *,
               cache_layer: Any = None) -> torch.Tensor:
        residual = hidden
        normed = _rms(hidden, layer.input_norm, self.eps)
        query, key, value = self._attention_inputs(layer, normed, *rotary)
        if cache_layer is not None:  # the encoder grows the request's cache (sliding layers trim it)
            keys, values = cache_layer.update(key, value)
        else:  # the decoder reads the cache and never writes it
            keys, values = torch.cat([past[0], key], dim=-2), torch.cat([past[1], value], dim=-2)
        attended = F.linear(self._attend(layer, query, keys, values, mask), layer.o)
        hidden = residual + _rms(attended, layer.post_attention_norm, self.eps)
        hidden = hidden + self._feedforward(layer, hidden)
        return hidden * layer.layer_scalar

    # -- the decoder ---------------------------------------------------------------------------

    def denoise(self, canvas: torch.Tensor, self_conditioning_logits: torch.Tensor | None,
                keys: list[torch.Tensor], values: list[torch.Tensor], key_mask: torch.Tensor,
                position_ids: torch.Tensor, self_conditioning_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 logits (B, L, V) of one decoder forward over `canvas` (B, L).

        `keys`/`values`: per layer, the batch's cached (normed, roped) keys and values (B, kvh, S_l,
        d), left-padded; `key_mask` (B, S) marks the real entries of the longest (full) layer, its
        right end aligned with every layer's. `self_conditioning_mask` (B,) zeroes the signal of
        rows with no previous logits yet.
        """
        dtype = self.decoder_embed.dtype
        rotary = self._reused("rotary", position_ids, lambda: self.rotary(position_ids, dtype))
        by_width = self._reused("masks", key_mask, lambda: self._decoder_masks(key_mask, keys, canvas, dtype))
        return self.denoise_prepared(canvas, self_conditioning_logits, keys, values,
                                     [by_width[k.shape[2]] for k in keys], rotary, self_conditioning_mask)

    def denoise_prepared(self, canvas: torch.Tensor, self_conditioning_logits: torch.Tensor | None,
                         keys: list[torch.Tensor], values: list[torch.Tensor], masks: list[torch.Tensor],
                         rotary: dict[str, tuple[torch.Tensor, torch.Tensor]],
                         self_conditioning_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`denoise` with its masks and RoPE tables given: `masks` holds each layer's additive mask
        (B, 1, 1, cached width + L), `rotary` maps a layer type to its (cos, sin) from `rotary()`.
        Pure tensor ops with no host sync on a GPU (the static runner's CUDA graphs capture it,
        torch.compile traces it whole); the cached entries may sit anywhere in their width, the
        mask says which."""
        embed = self.decoder_embed
        scale = self.decoder_embed_scale.to(embed.dtype)
        hidden = F.embedding(canvas, embed) * scale
        if self_conditioning_logits is not None:
            soft = torch.matmul(self_conditioning_logits.softmax(dim=-1, dtype=torch.float32).to(embed.dtype), embed)
            soft = soft * scale.to(hidden.dtype)
            if self_conditioning_mask is not None:
                soft = soft * self_conditioning_mask.to(soft.dtype)[:, None, None]
        else:
            soft = torch.zeros_like(hidden)
        normed = _rms(soft, self.sc_pre_norm, self.eps)
        signal = F.linear(F.gelu(F.linear(normed, self.sc_gate), approximate="tanh") * F.linear(normed, self.sc_up),
                          self.sc_down)
        hidden = _rms(hidden + signal, None, self.eps)
        for index, layer in enumerate(self.decoder_layers):
            hidden = self._layer(layer, hidden, rotary[self.layer_types[index]], (keys[index], values[index]),
                                 masks[index])
        logits = F.linear(_rms(hidden, self.decoder_norm, self.eps), self.lm_head).to(torch.float32)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @staticmethod
    def _decoder_masks(key_mask: torch.Tensor, keys: list[torch.Tensor], canvas: torch.Tensor,
                       dtype: torch.dtype) -> dict[int, torch.Tensor]:
        """Additive masks by cached length: the real cached entries (right-aligned) and the canvas."""
        canvas_keys = torch.ones(canvas.shape, dtype=torch.bool, device=canvas.device)
        masks = {}
        for layer_keys in keys:
            num_cached = layer_keys.shape[2]
            if num_cached not in masks:
                allowed = torch.cat([key_mask[:, key_mask.shape[1] - num_cached:], canvas_keys], dim=1)
                masks[num_cached] = additive_mask(allowed[:, None, None, :], dtype)
        return masks

    # -- the encoder ---------------------------------------------------------------------------

    def encode(self, input_ids: torch.Tensor, position_ids: torch.Tensor, cache: Any) -> torch.Tensor:
        """The causal encoder over one request's new tokens `input_ids` (1, T) at `position_ids`,
        appending their keys/values to its `DynamicCache` (sliding layers keep their last
        window - 1 entries, as transformers' cache does). Returns the final hidden states."""
        hidden = F.embedding(input_ids, self.encoder_embed) * self.encoder_embed_scale.to(self.encoder_embed.dtype)
        rotary = self.rotary(position_ids, hidden.dtype)
        query_pos = position_ids[0]
        num_new = input_ids.shape[1]
        end = int(query_pos[-1]) + 1
        for index, layer in enumerate(self.encoder_layers):
            cache_layer = cache.layers[index]
            num_keys = (cache_layer.keys.shape[-2] if cache_layer.is_initialized else 0) + num_new
            key_pos = torch.arange(end - num_keys, end, device=input_ids.device)
            allowed = key_pos[None, :] <= query_pos[:, None]
            if layer.is_sliding:
                allowed = allowed & (query_pos[:, None] - key_pos[None, :] < self.sliding_window)
            hidden = self._layer(layer, hidden, rotary[self.layer_types[index]], None,
                                 additive_mask(allowed[None, None], hidden.dtype), cache_layer=cache_layer)
        return _rms(hidden, self.encoder_norm, self.eps)


def _dense_experts(layer: _Layer, hidden: torch.Tensor, top_index: torch.Tensor,
                   top_weights: torch.Tensor) -> torch.Tensor:
    """Every expert over every token, each weighted by the router (0 where not chosen)."""
    weights = torch.zeros((hidden.shape[0], layer.experts_gate_up.shape[0]), dtype=top_weights.dtype,
                          device=hidden.device).scatter(-1, top_index, top_weights)  # (T, E)
    gate, up = torch.matmul(hidden, layer.experts_gate_up.transpose(1, 2)).chunk(2, dim=-1)  # (E, T, I)
    per_expert = torch.matmul(F.gelu(gate, approximate="tanh") * up, layer.experts_down.transpose(1, 2))
    return (per_expert * weights.t().to(per_expert.dtype)[:, :, None]).sum(dim=0)


def _routed_experts(layer: _Layer, hidden: torch.Tensor, top_index: torch.Tensor,
                    top_weights: torch.Tensor) -> torch.Tensor:
    """Each expert over the tokens routed to it, summed back per token, as transformers does."""
    out = torch.zeros_like(hidden)
    for expert in torch.unique(top_index).tolist():
        token, slot = torch.where(top_index == expert)
        gate, up = F.linear(hidden[token], layer.experts_gate_up[expert]).chunk(2, dim=-1)
        expert_out = F.linear(F.gelu(gate, approximate="tanh") * up, layer.experts_down[expert])
        out.index_add_(0, token, (expert_out * top_weights[token, slot, None]).to(out.dtype))
    return out


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where `allowed`, the dtype's lowest value elsewhere (what SDPA adds to the scores)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)

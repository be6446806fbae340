"""Sampler math for one denoising step, batched over canvases.

These functions reproduce DiffusionGemma's `generate` bit for bit (same operations, same order,
same random draws), while taking their state as arguments so a caller can pause and resume a
request between steps. Randomness comes from a `NoiseSource`: `BatchNoise` draws for the whole
batch at once, exactly as `generate` does; `RowNoise` gives each row its own generator, so a
request's output does not depend on who else shares its batch.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch

from .constants import MASKED_LOGIT

__all__ = [
    "MASKED_LOGIT",
    "NoiseSource",
    "BatchNoise",
    "RowNoise",
    "temperature_schedule",
    "token_entropy",
    "token_entropy_fast",
    "entropy_bound_accept",
    "sample_accept_renoise",
    "sample_with_draws",
    "inverse_cdf_sample",
]


class NoiseSource(Protocol):
    """Where a denoising loop gets its random tokens and samples."""

    def random_tokens(self, batch_size: int, canvas_length: int, vocab_size: int,
                      device: torch.device) -> torch.Tensor: ...

    def sample(self, probs: torch.Tensor) -> torch.Tensor: ...


class BatchNoise:
    """One generator (or torch's global one) for the whole batch: the draws of `generate`."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def random_tokens(self, batch_size: int, canvas_length: int, vocab_size: int,
                      device: torch.device) -> torch.Tensor:
        return torch.randint(0, vocab_size, (batch_size, canvas_length), device=device,
                             generator=self.generator)

    def sample(self, probs: torch.Tensor) -> torch.Tensor:
        batch_size, canvas_length, vocab_size = probs.shape
        flat = torch.multinomial(probs.view(-1, vocab_size), num_samples=1, generator=self.generator)
        return flat.view(batch_size, canvas_length)


class RowNoise:
    """One generator per row, so each request's randomness is its own.

    Sampling is by inverse CDF: one uniform draw per position instead of the exponential draw per
    vocabulary entry that `torch.multinomial` makes, which dominates a step's cost on a CPU.
    Same distribution as `BatchNoise`, different random stream.
    """

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)

    def random_tokens(self, batch_size: int, canvas_length: int, vocab_size: int,
                      device: torch.device) -> torch.Tensor:
        return torch.cat([
            torch.randint(0, vocab_size, (1, canvas_length), device=device, generator=g)
            for g in self.generators[:batch_size]
        ])

    def sample(self, probs: torch.Tensor) -> torch.Tensor:
        batch_size, canvas_length, _ = probs.shape
        uniform = torch.stack([
            torch.rand(canvas_length, device=probs.device, generator=g)
            for g in self.generators[:batch_size]
        ])
        cdf = probs.cumsum(dim=-1)
        total = cdf[..., -1:]
        # Keep the target strictly below the total, even where uniform * total rounds up to it:
        # then the first cdf entry above it is a token with positive probability, never a
        # masked one (a zero-probability token repeats the cdf value before it), and no
        # host-side check is needed in the step.
        targets = torch.minimum(uniform.unsqueeze(-1) * total,
                                torch.nextafter(total, torch.zeros_like(total)))
        return torch.searchsorted(cdf, targets, right=True).squeeze(-1)


def temperature_schedule(t_min: float, t_max: float, max_denoising_steps: int) -> dict[int, torch.Tensor]:
    """Temperature for each remaining-step count n (N..1): t_min + (t_max - t_min) * n / N.

    Computed as float32 tensors exactly as transformers' LinearTemperatureScheduleLogitsProcessor
    does, so dividing by them gives bit-identical logits.
    """
    return {
        n: t_min + (t_max - t_min) * (torch.tensor(n, dtype=torch.int32) / max_denoising_steps)
        for n in range(1, max_denoising_steps + 1)
    }


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy, the same arithmetic as `Categorical(logits=...).entropy()`.

    Masked (-inf) logits contribute zero, so a clamped position has entropy 0.
    """
    log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)
    probs = torch.softmax(log_probs, dim=-1)
    log_probs = torch.clamp(log_probs, min=torch.finfo(log_probs.dtype).min)
    return -(log_probs * probs).sum(-1)


def token_entropy_fast(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Per-position entropy as logsumexp(x) - sum(p * x), reusing the step's softmax.

    Equal to `token_entropy` up to float rounding, at a third of the cost. Needs finite logits
    (mask with `MASKED_LOGIT`, not -inf).
    """
    return logits.logsumexp(dim=-1) - (probs * logits).sum(dim=-1)


def entropy_bound_accept(entropy: torch.Tensor, entropy_bound: float) -> torch.Tensor:
    """Accept the k lowest-entropy positions with sum(entropy) - max(entropy) <= bound."""
    sorted_entropy, sorted_indices = torch.sort(entropy, dim=-1, descending=False)
    cumulative = torch.cumsum(sorted_entropy, dim=-1)
    sorted_accept = cumulative - sorted_entropy <= entropy_bound
    return torch.scatter(torch.zeros_like(sorted_accept), dim=-1, index=sorted_indices, src=sorted_accept)


def sample_with_draws(
    logits: torch.Tensor,
    logit_bias: torch.Tensor,
    temperature: torch.Tensor,
    uniform: torch.Tensor,
    renoise: torch.Tensor,
    entropy_bound: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sampler half of an engine step, from raw logits (B, L, V) and host-drawn noise.

    Divides by each row's `temperature` (B,), adds `logit_bias` (B, L, V: 0, or MASKED_LOGIT
    where a template forbids a token), samples every position by inverse CDF with `uniform`
    (B, L) (see `inverse_cdf_sample`), accepts the lowest-entropy positions under the bound and
    puts `renoise` (B, L) everywhere else. Every backend runs exactly this (the ONNX step graph
    is exported from it), so the same draws give the same canvases. Returns (next canvas,
    argmax canvas, mean entropy per row, scaled logits).
    """
    logits = logits / temperature[:, None, None] + logit_bias
    # One exp pass serves both the sample and the entropy; nothing here needs normalized
    # probabilities: the inverse CDF scales its target by the total instead.
    peak = logits.amax(dim=-1, keepdim=True)
    shifted = logits - peak
    # exp() of an input below about -87 (every masked token, at -1e30) underflows, and CPU exp
    # kernels take a slow path there: measured 5-8x the cost of the whole pass. Those weights are
    # below 1e-38 of the peak's, so they are exactly 0 here (a masked token stays undrawable).
    weights = torch.where(shifted > _EXP_FLOOR, torch.exp(shifted.clamp(min=_EXP_FLOOR)), 0.0)
    total = weights.sum(dim=-1)
    entropy = peak.squeeze(-1) + torch.log(total) - (weights * logits).sum(dim=-1) / total
    sampled = inverse_cdf_sample(weights, uniform)
    argmax_canvas = torch.argmax(logits, dim=-1)
    is_accepted = entropy_bound_accept(entropy, entropy_bound)
    return torch.where(is_accepted, sampled, renoise), argmax_canvas, entropy.mean(dim=-1), logits


# Below this, exp() underflows float32's normal range (exp(-87) is about 1.6e-38).
_EXP_FLOOR = -87.0
# Scales a target strictly below the total it was drawn against (one float32 ulp or more).
_BELOW_ONE = 1.0 - 2.0 ** -23


def _block_size(vocab_size: int) -> int:
    for size in (64, 32, 16, 8, 4, 2):
        if vocab_size % size == 0:
            return size
    return 1


def inverse_cdf_sample(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Per position, an index drawn with probability weights / sum(weights) (weights >= 0, at
    least one > 0, shape (B, L, V)), by inverse CDF at `uniform` (B, L) in [0, 1).

    In two levels, so no cumulative sum runs over the whole vocabulary: find the block of 64
    tokens holding the target from the block totals, then the token inside that block. Each
    target is kept strictly below the total it is compared with, so the token found always has
    positive weight: a masked token (weight 0) repeats the cdf entry before it and is never the
    first entry above a target. Counting entries at or below a target is
    searchsorted(right=True), written so that it exports to ONNX.
    """
    *lead, vocab_size = weights.shape
    size = _block_size(vocab_size)
    blocks = weights.reshape(*lead, vocab_size // size, size)
    block_cdf = blocks.sum(dim=-1).cumsum(dim=-1)
    target = uniform * block_cdf[..., -1] * _BELOW_ONE
    block = (block_cdf <= target[..., None]).sum(dim=-1)
    below = block_cdf.gather(-1, (block - 1).clamp(min=0)[..., None]).squeeze(-1)
    below = torch.where(block > 0, below, torch.zeros_like(below))
    index = block[..., None, None].expand(*lead, 1, size)
    inner_cdf = blocks.gather(-2, index).squeeze(-2).cumsum(dim=-1)
    residual = torch.minimum(target - below, inner_cdf[..., -1] * _BELOW_ONE)
    return block * size + (inner_cdf <= residual[..., None]).sum(dim=-1)


def sample_accept_renoise(
    logits: torch.Tensor,
    canvas: torch.Tensor,
    noise: NoiseSource,
    entropy_bound: float,
    *,
    is_exact: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sampler half of a step, from masked, temperature-scaled logits (B, L, V).

    Samples every position, accepts the lowest-entropy ones under the bound, re-noises the
    rest. Random draws happen in `generate`'s order (samples, then renoise). Returns
    (next canvas, argmax canvas, entropy). `is_exact` computes the entropy with `generate`'s own
    operations (bitwise parity); otherwise it reuses the softmax, equal up to rounding.
    """
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    sampled = noise.sample(probs)
    argmax_canvas = torch.argmax(logits, dim=-1)
    entropy = token_entropy(logits) if is_exact else token_entropy_fast(logits, probs)
    is_accepted = entropy_bound_accept(entropy, entropy_bound)
    accepted = torch.where(is_accepted, sampled, canvas)
    batch_size, canvas_length, vocab_size = logits.shape
    renoise = noise.random_tokens(batch_size, canvas_length, vocab_size, logits.device)
    return torch.where(is_accepted, accepted, renoise), argmax_canvas, entropy

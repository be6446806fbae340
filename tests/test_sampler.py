"""Sampler math on plain tensors: the fast paths agree with the exact ones."""

from __future__ import annotations

import pytest
import torch

from npc_engine.diffusion.sampler import (
    MASKED_LOGIT,
    RowNoise,
    inverse_cdf_sample,
    entropy_bound_accept,
    token_entropy,
    token_entropy_fast,
)


def test_fast_entropy_matches_exact_entropy_with_masks():
    torch.manual_seed(0)
    logits = torch.randn(4, 16, 50) * 3
    mask = torch.rand(4, 16, 50) < 0.5
    mask[..., 0] = False  # every position keeps at least one token
    masked = logits.masked_fill(mask, MASKED_LOGIT)
    probs = torch.softmax(masked, dim=-1)
    assert torch.allclose(token_entropy_fast(masked, probs), token_entropy(masked), atol=1e-5)
    one_hot = torch.full((1, 1, 50), MASKED_LOGIT)
    one_hot[0, 0, 7] = 0.0
    assert token_entropy_fast(one_hot, torch.softmax(one_hot, -1)).item() == 0.0


def test_row_noise_samples_the_right_distribution_and_never_a_masked_token():
    target = torch.tensor([0.5, 0.0, 0.3, 0.0, 0.2])
    probs = target.expand(2, 20_000, 5).contiguous()
    noise = RowNoise([torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    samples = noise.sample(probs)
    frequencies = torch.bincount(samples.flatten(), minlength=5).float() / samples.numel()
    assert frequencies[1] == 0 and frequencies[3] == 0
    assert torch.allclose(frequencies, target, atol=0.01)


def test_row_noise_rows_do_not_depend_on_each_other():
    probs = torch.softmax(torch.randn(3, 8, 20), dim=-1)
    alone = RowNoise([torch.Generator().manual_seed(9)]).sample(probs[1:2])
    together = RowNoise([torch.Generator().manual_seed(s) for s in (4, 9, 5)]).sample(probs)
    assert torch.equal(alone[0], together[1])


def test_entropy_bound_accepts_lowest_entropy_positions_within_bound():
    entropy = torch.tensor([[0.5, 0.0, 0.04, 0.05, 2.0]])
    accepted = entropy_bound_accept(entropy, 0.1)
    # sorted: 0.0, 0.04, 0.05, 0.5, 2.0 -> sums before each: 0, 0, 0.04, 0.09, 0.59
    assert accepted.tolist() == [[True, True, True, True, False]]


def test_row_noise_never_picks_a_trailing_masked_token_when_the_draw_rounds_up(monkeypatch):
    # The largest float32 below 1 times the total can round up to the total itself; the
    # zero-probability tokens after the last positive one must still be out of reach.
    probs = torch.tensor([[[0.3, 0.7, 0.0, 0.0]]])
    monkeypatch.setattr(torch, "rand", lambda n, **_: torch.full((n,), 1 - 2**-24))
    assert RowNoise([torch.Generator()]).sample(probs).tolist() == [[1]]


@pytest.mark.parametrize("vocab_size", [7, 100, 512, 1000])
def test_inverse_cdf_sample_never_draws_a_masked_token_and_follows_the_weights(vocab_size):
    generator = torch.Generator().manual_seed(vocab_size)
    weights = torch.rand((4, 300, vocab_size), generator=generator) ** 4
    weights[torch.rand(weights.shape, generator=generator) < 0.7] = 0.0  # masked tokens
    weights[..., 3] = 1e-3  # every row keeps one allowed token
    uniform = torch.rand((4, 300), generator=generator)
    uniform[0, :3] = torch.tensor([0.0, 1.0 - 2.0 ** -24, 0.5])  # the extremes of [0, 1)
    drawn = inverse_cdf_sample(weights, uniform)
    assert drawn.min() >= 0 and drawn.max() < vocab_size
    assert bool((weights.gather(-1, drawn[..., None]) > 0).all())
    # The same draw as a one-level inverse CDF in float64, up to float32 rounding at boundaries.
    cdf = weights.double().cumsum(-1)
    reference = torch.searchsorted(cdf, (uniform.double() * cdf[..., -1])[..., None], right=True).squeeze(-1)
    assert float((drawn == reference.clamp(max=vocab_size - 1)).double().mean()) > 0.99


def test_inverse_cdf_sample_frequencies_match_the_probabilities():
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.tensor([0.5, 0.0, 0.25, 0.125, 0.0, 0.125] * 32)  # V=192: three blocks of 64
    probabilities = probabilities / probabilities.sum()
    num_draws = 40_000
    drawn = inverse_cdf_sample(probabilities.expand(1, num_draws, -1), torch.rand((1, num_draws), generator=generator))
    counts = torch.bincount(drawn.flatten(), minlength=192).double() / num_draws
    assert float(counts[probabilities == 0].sum()) == 0.0
    assert float((counts - probabilities.double()).abs().max()) < 0.005

"""Our step-wise loop reproduces `model.generate` token for token."""

from __future__ import annotations

import copy

import pytest
import torch

from npc_engine.diffusion import BatchNoise, DiffusionSettings
from npc_engine.models import DiffusionGemmaBackend

from .conftest import sharpen
from .parity_oracle import BlockDiffusion

PROMPTS = [
    "Hello there, how are you today?",
    "What rumours have you heard about the marsh lately, old friend?",
    "Buy?",
]


def left_padded_batch(backend: DiffusionGemmaBackend):
    encoded = [backend.tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
    width = max(len(ids) for ids in encoded)
    pad = backend.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    assert len({len(ids) for ids in encoded}) == 3  # three different prompt lengths
    return input_ids, attention_mask


def run_both(backend, settings, seed, max_new_tokens):
    input_ids, attention_mask = left_padded_batch(backend)
    torch.manual_seed(seed)
    reference = backend.model.generate(input_ids, attention_mask=attention_mask,
                                       max_new_tokens=max_new_tokens, **settings.to_generate_kwargs())
    ours = BlockDiffusion(backend, settings, is_exact=True).run(
        input_ids, attention_mask, max_new_tokens=max_new_tokens,
        noise=BatchNoise(torch.Generator().manual_seed(seed)))
    return reference, ours


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_canvas_matches_generate(backend, seed):
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    reference, ours = run_both(backend, settings, seed, max_new_tokens=backend.canvas_length)
    assert torch.equal(reference.sequences, ours.sequences)
    assert torch.equal(reference.tokens_per_forward, ours.tokens_per_forward)


@pytest.fixture(scope="module")
def sharp_backend(tiny_model_dir):
    backend = DiffusionGemmaBackend.from_pretrained(tiny_model_dir, device="cpu")
    return sharpen(backend, 40.0)


# Sharp logits plus these settings make rows stop after different numbers of steps.
EARLY_STOP = DiffusionSettings(max_denoising_steps=12, entropy_bound=2.0, stability_threshold=0,
                               confidence_threshold=0.3)


@pytest.fixture()
def frequent_eos(sharp_backend):
    """Add a second EOS id that random weights emit often, so EOS happens mid-generation."""
    generation_config = sharp_backend.model.generation_config
    saved = copy.deepcopy(generation_config.eos_token_id)
    input_ids, _ = left_padded_batch(sharp_backend)
    generation_config.eos_token_id = [1, int(torch.mode(input_ids[input_ids > 10]).values)]
    yield sharp_backend
    generation_config.eos_token_id = saved


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_early_stop_eos_and_several_canvases_match_generate(frequent_eos, seed):
    """Rows stop at different steps, hit EOS in different canvases, and continue block by block."""
    reference, ours = run_both(frequent_eos, EARLY_STOP, seed, max_new_tokens=3 * frequent_eos.canvas_length)
    assert torch.equal(reference.sequences, ours.sequences)
    assert torch.equal(reference.tokens_per_forward, ours.tokens_per_forward)


def test_parity_scenarios_are_really_exercised(frequent_eos):
    """Guard for the test above: per-row early stops, EOS before the last canvas, 2+ canvases."""
    backend = frequent_eos
    input_ids, attention_mask = left_padded_batch(backend)
    loop = BlockDiffusion(backend, EARLY_STOP, is_exact=True)
    saw_partial_stop = saw_partial_finish = False
    num_canvases = 0
    for seed in range(4):
        batch = loop.start(input_ids, attention_mask, max_new_tokens=3 * backend.canvas_length,
                           noise=BatchNoise(torch.Generator().manual_seed(seed)))
        while True:
            while not batch.is_canvas_done:
                loop.step(batch)
                saw_partial_stop |= bool(batch.is_denoised.any() and not batch.is_denoised.all())
            loop.end_canvas(batch)
            num_canvases = max(num_canvases, 3 - batch.num_canvases_left)
            if batch.is_done:
                break
            saw_partial_finish |= bool(batch.is_finished.any())
    assert saw_partial_stop
    assert saw_partial_finish
    assert num_canvases >= 2


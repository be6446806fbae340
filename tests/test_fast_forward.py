"""Our own DiffusionGemma forward (models/fast_forward.py) against transformers' forward: the
decoder's logits and the encoder's caches on the tiny test model, the built-in model and a random
85M model; the engine's outputs token for token; and the fallback for a configuration it does
not cover."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from npc_engine import ModelLoadError
from npc_engine.engine import Engine
from npc_engine.models import TinyModelSpec, build_tiny_model, default_model_dir
from npc_engine.models.backend import DiffusionGemmaBackend
from npc_engine.models.fast_forward import unsupported_reason
from npc_engine.models.kv import cache_length, merge_caches

from .conftest import SHOPKEEPER_TEMPLATE

# bench/common.py's "small": 85,145,488 parameters
MODEL_85M = TinyModelSpec(hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8,
                          num_key_value_heads=4, head_dim=64, moe_intermediate_size=512, num_experts=8)
PROMPT_LENGTHS = (5, 17, 300)  # 300 > the tiny model's sliding window: its sliding caches are trimmed


@pytest.fixture(scope="module")
def model_folders(tiny_model_dir):
    scratch = Path(tempfile.mkdtemp(prefix="npc-fast-"))
    return {"tiny": tiny_model_dir, "built-in": default_model_dir(),
            "85M": build_tiny_model(scratch / "m85", MODEL_85M)}


def _backends(folder):
    return (DiffusionGemmaBackend.from_pretrained(folder, runner="fast"),
            DiffusionGemmaBackend.from_pretrained(folder, runner="general"))


def _scale_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return (ours - reference).abs().max().item() / max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("name", ["tiny", "built-in", "85M"])
def test_fast_forward_matches_transformers(model_folders, name):
    fast, general = _backends(model_folders[name])
    assert (fast.runner, general.runner) == ("fast", "general")
    torch.manual_seed(0)
    vocab, canvas_length = general.vocab_size, general.canvas_length
    general_caches, fast_caches = [], []
    with torch.inference_mode():
        for length in PROMPT_LENGTHS:
            ids = [int(t) for t in torch.randint(3, vocab, (length,))]
            reference, ours = general.new_cache(), fast.new_cache()
            for start, end in ((0, length // 2), (length // 2, length)):  # two chunks: the second reads the first
                general.encode_chunk(reference, ids[start:end], start)
                fast.encode_chunk(ours, ids[start:end], start)
            for theirs, mine in zip(reference.layers, ours.layers):
                assert mine.keys.shape == theirs.keys.shape
                assert _scale_error(mine.keys, theirs.keys) <= 1e-5 and _scale_error(mine.values, theirs.values) <= 1e-5
            general_caches.append(reference)
            fast_caches.append(ours)
        cache, padding = merge_caches(general.new_cache(), general_caches)
        batch = len(PROMPT_LENGTHS)
        canvas = torch.randint(0, vocab, (batch, canvas_length))
        lengths = torch.tensor([cache_length(c) for c in general_caches])
        positions = lengths[:, None] + torch.arange(canvas_length)[None]
        decoder_mask = F.pad(padding, (0, canvas_length), value=True)
        general_masks = general.decoder_masks(canvas, cache, decoder_mask)
        fast_masks = fast.decoder_masks(canvas, cache, decoder_mask)
        signals = [(None, None), (torch.randn(batch, canvas_length, vocab) * 3, None),
                   (torch.randn(batch, canvas_length, vocab), torch.tensor([True, False, True]))]
        for is_dense in (False, True):  # routed experts (the CPU's form past a few tokens), dense ones
            fast.fast.is_dense_experts = is_dense
            for logits, signal_mask in signals:
                reference = general.denoise(canvas, logits, cache, general_masks, positions, signal_mask)
                ours = fast.denoise(canvas, logits, cache, fast_masks, positions, signal_mask)
                assert ours.dtype == torch.float32 and ours.shape == reference.shape
                assert (ours - reference).abs().max().item() <= 1e-5, (name, is_dense)
        fast.fast.is_dense_experts = None
        # And through our own encoder's caches (its float32 rounding carried into the decoder).
        own_cache, own_padding = merge_caches(fast.new_cache(), fast_caches)
        ours = fast.denoise(canvas, signals[1][0], own_cache, own_padding, positions)
        reference = general.denoise(canvas, signals[1][0], cache, general_masks, positions)
        assert _scale_error(ours, reference) <= 2e-5, name


@pytest.mark.parametrize("name", ["tiny", "built-in"])
def test_the_engine_fills_token_for_token_the_same(model_folders, name):
    results = {}
    for runner in ("fast", "general"):
        engine = Engine(DiffusionGemmaBackend.from_pretrained(model_folders[name], runner=runner))
        handles = [engine.submit(SHOPKEEPER_TEMPLATE, prompt, prefix="You are Brom, a gruff smith.", seed=seed)
                   for seed, prompt in enumerate(["Any work?", "What do you sell, and how much for the sword?",
                                                  "Hello.", "Any work?"])]  # the last one hits the prefix cache
        results[runner] = [(r.fields, r.num_steps, r.num_cached_prompt_tokens)
                           for r in (engine.wait(h) for h in handles)]
    assert results["fast"] == results["general"]
    assert results["fast"][3][2] > 0


def test_a_configuration_it_does_not_cover_falls_back_with_a_log_line(tiny_model_dir, caplog):
    model = DiffusionGemmaBackend.from_pretrained(tiny_model_dir, runner="general").model
    model.config.text_config.hidden_activation = "relu"
    assert "hidden_activation 'relu'" in unsupported_reason(model)
    tokenizer = DiffusionGemmaBackend.from_pretrained(tiny_model_dir).tokenizer
    with caplog.at_level(logging.WARNING, logger="npc_engine.models"):
        backend = DiffusionGemmaBackend(model, tokenizer, str(tiny_model_dir), runner="fast")
    assert backend.runner == "general" and backend.fast is None
    assert "does not cover" in caplog.text and "hidden_activation" in caplog.text
    with pytest.raises(ModelLoadError, match="fast runner does not cover"):
        DiffusionGemmaBackend(model, tokenizer, str(tiny_model_dir), runner="fast", strict=True)

"""Shared fixtures: tiny random DiffusionGemma checkpoints built locally (nothing downloads)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from npc_engine.diffusion import DiffusionSettings
from npc_engine.engine import Engine
from npc_engine.models import DiffusionGemmaBackend, TinyModelSpec, build_tiny_model

TORCH_THREADS = max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(TORCH_THREADS)


@pytest.fixture(autouse=True)
def _torch_threads_stay_put():
    """A test that runs a command in-process (`--threads` sets torch's, process-wide) leaves the
    next test the session's thread count: float32 sums, and so near-ties, depend on it."""
    yield
    if torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def backend(tiny_model_dir) -> DiffusionGemmaBackend:
    return DiffusionGemmaBackend.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def engine(backend) -> Engine:
    return Engine(backend)


def sharpen(backend: DiffusionGemmaBackend, factor: float) -> DiffusionGemmaBackend:
    """Scale the final norm so random logits become peaky: steps then accept and stop early."""
    with torch.no_grad():
        backend.model.model.decoder.norm.weight.mul_(factor)
    return backend


@pytest.fixture(scope="session")
def random_engines(tmp_path_factory: pytest.TempPathFactory) -> list[Engine]:
    """Engines over differently-seeded random weights, one of them with sharp logits."""
    engines = []
    for seed in (1, 2, 3):
        directory = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{seed}"), TinyModelSpec(seed=seed))
        backend = DiffusionGemmaBackend.from_pretrained(directory, device="cpu")
        if seed == 3:
            sharpen(backend, 40.0)
        settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
        engines.append(Engine(backend, settings.with_overrides(max_denoising_steps=4)))
    return engines

SHOPKEEPER_TEMPLATE = str(Path(__file__).resolve().parent.parent / "schemas" / "templates" / "shopkeeper_reply.json")

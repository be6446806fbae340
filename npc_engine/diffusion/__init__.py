"""Sampler math: acceptance, renoise, schedules, stopping, constraints.

The engine's runners (one per backend) are the step implementations and share this module.
`DiffusionSettings` and `RequestNoise` are plain Python/numpy; the torch-bound names (the
sampler's noise sources, constraints) load on first use, so the ONNX Runtime backend can run
without PyTorch installed.
"""

from typing import Any

from .noise import RequestNoise
from .settings import DiffusionSettings

_TORCH_NAMES = {
    "BatchNoise": "sampler", "NoiseSource": "sampler", "RowNoise": "sampler",
    "CanvasConstraint": "constraint",
}

__all__ = [
    "BatchNoise",
    "CanvasConstraint",
    "DiffusionSettings",
    "NoiseSource",
    "RequestNoise",
    "RowNoise",
]


def __getattr__(name: str) -> Any:
    module = _TORCH_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(f".{module}", __name__), name)

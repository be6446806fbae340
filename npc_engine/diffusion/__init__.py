"""Sampler math: acceptance, renoise, schedules, stopping, constraints.

The engine's runners (one per backend) are the step implementations and share this module.
`DiffusionSettings` and `RequestNoise` are plain Python/numpy; the torch-bound names (the
sampler's noise sources, constraints) load on first use (`npc_engine._lazy`), so the ONNX Runtime
backend can run without PyTorch installed.
"""

from .._lazy import lazy_exports
from .noise import RequestNoise
from .settings import DiffusionSettings

_TORCH_EXPORTS = {
    "BatchNoise": ".sampler", "NoiseSource": ".sampler", "RowNoise": ".sampler",
    "CanvasConstraint": ".constraint",
}

__all__ = sorted(["DiffusionSettings", "RequestNoise", *_TORCH_EXPORTS])
__getattr__, __dir__ = lazy_exports(__name__, _TORCH_EXPORTS)

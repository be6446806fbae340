"""Sampler math and the step-wise block-diffusion loop."""

from .constraint import CanvasConstraint
from .loop import BlockDiffusion, DiffusionBatch, DiffusionOutput
from .sampler import BatchNoise, NoiseSource, RowNoise
from .settings import DiffusionSettings

__all__ = [
    "BatchNoise",
    "BlockDiffusion",
    "CanvasConstraint",
    "DiffusionBatch",
    "DiffusionOutput",
    "DiffusionSettings",
    "NoiseSource",
    "RowNoise",
]

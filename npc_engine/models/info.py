"""What a client may want to know about the loaded model, whatever the backend."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelInfo"]


@dataclass(frozen=True)
class ModelInfo:
    """What a client may want to know about the loaded model."""

    path: str
    num_parameters: int
    vocab_size: int
    canvas_length: int
    max_position_embeddings: int
    device: str
    dtype: str

"""`ModelInfo`: what a client may want to know about the loaded model, whatever the backend.

One type for every layer that speaks of it: the backends return it, the engine and the cluster
pass it on, and `hello` carries it as it is (its `model`). A leaf: pydantic only, so the wire
types may import it without loading a backend.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ModelInfo"]


class ModelInfo(BaseModel):
    """What a client may want to know about the loaded model."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: str
    num_parameters: int
    vocab_size: int
    canvas_length: int
    max_position_embeddings: int
    device: str
    dtype: str

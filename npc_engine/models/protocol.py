"""`Backend`: what the engine needs of a model backend, whichever runtime holds the weights
(`DiffusionGemmaBackend` on PyTorch, `OnnxBackend` on ONNX Runtime). The engine is typed against
this, never against one of them; each runner knows its own backend's step."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..model_info import ModelInfo

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    kind: str                 # "torch" or "onnx": which runner steps it
    path: str
    tokenizer: Any
    vocab_size: int
    canvas_length: int
    device: Any               # a torch.device, or "cpu"/"cuda" for ONNX Runtime

    @property
    def max_position_embeddings(self) -> int: ...

    @property
    def generation_config(self) -> Any: ...

    @property
    def pad_token_id(self) -> int: ...

    @property
    def eos_token_ids(self) -> list[int]: ...

    def info(self) -> ModelInfo: ...

    def new_cache(self) -> Any: ...

    def encode_chunk(self, cache: Any, token_ids: list[int] | tuple[int, ...], start: int) -> Any: ...

    def snapshot(self, cache: Any) -> Any: ...

    def restore(self, snapshot: Any) -> Any: ...

    def synchronize(self) -> None: ...

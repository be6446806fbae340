"""Model backends: `transformers` DiffusionGemma on PyTorch, and ONNX Runtime.

Nothing here imports torch or onnxruntime until a backend is asked for, so a game's install can
carry just the runtime it uses (`npc-engine[onnx]` needs no PyTorch).
"""

from typing import Any

from .default import default_model_dir, default_onnx_dir, has_default_model
from .info import ModelInfo

_LAZY = {
    "DiffusionGemmaBackend": "backend", "pick_device": "backend", "pick_dtype": "backend",
    "TinyModelSpec": "tiny", "build_tiny_model": "tiny", "build_tiny_tokenizer": "tiny",
    "OnnxBackend": "onnx_backend",
}

__all__ = [
    "DiffusionGemmaBackend",
    "ModelInfo",
    "OnnxBackend",
    "TinyModelSpec",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "default_model_dir",
    "default_onnx_dir",
    "has_default_model",
    "pick_device",
    "pick_dtype",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(f".{module}", __name__), name)

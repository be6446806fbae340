"""Model backends. Today: `transformers` DiffusionGemma; the ONNX Runtime backend comes later."""

from .backend import DiffusionGemmaBackend, ModelInfo, pick_device, pick_dtype
from .default import default_model_dir, has_default_model
from .tiny import TinyModelSpec, build_tiny_model, build_tiny_tokenizer

__all__ = [
    "DiffusionGemmaBackend",
    "ModelInfo",
    "TinyModelSpec",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "default_model_dir",
    "has_default_model",
    "pick_device",
    "pick_dtype",
]

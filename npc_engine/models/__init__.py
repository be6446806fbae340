"""Model backends: `transformers` DiffusionGemma on PyTorch, and ONNX Runtime.

Nothing here imports torch or onnxruntime until a backend is asked for (`npc_engine._lazy`), so a
game's install can carry just the runtime it uses (`npc-engine[onnx]` needs no PyTorch).
"""

from .._lazy import lazy_exports
from .default import default_model_dir, default_onnx_dir, has_default_model
from ..model_info import ModelInfo
from .protocol import Backend

_EXPORTS = {
    "DiffusionGemmaBackend": ".backend", "pick_device": ".backend", "pick_dtype": ".backend",
    "TinyModelSpec": ".tiny", "build_tiny_model": ".tiny", "build_tiny_tokenizer": ".tiny",
    "OnnxBackend": ".onnx_backend",
    "EncodedPrompt": ".prompt", "PromptEncoder": ".prompt",
}

__all__ = sorted(["Backend", "ModelInfo", "default_model_dir", "default_onnx_dir", "has_default_model", *_EXPORTS])
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

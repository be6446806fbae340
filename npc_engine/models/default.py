"""The model that ships inside the package: trained by `npc-engine train` (see docs/model-card.md)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_model_dir", "default_onnx_dir", "has_default_model"]


def default_model_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "default_model"


def has_default_model() -> bool:
    folder = default_model_dir()
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def default_onnx_dir() -> Path:
    """The default model exported for ONNX Runtime (`npc-engine export-onnx`), shipped beside it."""
    return default_model_dir() / "onnx"

"""Train small DiffusionGemma-architecture models on NPC dialogue (procedural or your own)."""

from .data import DataConfig, DataError, Sample, combinations, expected_emotion, generate, load_jsonl, stream
from .trainer import PRESETS, TrainConfig, TrainError, train

__all__ = ["PRESETS", "DataConfig", "DataError", "Sample", "TrainConfig", "TrainError", "combinations",
           "expected_emotion", "generate", "load_jsonl", "stream", "train"]

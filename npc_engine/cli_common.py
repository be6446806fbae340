"""What several CLI commands share: the backend flags, which model folder to load, and the
runner note of the "serving on" line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["add_backend_flags", "default_num_threads", "model_path", "runner_note", "tiny_fallback_dir"]


def tiny_fallback_dir() -> Path:
    """Where a tiny random model is built when the shipped default model is missing."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache_root / "npc-engine" / "tiny-random-v1"


def model_path(requested: str | None, backend: str = "torch") -> Path | None:
    """The model folder to load: the one asked for, else None (the shipped default model), else,
    if the installation lacks it, a tiny random-weight model (with a warning; PyTorch only)."""
    from .models import has_default_model

    if requested:
        return Path(requested)
    if has_default_model() or backend == "onnx":
        return None
    from .models import build_tiny_model

    directory = tiny_fallback_dir()
    print(f"npc-engine: the shipped default model is missing; using a tiny random-weight model at {directory} "
          "(its lines are noise, but every field is valid for the template)", file=sys.stderr)
    if not (directory / "config.json").is_file():
        build_tiny_model(directory)
    return directory


def default_num_threads() -> int:
    """The cores a game leaves the engine: all but one (its main thread), at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


def runner_note(engine: Engine) -> str:
    """" (NAME runner)": what the engine's runner says runs, after any fallback."""
    return f" ({engine.core.runner.name} runner)"


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="torch: a DiffusionGemma checkpoint on PyTorch; onnx: a folder from "
                             "`npc-engine export-onnx` on ONNX Runtime (no PyTorch needed)")
    parser.add_argument("--strict", action="store_true",
                        help="fail instead of falling back: onnx, to the CPU when --device cuda is unavailable; "
                             "torch, to the general runner when the fast one does not cover the model, or to an "
                             "eager step when CUDA graph capture or torch.compile fails")
    parser.add_argument("--runner", choices=("fast", "static", "compiled", "general"), default="fast",
                        help="torch: fast (our own DiffusionGemma forward where the model's configuration is "
                             "covered, the default: on CUDA the static-shape runner with CUDA graphs), static "
                             "(the static-shape runner on any device), compiled (static, its step through "
                             "torch.compile: on a CPU 1.5-1.75x as fast as fast's, after about 2 minutes of "
                             "compiling at start-up) or general (transformers' forward)")
    parser.add_argument("--threads", type=int, default=default_num_threads(),
                        help="CPU threads for the model (torch or onnxruntime; default: the cores the game "
                             f"leaves, one less than this machine's: {default_num_threads()})")

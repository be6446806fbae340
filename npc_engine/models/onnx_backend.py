"""The ONNX Runtime backend: an exported model folder run without PyTorch.

A folder written by `npc-engine export-onnx` holds `manifest.json`, `encoder.onnx`,
`decoder_step.onnx` and `tokenizer.json`. The encoder grows one request's cache by a chunk of
tokens; the decoder step runs one batched denoising step, sampler included (see
`npc_engine.export.graphs`). Caches are numpy arrays on the host, never mutated (an encode
returns new arrays), so a snapshot for the prefix cache is the cache itself.

The decoder step runs through an IO binding: a batch's stacked cache, masks and positions are
bound once and stay bound (on the GPU, uploaded once) while the same requests step together;
each step rebinds only the canvas, the draws and the previous step's logits, which stay where
the step wrote them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ConfigError, GenerationError, ModelLoadError
from ..model_info import ModelInfo
from .onnx_tokenizer import OnnxTokenizer

__all__ = ["ArrayCache", "MANIFEST_FILE", "MANIFEST_FORMAT", "MANIFEST_VERSION", "OnnxBackend", "StepBinding"]

log = logging.getLogger("npc_engine.models")

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "npc-engine-onnx"
MANIFEST_VERSION = 1
_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class ArrayCache:
    """One request's encoder cache: keys then values per layer, (1, heads, tokens, dim) float32."""

    arrays: tuple[np.ndarray, ...]
    num_tokens: int

    @property
    def num_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


@dataclass
class StepBinding:
    """A batch's decoder inputs that stay fixed while the same requests step together."""

    io: Any
    batch_size: int


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, checked for format and version; ModelLoadError names the file."""
    if not folder.is_dir():
        raise ModelLoadError(f"ONNX model folder {str(folder)!r} does not exist or is not a folder",
                             path=str(folder))
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ModelLoadError(f"{str(path)!r} is missing: not a folder written by `npc-engine export-onnx`",
                             path=str(path))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {str(path)!r}: {exc}", path=str(path)) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelLoadError(f"{str(path)!r} is not an npc-engine ONNX manifest", path=str(path))
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise ModelLoadError(
            f"{str(path)!r} was exported by another version of npc-engine (format_version "
            f"{manifest.get('format_version')!r}, this version reads {MANIFEST_VERSION}); export the "
            "model again with this version", path=str(path))
    return manifest


def _pick_providers(ort: Any, device: str | None, strict: bool) -> tuple[list[str], str]:
    if device is not None and device not in _DEVICES:
        raise ConfigError(f"device must be one of {_DEVICES} or None, got {device!r}")
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        message = (f"CUDAExecutionProvider was asked for but this onnxruntime offers {available} "
                   "(install onnxruntime-gpu: pip install 'npc-engine[gpu]')")
        if strict:
            raise ModelLoadError(message, path="CUDAExecutionProvider")
        log.warning("%s; running on CPUExecutionProvider", message)
    if has_cuda and device != "cpu":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
    return ["CPUExecutionProvider"], "cpu"


class OnnxBackend:
    """An exported DiffusionGemma-architecture model on ONNX Runtime (CPU or CUDA)."""

    kind = "onnx"

    def __init__(self, folder: Path, manifest: dict[str, Any], encoder: Any, decoder: Any,
                 tokenizer: OnnxTokenizer, device: str) -> None:
        self.path = str(folder)
        self.manifest = manifest
        self.encoder, self.decoder = encoder, decoder
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = "float32"
        self._ortvalue_on_device: Any = None  # OrtValue.ortvalue_from_numpy, on a GPU only
        if device != "cpu":
            import onnxruntime as ort
            self._ortvalue_on_device = ort.OrtValue.ortvalue_from_numpy
        model = manifest["model"]
        self.vocab_size: int = int(model["vocab_size"])
        self.canvas_length: int = int(model["canvas_length"])
        self.max_position_embeddings: int = int(model["max_position_embeddings"])
        self.num_layers: int = len(model["layer_types"])
        self.full_layer: int = model["layer_types"].index("full_attention")
        self.pad_token_id: int = int(model["pad_token_id"])
        self.eos_token_ids: list[int] = [int(e) for e in model["eos_token_ids"]]
        self._kv_shapes = [tuple(shape) for shape in model["kv_shapes"]]  # (heads, dim) per layer
        settings = manifest["settings"]
        self.generation_config = SimpleNamespace(
            **{k: settings[k] for k in ("max_denoising_steps", "t_min", "t_max", "stability_threshold",
                                        "confidence_threshold")},
            sampler_config=SimpleNamespace(entropy_bound=settings["entropy_bound"]))
        self._key_names = [f"key_{i}" for i in range(self.num_layers)]
        self._value_names = [f"value_{i}" for i in range(self.num_layers)]

    @classmethod
    def from_folder(cls, path: str | Path, *, device: str | None = None, strict: bool = False,
                    num_threads: int | None = None, allow_spinning: bool = False) -> "OnnxBackend":
        """Load an exported folder. `device` "cuda" / "cpu" / None (CUDA when onnxruntime has it);
        an unavailable CUDA falls back to CPU with a warning, or raises with `strict`.

        `num_threads`: onnxruntime's intra-op threads (default: one per physical core; a game
        usually wants fewer). `allow_spinning`: idle workers spin instead of sleeping (faster
        steps with many threads, at the price of CPU time the game could use; off by default).
        """
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ConfigError(f"num_threads must be an integer >= 1, got {num_threads!r}")
        folder = Path(path).expanduser()
        manifest = read_manifest(folder)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelLoadError("the ONNX backend needs onnxruntime: pip install 'npc-engine[onnx]' "
                                 "(or 'npc-engine[gpu]' for CUDA)", path=str(folder)) from exc
        providers, picked = _pick_providers(ort, device, strict)
        graph_paths = {}
        for name in ("encoder", "decoder_step"):
            entry = manifest.get("graphs", {}).get(name)
            graph_path = folder / (entry or {}).get("file", f"{name}.onnx")
            if entry is None or not graph_path.is_file():
                raise ModelLoadError(f"the {name} graph {str(graph_path)!r} is missing from the exported "
                                     "folder", path=str(graph_path))
            graph_paths[name] = graph_path
        tokenizer_entry = manifest["tokenizer"]
        tokenizer_path = folder / tokenizer_entry["file"]
        if not tokenizer_path.is_file():
            raise ModelLoadError(f"the tokenizer {str(tokenizer_path)!r} is missing", path=str(tokenizer_path))
        if _sha256(tokenizer_path) != tokenizer_entry["sha256"]:
            raise ModelLoadError(
                f"the tokenizer {str(tokenizer_path)!r} is not the one this model was exported with "
                "(its sha256 differs from the manifest's); export the model again or restore the file",
                path=str(tokenizer_path))
        framing = tokenizer_entry.get("chat_framing")
        tokenizer = OnnxTokenizer(tokenizer_path, special_ids=tokenizer_entry["special_ids"],
                                  added_ids=tokenizer_entry["added_ids"],
                                  chat_framing=tuple(framing) if framing else None)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = num_threads
        # By default idle worker threads sleep instead of spinning: between steps the cores
        # belong to the game.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        sessions = {}
        for name, graph_path in graph_paths.items():
            try:
                sessions[name] = ort.InferenceSession(str(graph_path), options, providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelLoadError(f"onnxruntime cannot load {str(graph_path)!r}: {exc}",
                                     path=str(graph_path)) from exc
        return cls(folder, manifest, sessions["encoder"], sessions["decoder_step"], tokenizer, picked)

    def info(self) -> ModelInfo:
        return ModelInfo(path=self.path, num_parameters=int(self.manifest["model"]["num_parameters"]),
                         vocab_size=self.vocab_size, canvas_length=self.canvas_length,
                         max_position_embeddings=self.max_position_embeddings,
                         device=self.device, dtype=self.dtype)

    def synchronize(self) -> None:
        """Runs are synchronous (outputs are fetched or bound when `run` returns)."""

    # -- the encoder ------------------------------------------------------------------------

    def new_cache(self) -> ArrayCache:
        arrays = [np.zeros((1, heads, 0, dim), np.float32) for heads, dim in self._kv_shapes]
        return ArrayCache(tuple(arrays + [a.copy() for a in arrays]), 0)

    def encode_chunk(self, cache: ArrayCache, token_ids: list[int] | tuple[int, ...], start: int) -> ArrayCache:
        if start != cache.num_tokens:
            raise GenerationError(f"a chunk must continue the cache: start {start}, cached {cache.num_tokens}")
        feed = {"input_ids": np.asarray([token_ids], dtype=np.int64)}
        feed.update(zip([f"past_{n}" for n in (*self._key_names, *self._value_names)], cache.arrays))
        outputs = self.encoder.run(None, feed)
        return ArrayCache(tuple(outputs), cache.num_tokens + len(token_ids))

    def snapshot(self, cache: ArrayCache) -> ArrayCache:
        return cache  # never mutated

    def restore(self, snapshot: ArrayCache) -> ArrayCache:
        return snapshot

    # -- the decoder step -------------------------------------------------------------------

    def bind_batch(self, caches: list[ArrayCache], logit_bias: np.ndarray) -> tuple[StepBinding, np.ndarray]:
        """Stack single-request caches (left-padded to the longest) and bind them with the batch's
        masks and `logit_bias` (B, L, V float32: 0, or a huge negative where a token is forbidden). Returns the binding and each row's cache length (its canvas starts there)."""
        lengths = np.array([c.num_tokens for c in caches], dtype=np.int64)
        width = int(lengths.max())
        key_mask = np.zeros((len(caches), width), dtype=np.bool_)
        for row, length in enumerate(lengths):
            key_mask[row, width - length:] = True
        io = self.decoder.io_binding()
        for index, name in enumerate((*self._key_names, *self._value_names)):
            rows = [c.arrays[index] for c in caches]
            size = max(r.shape[2] for r in rows)
            stacked = np.zeros((len(rows), rows[0].shape[1], size, rows[0].shape[3]), np.float32)
            for row, array in enumerate(rows):
                stacked[row, :, size - array.shape[2]:] = array[0]
            self._bind(io, name, stacked)
        positions = lengths[:, None] + np.arange(self.canvas_length, dtype=np.int64)[None, :]
        self._bind(io, "key_mask", key_mask)
        self._bind(io, "position_ids", positions)
        self._bind(io, "logit_bias", np.ascontiguousarray(logit_bias, dtype=np.float32))
        for name in ("next_canvas", "argmax_canvas", "mean_entropy"):
            io.bind_output(name, "cpu")
        io.bind_output("logits", self.device)
        return StepBinding(io, len(caches)), lengths

    def _bind(self, io: Any, name: str, array: np.ndarray) -> None:
        if self._ortvalue_on_device is None:
            io.bind_cpu_input(name, array)
        else:
            io.bind_ortvalue_input(name, self._ortvalue_on_device(array, self.device, 0))

    def run_step(self, binding: StepBinding, canvas: np.ndarray, self_conditioning_logits: Any,
                 has_self_conditioning: np.ndarray, temperature: np.ndarray, uniform: np.ndarray,
                 renoise: np.ndarray, entropy_bound: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """One step. `self_conditioning_logits` is the previous step's logits handle (left where the
        step wrote them) or a host array. Returns host (next canvas, argmax canvas, mean entropy)
        and this step's logits handle."""
        io = binding.io
        self._bind(io, "canvas", canvas)
        if isinstance(self_conditioning_logits, np.ndarray):
            self._bind(io, "self_conditioning_logits", self_conditioning_logits)
        else:
            io.bind_ortvalue_input("self_conditioning_logits", self_conditioning_logits)
        self._bind(io, "has_self_conditioning", has_self_conditioning)
        self._bind(io, "temperature", temperature)
        self._bind(io, "uniform", uniform)
        self._bind(io, "renoise", renoise)
        self._bind(io, "entropy_bound", np.asarray(entropy_bound, dtype=np.float32))
        self.decoder.run_with_iobinding(io)
        next_canvas, argmax_canvas, mean_entropy, logits = io.get_outputs()
        return next_canvas.numpy(), argmax_canvas.numpy(), mean_entropy.numpy(), logits

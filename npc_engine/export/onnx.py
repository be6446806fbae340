"""`npc-engine export-onnx`: a DiffusionGemma checkpoint -> a folder ONNX Runtime can run.

Writes `encoder.onnx` and `decoder_step.onnx` (see `graphs.py`), the tokenizer and
`manifest.json`, then checks its own output before it reports success: the encoder's caches and
the decoder step's logits against PyTorch within `tolerance` (of their scale: max |ONNX -
PyTorch| / max(1, max |PyTorch|)), the sampled canvases equal, and the
exported tokenizer against the original on sample texts and every single token. The folder is
written next to the target and moved into place only when every check passed.

Shapes: batch and cache length are dynamic; the canvas is fixed at the checkpoint's
`canvas_length` (one bucket; the engine never needs another).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..diffusion import DiffusionSettings
from ..diffusion.constants import MASKED_LOGIT
from ..diffusion.sampler import sample_with_draws
from ..errors import ExportError
from ..models.backend import DiffusionGemmaBackend
from ..models.kv import merge_caches, snapshot_cache
from ..models.onnx_backend import MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION
from .graphs import DecoderStepGraph, EncoderGraph, exportable

__all__ = ["ExportReport", "export_onnx", "torch_step_reference", "weights_sha256"]

_OPSET = 20  # 20: Gelu is one operator, not a chain of pow/tanh/mul
_CONTENT_SENTINEL = "\x00npc-engine-content\x00"
_STEP_INPUTS = ["canvas", "self_conditioning_logits", "has_self_conditioning", "position_ids", "key_mask",
                "logit_bias", "temperature", "uniform", "renoise", "entropy_bound"]
_STEP_OUTPUTS = ["next_canvas", "argmax_canvas", "mean_entropy", "logits"]


@dataclass(frozen=True)
class ExportReport:
    folder: str
    max_encoder_diff: float
    max_logit_diff: float
    tolerance: float
    num_tokens_checked: int


def _kv_names(num_layers: int, prefix: str = "") -> list[str]:
    return [f"{prefix}key_{i}" for i in range(num_layers)] + [f"{prefix}value_{i}" for i in range(num_layers)]


def _chat_framing(tokenizer: Any) -> list[str] | None:
    if not getattr(tokenizer, "chat_template", None):
        return None
    framed = tokenizer.apply_chat_template([{"role": "user", "content": _CONTENT_SENTINEL}],
                                           tokenize=False, add_generation_prompt=True)
    before, _, after = framed.partition(_CONTENT_SENTINEL)
    return [before, after]


def _export(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str],
            output_names: list[str], dynamic_axes: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, dynamo=False, opset_version=_OPSET)


def _example_caches(backend: DiffusionGemmaBackend, lengths: list[int], generator: torch.Generator) -> list:
    caches = []
    for length in lengths:
        cache = backend.new_cache()
        ids = torch.randint(0, backend.vocab_size, (length,), generator=generator).tolist()
        for start in range(0, length, 64):
            backend.encode_chunk(cache, ids[start:start + 64], start)
        caches.append(cache)
    return caches


def export_onnx(model_dir: str | Path, out_dir: str | Path, *, tolerance: float = 1e-3,
                overwrite: bool = False) -> ExportReport:
    """Export `model_dir` to `out_dir` and check it. Raises ModelLoadError (the checkpoint) or
    ExportError (the export or its check)."""
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{str(out)!r} exists and is not empty; pass overwrite=True (--overwrite)",
                          path=str(out))
    backend = DiffusionGemmaBackend.from_pretrained(model_dir, device="cpu", dtype="float32")
    model = backend.model
    text_config = backend.text_config
    if "full_attention" not in text_config.layer_types:
        raise ExportError("the ONNX export needs at least one full-attention layer; this model has "
                          f"{sorted(set(text_config.layer_types))}", path=str(model_dir))
    model.set_attn_implementation("sdpa")  # the graphs pass boolean masks, sdpa's form
    num_layers = len(text_config.layer_types)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        report = _write(backend, staging, num_layers, tolerance)
        if out.exists():
            shutil.rmtree(out)
        staging.chmod(0o755)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportReport(str(out), *report)


def _write(backend: DiffusionGemmaBackend, folder: Path, num_layers: int,
           tolerance: float) -> tuple[float, float, float, int]:
    model = backend.model
    generator = torch.Generator().manual_seed(0)
    kv_names = _kv_names(num_layers)
    with torch.no_grad(), exportable(model):
        encoder = EncoderGraph(model).eval()
        past = _empty_kv(backend, num_layers)
        ids = torch.randint(0, backend.vocab_size, (1, 7), generator=generator)
        _export(encoder, (ids, *past), folder / "encoder.onnx", ["input_ids", *_kv_names(num_layers, "past_")],
                _kv_names(num_layers, "present_"),
                {"input_ids": {1: "num_new"},
                 **{n: {2: f"num_past_{i}"} for i, n in enumerate(_kv_names(num_layers, "past_"))},
                 **{n: {2: f"num_present_{i}"} for i, n in enumerate(_kv_names(num_layers, "present_"))}})
        caches = _example_caches(backend, [5, 19], generator)
        cache, key_mask = merge_caches(backend.new_cache(), caches)
        snapshot = snapshot_cache(cache)
        step_args = _step_args(backend, key_mask, [5, 19], generator)
        _export(DecoderStepGraph(model).eval(), (*step_args, *snapshot.keys, *snapshot.values),
                folder / "decoder_step.onnx", _STEP_INPUTS + kv_names, _STEP_OUTPUTS,
                {**{n: {0: "batch"} for n in _STEP_INPUTS if n != "entropy_bound"},
                 "key_mask": {0: "batch", 1: "num_cached"},
                 **{n: {0: "batch", 2: f"num_cached_{i}"} for i, n in enumerate(kv_names)},
                 **{n: {0: "batch"} for n in _STEP_OUTPUTS}})
    tokenizer_path = folder / "tokenizer.json"
    backend.tokenizer.backend_tokenizer.save(str(tokenizer_path))
    manifest = _manifest(backend, folder, tokenizer_path, num_layers)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    from .check import check_export
    return check_export(backend, folder, tolerance)


def _empty_kv(backend: DiffusionGemmaBackend, num_layers: int) -> list[torch.Tensor]:
    cache = backend.new_cache()
    backend.encode_chunk(cache, [0], 0)
    shapes = [(layer.keys.shape[1], layer.keys.shape[3]) for layer in cache.layers]
    arrays = [torch.zeros((1, heads, 0, dim)) for heads, dim in shapes]
    return arrays + [a.clone() for a in arrays]


def _step_args(backend: DiffusionGemmaBackend, key_mask: torch.Tensor, lengths: list[int],
               generator: torch.Generator) -> tuple:
    batch, canvas_length, vocab = len(lengths), backend.canvas_length, backend.vocab_size
    positions = torch.tensor(lengths)[:, None] + torch.arange(canvas_length)[None, :]
    return (torch.randint(0, vocab, (batch, canvas_length), generator=generator),
            torch.randn((batch, canvas_length, vocab), generator=generator),
            torch.tensor([True, False][:batch]), positions, key_mask,
            torch.zeros((batch, canvas_length, vocab)).masked_fill(
                torch.rand((batch, canvas_length, vocab), generator=generator) < 0.2, MASKED_LOGIT),
            torch.full((batch,), 0.7), torch.rand((batch, canvas_length), generator=generator),
            torch.randint(0, vocab, (batch, canvas_length), generator=generator),
            torch.tensor(0.1))


def weights_sha256(checkpoint: Path) -> str:
    """One hash over a checkpoint's weight files, so an export can be matched to its source."""
    digest = hashlib.sha256()
    for path in sorted(checkpoint.glob("*.safetensors")) + sorted(checkpoint.glob("*.bin")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _manifest(backend: DiffusionGemmaBackend, folder: Path, tokenizer_path: Path, num_layers: int) -> dict:
    import onnx
    import transformers

    tokenizer = backend.tokenizer
    cache = backend.new_cache()
    backend.encode_chunk(cache, [0], 0)
    settings = DiffusionSettings.from_generation_config(backend.generation_config)
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "exported_by": {"npc_engine": __version__, "torch": torch.__version__,
                        "transformers": transformers.__version__, "onnx": onnx.__version__,
                        "opset": _OPSET},
        "model": {
            "source": Path(backend.path).name,
            "weights_sha256": weights_sha256(Path(backend.path)),
            "model_type": backend.config.model_type,
            "num_parameters": backend.info().num_parameters,
            "vocab_size": backend.vocab_size,
            "canvas_length": backend.canvas_length,
            "max_position_embeddings": backend.max_position_embeddings,
            "layer_types": list(backend.text_config.layer_types),
            "sliding_window": int(backend.text_config.sliding_window),
            "kv_shapes": [[layer.keys.shape[1], layer.keys.shape[3]] for layer in cache.layers],
            "pad_token_id": backend.pad_token_id,
            "eos_token_ids": backend.eos_token_ids,
            "dtype": "float32",
        },
        "settings": {name: getattr(settings, name) for name in (
            "max_denoising_steps", "t_min", "t_max", "entropy_bound", "stability_threshold",
            "confidence_threshold")},
        "shapes": {"batch": "dynamic", "cache_length": "dynamic",
                   "canvas": f"fixed at {backend.canvas_length} (one bucket)"},
        "graphs": {
            "encoder": {"file": "encoder.onnx", "inputs": ["input_ids", *_kv_names(num_layers, "past_")],
                        "outputs": _kv_names(num_layers, "present_")},
            "decoder_step": {"file": "decoder_step.onnx", "inputs": _STEP_INPUTS + _kv_names(num_layers),
                             "outputs": _STEP_OUTPUTS},
        },
        "tokenizer": {
            "file": tokenizer_path.name,
            "sha256": hashlib.sha256(tokenizer_path.read_bytes()).hexdigest(),
            "special_ids": sorted(int(i) for i in tokenizer.all_special_ids),
            "added_ids": sorted(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}).keys()),
            "chat_framing": _chat_framing(tokenizer),
        },
    }


def torch_step_reference(backend: DiffusionGemmaBackend, caches: list, inputs: dict[str, np.ndarray]) -> list:
    """The PyTorch engine's step (backend forward + the shared sampler) on the same inputs."""
    import torch.nn.functional as F

    cache, key_mask = merge_caches(backend.new_cache(), caches)
    canvas = torch.from_numpy(inputs["canvas"])
    masks = backend.decoder_masks(canvas, cache, F.pad(key_mask, (0, backend.canvas_length), value=True))
    with torch.inference_mode():
        logits = backend.denoise(canvas, torch.from_numpy(inputs["self_conditioning_logits"]), cache, masks,
                                 torch.from_numpy(inputs["position_ids"]).int(),
                                 torch.from_numpy(inputs["has_self_conditioning"]))
        outputs = sample_with_draws(logits, torch.from_numpy(inputs["logit_bias"]),
                                    torch.from_numpy(inputs["temperature"]), torch.from_numpy(inputs["uniform"]),
                                    torch.from_numpy(inputs["renoise"]), float(inputs["entropy_bound"]))
    return [o.numpy() for o in outputs]

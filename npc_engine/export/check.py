"""The exporter's self-check: an exported folder against the PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..diffusion.constants import MASKED_LOGIT
from ..errors import ExportError
from ..models.backend import DiffusionGemmaBackend
from ..models.kv import snapshot_cache
from ..models.onnx_backend import OnnxBackend

__all__ = ["check_export", "relative_difference"]

_SAMPLES = ["Hello there, traveller!", "  Any rumours about the mine? ", "Ünïcödé ✓ 12345",
            "<start_of_turn>user\nhi<end_of_turn>", '{"say": "x", "emotion": "calm"}']
_MIN_CANVAS_AGREEMENT = 0.99


def relative_difference(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| over the arrays' scale, max(1, max |want|): logits of a sharper model are
    larger, and float32 rounding grows with them."""
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    return float(np.abs(got - want).max(initial=0.0)) / scale


def _check_tokenizer(reference, exported, folder: Path) -> int:
    where = str(folder / "tokenizer.json")
    for text in _SAMPLES:
        for split in (False, True):
            want = list(reference.encode(text, add_special_tokens=False, split_special_tokens=split))
            if exported.encode(text, add_special_tokens=False, split_special_tokens=split) != want:
                raise ExportError(f"the exported tokenizer {where!r} encodes {text!r} differently from the "
                                  "original (mismatched tokenizer)", path=where)
    num_tokens = min(len(reference), len(exported))
    singles = [[i] for i in range(num_tokens)]
    if exported.batch_decode(singles) != reference.batch_decode(singles):
        raise ExportError(f"the exported tokenizer {where!r} decodes tokens differently from the original "
                          "(mismatched tokenizer)", path=where)
    return num_tokens


def check_export(backend: DiffusionGemmaBackend, folder: Path, tolerance: float) -> tuple[float, float, float, int]:
    """(max encoder cache diff, max logit diff, tolerance, tokens checked); ExportError past tolerance."""
    exported = OnnxBackend.from_folder(folder, device="cpu")
    num_tokens_checked = _check_tokenizer(backend.tokenizer, exported.tokenizer, folder)
    generator = torch.Generator().manual_seed(1)
    window = int(backend.text_config.sliding_window)
    lengths = [9, min(window + 21, backend.max_position_embeddings - backend.canvas_length)]
    torch_caches, onnx_caches, encoder_diff = [], [], 0.0
    for length in lengths:
        ids = torch.randint(0, backend.vocab_size, (length,), generator=generator).tolist()
        cache, array_cache = backend.new_cache(), exported.new_cache()
        for start in range(0, length, 48):
            with torch.inference_mode():
                backend.encode_chunk(cache, ids[start:start + 48], start)
            array_cache = exported.encode_chunk(array_cache, ids[start:start + 48], start)
        snapshot = snapshot_cache(cache)
        for want, got in zip((*snapshot.keys, *snapshot.values), array_cache.arrays):
            if tuple(want.shape) != got.shape:
                raise ExportError(f"encoder.onnx returns a cache of shape {got.shape}, PyTorch "
                                  f"{tuple(want.shape)}", path=str(folder / "encoder.onnx"))
            encoder_diff = max(encoder_diff, relative_difference(got, want.numpy()))
        torch_caches.append(cache)
        onnx_caches.append(array_cache)
    if not encoder_diff <= tolerance:
        raise ExportError(f"encoder.onnx differs from PyTorch by {encoder_diff:.3g} of its scale "
                          f"(tolerance {tolerance})",
                          path=str(folder / "encoder.onnx"))

    from .onnx import torch_step_reference
    batch, canvas_length, vocab = len(lengths), backend.canvas_length, backend.vocab_size
    rng = np.random.default_rng(2)
    inputs = {
        "canvas": rng.integers(0, vocab, (batch, canvas_length), dtype=np.int64),
        "self_conditioning_logits": rng.standard_normal((batch, canvas_length, vocab), dtype=np.float32),
        "has_self_conditioning": np.array([True, False]),
        "logit_bias": np.where(rng.random((batch, canvas_length, vocab)) < 0.2, MASKED_LOGIT, 0).astype(np.float32),
        "temperature": np.array([0.8, 0.5], dtype=np.float32),
        "uniform": rng.random((batch, canvas_length), dtype=np.float32),
        "renoise": rng.integers(0, vocab, (batch, canvas_length), dtype=np.int64),
        "entropy_bound": np.float32(0.1),
    }
    binding, starts = exported.bind_batch(onnx_caches, inputs["logit_bias"])
    inputs["position_ids"] = starts[:, None] + np.arange(canvas_length, dtype=np.int64)[None, :]
    got = exported.run_step(binding, inputs["canvas"], inputs["self_conditioning_logits"],
                            inputs["has_self_conditioning"], inputs["temperature"], inputs["uniform"],
                            inputs["renoise"], float(inputs["entropy_bound"]))
    want = torch_step_reference(backend, torch_caches, inputs)
    logits = got[3] if isinstance(got[3], np.ndarray) else got[3].numpy()
    allowed = inputs["logit_bias"] == 0
    logit_diff = relative_difference(logits[allowed], want[3][allowed])
    agreement = min(float((got[0] == want[0]).mean()), float((got[1] == want[1]).mean()))
    where = str(folder / "decoder_step.onnx")
    if not logit_diff <= tolerance:
        raise ExportError(f"decoder_step.onnx logits differ from PyTorch by {logit_diff:.3g} of their "
                          f"scale (tolerance {tolerance})", path=where)
    if agreement < _MIN_CANVAS_AGREEMENT:
        raise ExportError(f"decoder_step.onnx samples agree with PyTorch on only {agreement:.1%} of "
                          "positions", path=where)
    return encoder_diff, logit_diff, tolerance, num_tokens_checked

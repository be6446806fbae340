"""The DiffusionGemma backend: load a checkpoint from a local folder and expose the two forwards.

The backend owns the `transformers` model and its tokenizer. It offers exactly what a step-wise
denoising loop needs: encode tokens into a KV cache, build the decoder's attention masks, and run
one decoder forward that returns (soft-capped, float32) logits for a canvas. It never downloads:
`from_pretrained` is always called with `local_files_only=True`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion
from transformers.cache_utils import DynamicCache

from ..errors import ConfigError, ModelLoadError
from .fast_forward import FastForward, unsupported_reason
from ..model_info import ModelInfo
from .kv import KVSnapshot, restore_cache, snapshot_cache

__all__ = ["DiffusionGemmaBackend", "ModelInfo", "RUNNERS", "pick_device", "pick_dtype"]

log = logging.getLogger("npc_engine.models")

# "fast": our own forward (fast_forward.py) where the configuration is covered, in the runner that
# suits the device: on CUDA the static-shape one with CUDA graphs, elsewhere the dynamic-shape one
# (on a CPU, padding to buckets buys nothing); "static": the static-shape runner on any device;
# "compiled": the static-shape runner with its step through torch.compile (compiled at start-up);
# "general": transformers' forward, always.
RUNNERS = ("fast", "static", "compiled", "general")

_MODEL_TYPE = "diffusion_gemma"


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit choice wins."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """bfloat16 on a GPU that supports it, float32 elsewhere; an explicit choice wins."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in names:
            raise ConfigError(f"unknown dtype {dtype!r}; expected one of {sorted(names)}")
        return names[dtype]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _check_checkpoint_dir(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"model directory {str(path)!r} does not exist", path=str(path))
    if not path.is_dir():
        raise ModelLoadError(f"model path {str(path)!r} is not a directory", path=str(path))
    config_path = path / "config.json"
    if not config_path.is_file():
        found = sorted(p.name for p in path.iterdir())[:10]
        raise ModelLoadError(
            f"model directory {str(path)!r} has no config.json (found: {found}); "
            "expected a DiffusionGemma checkpoint saved with save_pretrained",
            path=str(path),
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {str(config_path)!r}: {exc}", path=str(path)) from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != _MODEL_TYPE:
        raise ModelLoadError(
            f"model directory {str(path)!r} holds a {model_type!r} checkpoint; "
            f"npc-engine needs model_type {_MODEL_TYPE!r} (DiffusionGemmaForBlockDiffusion)",
            path=str(path),
        )
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    if not has_weights:
        raise ModelLoadError(
            f"model directory {str(path)!r} has a config.json but no weight files "
            "(*.safetensors or *.bin)",
            path=str(path),
        )


class DiffusionGemmaBackend:
    """A loaded DiffusionGemma model plus tokenizer, with step-level forwards."""

    kind = "torch"

    def __init__(self, model: DiffusionGemmaForBlockDiffusion, tokenizer: Any, path: str, *,
                 runner: str = "general", strict: bool = False) -> None:
        """`runner="fast"`, "static" or "compiled": prefill and denoise through our own forward
        (`fast_forward.py`) where the configuration is covered, else (a log line; ModelLoadError
        with `strict`) transformers' forward, which `runner="general"` always uses (training
        does). `self.runner` says what runs: "static" (the engine's static-shape runner: "fast"
        on CUDA, or asked for), "compiled", "fast" or "general"."""
        if runner not in RUNNERS:
            raise ConfigError(f"runner must be one of {RUNNERS}, got {runner!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.path = path
        self.config = model.config
        self.text_config = model.config.get_text_config(decoder=True)
        self.vocab_size: int = int(self.text_config.vocab_size)
        self.canvas_length: int = int(model.config.canvas_length)
        self.device: torch.device = model.device
        self.dtype: torch.dtype = model.dtype
        self.strict = strict
        self.fast: FastForward | None = None
        if runner != "general":
            reason = unsupported_reason(model)
            if reason is None:
                self.fast = FastForward(model)
            elif strict:
                raise ModelLoadError(f"the fast runner does not cover this model ({reason}); use runner 'general'",
                                     path=path)
            else:
                log.warning("the fast runner does not cover %s (%s); using transformers' forward", path, reason)
        if self.fast is None:
            self.runner = "general"
        else:
            self.runner = "static" if runner == "fast" and self.device.type == "cuda" else runner

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        runner: str = "fast",
        strict: bool = False,
        num_threads: int | None = None,
    ) -> "DiffusionGemmaBackend":
        """Load model and tokenizer from one local folder. Raises `ModelLoadError` on any problem.
        `runner`: "fast" (the default: our own forward where it applies), "static", "compiled" or
        "general".
        `num_threads`: `torch.set_num_threads` (process-wide; None leaves torch's choice)."""
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
                raise ConfigError(f"num_threads must be an integer >= 1, got {num_threads!r}")
            torch.set_num_threads(num_threads)
        path = Path(path).expanduser()
        _check_checkpoint_dir(path)
        target_device = pick_device(device)
        target_dtype = pick_dtype(target_device, dtype)
        try:
            model = DiffusionGemmaForBlockDiffusion.from_pretrained(
                str(path), local_files_only=True, dtype=target_dtype
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load DiffusionGemma weights from {str(path)!r}: {exc}",
                                 path=str(path)) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load the tokenizer from {str(path)!r}: {exc}",
                                 path=str(path)) from exc
        model.to(target_device)
        return cls(model, tokenizer, str(path), runner=runner, strict=strict)

    def info(self) -> ModelInfo:
        return ModelInfo(
            path=self.path,
            num_parameters=sum(p.numel() for p in self.model.parameters()),
            vocab_size=self.vocab_size,
            canvas_length=self.canvas_length,
            max_position_embeddings=int(self.text_config.max_position_embeddings),
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
        )

    @property
    def max_position_embeddings(self) -> int:
        return int(self.text_config.max_position_embeddings)

    @property
    def generation_config(self) -> Any:
        return self.model.generation_config

    # -- token ids -------------------------------------------------------------------------

    @property
    def pad_token_id(self) -> int:
        pad = self.model.generation_config.pad_token_id
        return int(pad if pad is not None else self.text_config.pad_token_id)

    @property
    def eos_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.text_config.eos_token_id
        if eos is None:
            return []
        return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]

    # -- forwards --------------------------------------------------------------------------

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.text_config)

    def encode_chunk(self, cache: DynamicCache, token_ids: list[int] | tuple[int, ...], start: int) -> DynamicCache:
        """Encode one request's next `token_ids` (positions from `start`) into its cache."""
        device = self.device
        end = start + len(token_ids)
        ids = torch.tensor([list(token_ids)], dtype=torch.long, device=device)
        positions = torch.arange(start, end, dtype=torch.int32, device=device).unsqueeze(0)
        if self.fast is not None:
            self.fast.encode(ids, positions, cache)
            return cache
        attention_mask = torch.ones((1, end), dtype=torch.bool, device=device)
        self.encode(ids, attention_mask, cache, positions)
        return cache

    def snapshot(self, cache: DynamicCache) -> KVSnapshot:
        """An immutable copy-free view of a request's cache, for the prefix cache."""
        return snapshot_cache(cache)

    def restore(self, snapshot: KVSnapshot) -> DynamicCache:
        """A cache holding a snapshot; encoding more into it leaves the snapshot as it was."""
        return restore_cache(self.new_cache(), snapshot)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Run the causal encoder over `input_ids`, appending their keys/values to `cache`.

        `attention_mask` is the 2D boolean mask over everything cached so far plus `input_ids`.
        Returns the encoder's last hidden states (training reads next-token logits from them).
        """
        encoder = self.model.model.encoder
        shape_only = torch.empty((input_ids.shape[0], input_ids.shape[1], 0),
                                 dtype=self.dtype, device=input_ids.device)
        mask_mapping = encoder.create_masks_for_generate(
            config=self.config, inputs_embeds=shape_only, attention_mask=attention_mask,
            past_key_values=cache, position_ids=position_ids,
        )
        return encoder(input_ids=input_ids.contiguous(), attention_mask=mask_mapping,
                       past_key_values=cache, position_ids=position_ids).last_hidden_state

    def decoder_masks(self, canvas: torch.Tensor, cache: DynamicCache,
                      decoder_attention_mask: torch.Tensor) -> Any:
        """The decoder's masks (what `denoise` takes); fixed for a canvas while it is denoised, so
        build them once. `decoder_attention_mask` (B, cached + canvas) marks real entries: the fast
        forward keeps its cached part, transformers' builds its 4D masks from it."""
        if self.fast is not None:
            return decoder_attention_mask[:, : decoder_attention_mask.shape[1] - canvas.shape[1]]
        return self.model.model.decoder.create_diffusion_decoder_attention_mask(
            config=self.config, inputs_embeds=canvas.unsqueeze(-1), past_key_values=cache,
            decoder_attention_mask=decoder_attention_mask,
        )

    def denoise(
        self,
        canvas: torch.Tensor,
        self_conditioning_logits: torch.Tensor | None,
        cache: DynamicCache,
        masks: dict,
        position_ids: torch.Tensor,
        self_conditioning_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One decoder forward over `canvas`: float32 logits of shape (batch, canvas, vocab).

        `self_conditioning_mask` (B,) bool: rows set to False get no self-conditioning signal,
        exactly as if their logits were None (their first step shares a batch with later ones).
        """
        if self.fast is not None:
            return self.fast.denoise(canvas, self_conditioning_logits, [layer.keys for layer in cache.layers],
                                     [layer.values for layer in cache.layers], masks, position_ids,
                                     self_conditioning_mask)
        return self.model(
            decoder_input_ids=canvas,
            self_conditioning_logits=self_conditioning_logits,
            self_conditioning_mask=self_conditioning_mask,
            decoder_attention_mask=masks,
            past_key_values=cache,
            decoder_position_ids=position_ids,
        ).logits

    def synchronize(self) -> None:
        """Wait for queued device work, so a timing is device time rather than launch time."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

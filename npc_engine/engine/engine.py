"""`Engine`: the public entry point. Load a model, fill templates."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..diffusion import BlockDiffusion, DiffusionSettings, RowNoise
from ..errors import PromptError
from ..models import DiffusionGemmaBackend
from ..templates import Template, TemplateCompiler, load_template, render

__all__ = ["Engine", "FillResult"]

# Stands in for the player's text while the chat template is rendered, so the text itself can
# be tokenized with special-token parsing off (player text can never forge a turn marker).
_CONTENT_SENTINEL = "\x00npc-engine-content\x00"


@dataclass(frozen=True)
class FillResult:
    """A filled template: the fields plus what it cost."""

    template: str
    fields: dict[str, Any]
    seed: int
    num_steps: int
    tokens_per_forward: float
    elapsed_ms: float
    num_prompt_tokens: int


class Engine:
    """Fills dialogue templates with a DiffusionGemma model.

    >>> engine = Engine.from_pretrained("path/to/model")
    >>> engine.fill(template, "Any rumours?", seed=7).fields
    """

    def __init__(self, backend: DiffusionGemmaBackend, settings: DiffusionSettings | None = None) -> None:
        self.backend = backend
        self.settings = settings or DiffusionSettings.from_generation_config(backend.model.generation_config)
        self.compiler = TemplateCompiler.for_backend(backend)
        self.loop = BlockDiffusion(backend, self.settings)
        self._turn_prefix_ids, self._turn_suffix_ids = self._chat_framing()

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | None = None,
                        dtype: str | None = None, **setting_overrides: Any) -> "Engine":
        """Load a local DiffusionGemma checkpoint (model + tokenizer in one folder)."""
        backend = DiffusionGemmaBackend.from_pretrained(path, device=device, dtype=dtype)
        settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
        return cls(backend, settings.with_overrides(**setting_overrides))

    # -- inputs ---------------------------------------------------------------------------

    def _chat_framing(self) -> tuple[list[int], list[int]]:
        """Token ids the chat template puts before and after a user turn's text (fixed per model)."""
        tokenizer = self.backend.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            return [], []
        framed = tokenizer.apply_chat_template(
            [{"role": "user", "content": _CONTENT_SENTINEL}], tokenize=False, add_generation_prompt=True)
        before, _, after = framed.partition(_CONTENT_SENTINEL)

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False)) if text else []

        return encode(before), encode(after)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of `prompt` as a user turn, via the model's chat template when it has one."""
        if not isinstance(prompt, str):
            raise PromptError(f"prompt must be a string, got {type(prompt).__name__}")
        text_ids = self.backend.tokenizer.encode(prompt, add_special_tokens=False, split_special_tokens=True)
        ids = [*self._turn_prefix_ids, *text_ids, *self._turn_suffix_ids]
        limit = int(self.backend.text_config.max_position_embeddings) - self.backend.canvas_length
        if len(ids) > limit:
            raise PromptError(
                f"prompt is {len(ids)} tokens; this model takes at most {limit} "
                f"({self.backend.text_config.max_position_embeddings} positions less a "
                f"{self.backend.canvas_length}-token canvas)")
        if not ids:
            raise PromptError("prompt encodes to no tokens")
        return ids

    @staticmethod
    def resolve_template(template: Template | Mapping[str, Any] | str | Path) -> Template:
        if isinstance(template, Template):
            return template
        if isinstance(template, Mapping):
            return load_template(dict(template))
        return load_template(template)

    # -- generation -----------------------------------------------------------------------

    def fill(self, template: Template | Mapping[str, Any] | str | Path, prompt: str,
             seed: int | None = None) -> FillResult:
        """Fill `template` for `prompt`. The same seed gives the same output."""
        template = self.resolve_template(template)
        plan = self.compiler.compile(template)
        prompt_ids = self.encode_prompt(prompt)
        seed = secrets.randbits(63) if seed is None else int(seed)
        device = self.backend.device
        generator = torch.Generator(device=device).manual_seed(seed)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.loop.run(
                torch.tensor([prompt_ids], dtype=torch.long), max_new_tokens=self.backend.canvas_length,
                noise=RowNoise([generator]), constraints=[plan.constraint(device)],
            )
            canvas = output.sequences[0, len(prompt_ids):]
            fields = render(plan, canvas, output.last_logits[0], self.backend.tokenizer)
        self.backend.synchronize()
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return FillResult(
            template=template.name, fields=fields, seed=seed, num_steps=output.num_steps,
            tokens_per_forward=float(output.tokens_per_forward[0]), elapsed_ms=elapsed_ms,
            num_prompt_tokens=len(prompt_ids),
        )

"""Denoising settings: the knobs of DiffusionGemma's sampler, read from the model's generation config."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DiffusionSettings"]

# transformers' own fallbacks when a checkpoint's generation_config.json leaves a knob unset.
_DEFAULTS: dict[str, Any] = {
    "max_denoising_steps": 48,
    "t_min": 0.4,
    "t_max": 0.8,
    "entropy_bound": 0.1,
    "stability_threshold": 1,
    "confidence_threshold": 0.005,
}


@dataclass(frozen=True)
class DiffusionSettings:
    """How a canvas is denoised. Same meaning as in `DiffusionGemmaGenerationConfig`.

    - `max_denoising_steps`: step cap per canvas.
    - `t_max` -> `t_min`: linear temperature schedule from the first step to the last.
    - `entropy_bound`: accept the lowest-entropy positions while their summed entropy, less the
      largest, stays within this bound.
    - `stability_threshold` / `confidence_threshold`: stop a canvas once its argmax has been the
      same for this many steps and its mean entropy is below the threshold.
    """

    max_denoising_steps: int = 48
    t_min: float = 0.4
    t_max: float = 0.8
    entropy_bound: float = 0.1
    stability_threshold: int = 1
    confidence_threshold: float = 0.005

    def __post_init__(self) -> None:
        if not isinstance(self.max_denoising_steps, int) or self.max_denoising_steps < 1:
            raise ConfigError(f"max_denoising_steps must be an integer >= 1, got {self.max_denoising_steps!r}")
        if not (0.0 <= self.t_min < self.t_max):
            raise ConfigError(f"need 0 <= t_min < t_max, got t_min={self.t_min}, t_max={self.t_max}")
        if not self.entropy_bound > 0:
            raise ConfigError(f"entropy_bound must be > 0, got {self.entropy_bound}")
        if not isinstance(self.stability_threshold, int) or self.stability_threshold < 0:
            raise ConfigError(f"stability_threshold must be an integer >= 0, got {self.stability_threshold!r}")
        if not self.confidence_threshold > 0:
            raise ConfigError(f"confidence_threshold must be > 0, got {self.confidence_threshold}")

    @classmethod
    def from_generation_config(cls, generation_config: Any) -> "DiffusionSettings":
        """Read the knobs a checkpoint ships in generation_config.json, falling back to defaults."""
        values = dict(_DEFAULTS)
        for name in ("max_denoising_steps", "t_min", "t_max", "stability_threshold", "confidence_threshold"):
            value = getattr(generation_config, name, None)
            if value is not None:
                values[name] = value
        sampler_config = getattr(generation_config, "sampler_config", None)
        if sampler_config is not None and getattr(sampler_config, "entropy_bound", None) is not None:
            values["entropy_bound"] = sampler_config.entropy_bound
        return cls(**values)

    def temperatures(self) -> "np.ndarray":
        """float32 (max_denoising_steps,): entry n-1 is the temperature with n steps left,
        t_min + (t_max - t_min) * n / N in float32, the arithmetic of transformers' linear
        schedule. Every runner indexes this one table."""
        import numpy as np

        steps = np.arange(1, self.max_denoising_steps + 1, dtype=np.float32)
        fraction = steps / np.float32(self.max_denoising_steps)
        return np.float32(self.t_min) + np.float32(self.t_max - self.t_min) * fraction

    def with_overrides(self, **overrides: Any) -> "DiffusionSettings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_generate_kwargs(self) -> dict[str, Any]:
        """The same settings as keyword arguments for `model.generate` (used by parity tests)."""
        from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
            EntropyBoundSamplerConfig,
        )

        return {
            "max_denoising_steps": self.max_denoising_steps,
            "t_min": self.t_min,
            "t_max": self.t_max,
            "sampler_config": EntropyBoundSamplerConfig(entropy_bound=float(self.entropy_bound)),
            "stability_threshold": self.stability_threshold,
            "confidence_threshold": float(self.confidence_threshold),
        }

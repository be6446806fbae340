"""What a template imposes on a canvas, in tensor form."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CanvasConstraint", "stack_constraints"]


@dataclass(frozen=True)
class CanvasConstraint:
    """Per-position allowed tokens and clamped (skeleton) tokens for one canvas.

    - `allowed_tokens`: bool (canvas_length, vocab_size); a clamped position allows only its token.
    - `clamp_ids`: long (canvas_length,); the skeleton token at clamped positions, -1 elsewhere.

    Masking the logits with `allowed_tokens` makes a clamped position's distribution one-hot: its
    entropy is 0, so it is always accepted, and the self-conditioning signal sees it as certain.
    """

    allowed_tokens: torch.Tensor
    clamp_ids: torch.Tensor

    @property
    def is_clamped(self) -> torch.Tensor:
        return self.clamp_ids >= 0


def stack_constraints(
    constraints: list[CanvasConstraint | None], canvas_length: int, vocab_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Batch per-row constraints into (allowed (B, L, V), clamp_ids (B, L)); None if no row has one."""
    if all(c is None for c in constraints):
        return None
    allowed_rows, clamp_rows = [], []
    for constraint in constraints:
        if constraint is None:
            allowed_rows.append(torch.ones((canvas_length, vocab_size), dtype=torch.bool, device=device))
            clamp_rows.append(torch.full((canvas_length,), -1, dtype=torch.long, device=device))
        else:
            allowed_rows.append(constraint.allowed_tokens.to(device))
            clamp_rows.append(constraint.clamp_ids.to(device))
    return torch.stack(allowed_rows), torch.stack(clamp_rows)

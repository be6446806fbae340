"""What a template imposes on a canvas, in tensor form."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CanvasConstraint", "stack_constraints"]


@dataclass(frozen=True)
class CanvasConstraint:
    """Per-position forbidden tokens and clamped (skeleton) tokens for one canvas.

    - `disallowed_tokens`: bool (canvas_length, vocab_size), True where a token may not appear; a
      clamped position forbids every token but its own. Stored inverted because that is the form
      `masked_fill` takes each step.
    - `clamp_ids`: long (canvas_length,); the skeleton token at clamped positions, -1 elsewhere.

    Masking the logits this way makes a clamped position's distribution one-hot: its entropy is
    0, so it is always accepted, and the self-conditioning signal sees it as certain.
    """

    disallowed_tokens: torch.Tensor
    clamp_ids: torch.Tensor
    logit_bias: torch.Tensor | None = None  # float (L, V): 0 / MASKED_LOGIT, the engine step's form


def stack_constraints(
    constraints: list[CanvasConstraint | None], canvas_length: int, vocab_size: int,
    device: torch.device,
) -> CanvasConstraint | None:
    """Batch per-row constraints into one (B, L, V) / (B, L) constraint; None if no row has one."""
    if all(c is None for c in constraints):
        return None
    disallowed_rows, clamp_rows = [], []
    for constraint in constraints:
        if constraint is None:
            disallowed_rows.append(torch.zeros((canvas_length, vocab_size), dtype=torch.bool, device=device))
            clamp_rows.append(torch.full((canvas_length,), -1, dtype=torch.long, device=device))
        else:
            disallowed_rows.append(constraint.disallowed_tokens.to(device))
            clamp_rows.append(constraint.clamp_ids.to(device))
    return CanvasConstraint(torch.stack(disallowed_rows), torch.stack(clamp_rows))

"""Canvas -> validated template output.

Text slots are read from the argmax canvas up to the first pad. Choice, integer and boolean slots
are resolved jointly: every option is scored by the summed log-probability of all its tokens
(pads included) under the step's logits, and the best whole option wins. So the result is always
exactly one option, even when one option is a prefix of another. A pattern text slot is resolved
the same way over its automaton: the most probable token sequence the pattern accepts under the
step's logits (diffusion/automaton.py), so every draft and the reply match it in full.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..diffusion.automaton import TokenAutomaton, best_accepted
from ..errors import GenerationError
from .compiler import CanvasPlan, SlotPlan

__all__ = ["render", "choose_options", "constrain_patterns"]


def _host_float32(span: Any) -> np.ndarray:
    """A (few-row) slice of logits as float32 numpy: torch tensors are copied off the device
    here, after slicing, so only the option spans ever leave it."""
    if hasattr(span, "detach"):
        span = span.detach().float().cpu().numpy()
    return np.asarray(span, dtype=np.float32)


def _in_block(plan: CanvasPlan, slot: SlotPlan, offset: int) -> bool:
    return offset <= slot.start < offset + plan.canvas_length


def choose_options(plan: CanvasPlan, logits: Any, *, offset: int = 0) -> dict[str, int]:
    """Index of the best option for every option slot in the block starting at `offset`, from
    (L, V) logits of that canvas (a torch tensor or a numpy array)."""
    chosen: dict[str, int] = {}
    for slot in plan.slots:
        if slot.option_ids is None or not _in_block(plan, slot, offset):
            continue
        start = slot.start - offset
        log_probs = _log_softmax(_host_float32(logits[start: start + slot.length]))
        positions = np.broadcast_to(np.arange(slot.length), slot.option_ids.shape)
        scores = log_probs[positions, slot.option_ids].sum(axis=-1)
        chosen[slot.name] = int(np.argmax(scores))
    return chosen


def _until_pad(ids: list[int], pad_token_id: int) -> list[int]:
    return ids[: ids.index(pad_token_id)] if pad_token_id in ids else ids


def _read_text(slot: SlotPlan, canvas: list[int], pad_token_id: int, tokenizer: Any, *, strips: bool) -> str:
    """The slot's text up to its first pad; a pattern's line is kept whole (the pattern owns its
    spaces), free text is stripped."""
    text = tokenizer.decode(_until_pad(canvas[slot.start: slot.start + slot.length], pad_token_id))
    return text.strip() if strips else text


def _log_softmax(span_logits: np.ndarray) -> np.ndarray:
    peak = span_logits.max(axis=-1, keepdims=True)
    return span_logits - peak - np.log(np.exp(span_logits - peak).sum(axis=-1, keepdims=True))


def constrain_patterns(plan: CanvasPlan, automata: Mapping[str, TokenAutomaton], logits: Any,
                       previous: Mapping[str, np.ndarray], *, offset: int = 0) -> dict[str, tuple[slice, np.ndarray]]:
    """For each pattern slot in the block starting at `offset`, its span in that canvas and the
    most probable token sequence its automaton accepts under the canvas's (L, V) logits, padded
    to the slot's end: what a runner writes into the argmax canvas (and the canvas's accepted
    positions) after a step. `previous`: each slot's sequence after the step before, which
    bounds the search (an exact bound: same answer)."""
    spans = {}
    for slot in plan.slots:
        automaton = automata.get(slot.name)
        if automaton is not None and _in_block(plan, slot, offset):
            span = slice(slot.start - offset, slot.start - offset + slot.length)
            incumbents = (previous[slot.name],) if slot.name in previous else ()
            spans[slot.name] = (span, best_accepted(_host_float32(logits[span]), automaton, plan.pad_token_id,
                                                    incumbents=incumbents))
    return spans


def render(plan: CanvasPlan, canvas: Any, logits: Any, tokenizer: Any,
           automata: Mapping[str, TokenAutomaton] | None = None, *, offset: int = 0,
           chosen: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Read every slot from the plan's whole layout `canvas` (N,: `blocks.layout_ids`) and the
    live block's logits (L, V; None between blocks), that block starting at `offset`; validate
    with the template's model. Option slots of finished blocks take their `chosen` index; those
    of blocks not begun, their first option (a draft's placeholder). A pattern slot is read from
    the canvas as it stands (held to its automaton after every step by `constrain_patterns`);
    `automata` names those slots (the request's)."""
    canvas_ids = [int(token) for token in canvas.tolist()]
    decided = {**(chosen or {}), **(choose_options(plan, logits, offset=offset) if logits is not None else {})}
    fields: dict[str, Any] = {}
    for slot in plan.slots:
        if slot.kind == "text":
            is_pattern = bool(automata) and slot.name in automata
            fields[slot.name] = _read_text(slot, canvas_ids, plan.pad_token_id, tokenizer, strips=not is_pattern)
        else:
            fields[slot.name] = slot.values[decided.get(slot.name, 0)]
    try:
        return plan.output_model.model_validate(fields).model_dump()
    except Exception as exc:  # validity is by construction; reaching here is a bug
        raise GenerationError(
            f"template {plan.template.name!r} produced an invalid output {fields!r}: {exc}"
        ) from exc

"""A template over several canvases: what a finished block commits, and the layout read whole.

The engine denoises a plan's blocks one after another (`CanvasPlan.num_blocks`). When a block
finishes it is committed as the template reads it, and that is what the next block sees in
context: each choice, integer or boolean slot in it holds its chosen option's tokens (the whole
option that scores best, as rendering picks it), and a line ends at its first pad (pads after
it). A free-text slot that runs on into the next block and has already ended holds pads there
too (`BlockCommit.next_pads`, clamped in the next canvas). Pattern and option slots never cross
a block (the compiler moves them), so their constraints hold as in one canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .compiler import CanvasPlan
from .render import choose_options

__all__ = ["BlockCommit", "commit_block", "layout_ids"]


@dataclass(frozen=True)
class BlockCommit:
    ids: np.ndarray              # int64 (L,): the block as it is encoded into the cache and read
    chosen: dict[str, int]       # option slot in this block -> index of its chosen option
    next_pads: np.ndarray        # int64: positions of the next block held to pad (a line that ended)


def commit_block(plan: CanvasPlan, index: int, argmax_ids: np.ndarray, logits: Any,
                 done_ids: np.ndarray) -> BlockCommit:
    """Commit block `index` of `plan` from its argmax canvas (L,) and last logits (L, V), after
    the blocks already committed (`done_ids`, index x L)."""
    length = plan.canvas_length
    start, end = index * length, (index + 1) * length
    ids = np.array(argmax_ids, dtype=np.int64, copy=True)
    chosen = choose_options(plan, logits, offset=start)
    for slot in plan.slots:
        if slot.name in chosen:
            ids[slot.start - start: slot.start - start + slot.length] = slot.option_ids[chosen[slot.name]]
    next_pads: list[int] = []
    pad = plan.pad_token_id
    for slot in plan.slots:
        slot_end = slot.start + slot.length
        if slot.kind != "text" or slot_end <= start or slot.start >= end:
            continue
        earlier = done_ids[slot.start: start] if slot.start < start else done_ids[:0]
        here = slice(max(slot.start, start) - start, min(slot_end, end) - start)
        has_ended = bool((earlier == pad).any())
        if not has_ended:
            is_pad = np.flatnonzero(ids[here] == pad)
            if is_pad.size:
                ids[here.start + int(is_pad[0]): here.stop] = pad
                has_ended = True
        else:
            ids[here] = pad
        if has_ended and slot_end > end:
            next_pads.extend(range(0, min(slot_end, end + length) - end))
    return BlockCommit(ids, chosen, np.array(next_pads, dtype=np.int64))


def layout_ids(plan: CanvasPlan, done_ids: np.ndarray, live_ids: np.ndarray | None) -> np.ndarray:
    """The whole layout's ids (N,) for reading: the committed blocks, then the live block's argmax
    canvas (None between blocks), then the skeleton with pads in the slots of blocks not begun."""
    ids = np.where(plan.clamp_ids >= 0, plan.clamp_ids, plan.pad_token_id)
    ids[: len(done_ids)] = done_ids
    if live_ids is not None:
        ids[len(done_ids): len(done_ids) + plan.canvas_length] = live_ids
    return ids


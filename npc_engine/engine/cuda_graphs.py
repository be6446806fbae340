"""CUDA graphs of the static step: one per (batch bucket, cached-length bucket), captured at
start-up, replayed per step, so a step costs one launch of host time instead of hundreds.

A graph reads its bucket's `StepInputs` tensors and the slot state at fixed addresses; the runner
writes new slot indices and draws into those inputs before a replay, so a request joining or
leaving a batch only rewrites indices. Each graph is checked once against the eager step on the
same inputs right after capture: a graph that does not reproduce it is never used.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

from ..errors import GenerationError
from .slots import SlotState
from .static_step import StepInputs, StepOutputs

__all__ = ["StepGraphs"]

log = logging.getLogger("npc_engine.engine")

_NUM_WARMUP_RUNS = 2   # eager runs on a side stream before capture, as PyTorch asks


class StepGraphs:
    def __init__(self, step: Callable[[StepInputs, int], StepOutputs], slots: SlotState, canvas_length: int,
                 device: torch.device) -> None:
        self.step = step
        self.slots = slots
        self.canvas_length = canvas_length
        self.device = device
        self.inputs: dict[int, StepInputs] = {}
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, StepOutputs]] = {}
        self._pool = None

    def inputs_for(self, batch_size: int) -> StepInputs:
        if batch_size not in self.inputs:
            self.inputs[batch_size] = StepInputs.empty(batch_size, self.canvas_length, self.slots.scratch, self.device)
        return self.inputs[batch_size]

    def capture(self, batch_size: int, num_keys: int) -> None:
        """Capture the step for this bucket pair and check a replay against the eager step."""
        inputs = self.inputs_for(batch_size)
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(_NUM_WARMUP_RUNS):
                    self.step(inputs, num_keys)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                outputs = self.step(inputs, num_keys)
            self._pool = graph.pool()
        except Exception as exc:  # whatever torch's capture raises (memory, an uncapturable op, ...)
            raise GenerationError(f"capturing the step for batch {batch_size}, {num_keys} cached "
                                    f"tokens failed: {exc}") from exc
        self._check(graph, outputs, inputs, batch_size, num_keys)
        self._graphs[(batch_size, num_keys)] = (graph, outputs)

    def replay(self, batch_size: int, num_keys: int) -> StepOutputs:
        graph, outputs = self._graphs[(batch_size, num_keys)]
        graph.replay()
        return outputs

    def _check(self, graph: torch.cuda.CUDAGraph, outputs: StepOutputs, inputs: StepInputs,
               batch_size: int, num_keys: int) -> None:
        """Replay on scratch rows holding random state, against the eager step from the same
        state: canvases, argmax and done flags equal, logits within float tolerance."""
        slots, scratch = self.slots, self.slots.scratch
        generator = torch.Generator(device=self.device).manual_seed(batch_size * 100_003 + num_keys)
        for keys, values in zip(slots.keys, slots.values):
            keys[scratch].normal_(generator=generator)
            values[scratch].normal_(generator=generator)
        slots.lengths[scratch] = min(num_keys, slots.max_cached_tokens) // 2 + 1
        vocab_size = slots.logits.shape[-1]
        slots.canvas[scratch] = torch.randint(0, vocab_size, (self.canvas_length,), generator=generator,
                                              device=self.device)
        inputs.slot_index.fill_(scratch)
        inputs.temperature_index.zero_()
        inputs.uniform.uniform_(generator=generator)
        inputs.renoise.random_(0, vocab_size, generator=generator)
        saved = _row_state(slots, scratch)
        eager = self.step(inputs, num_keys)
        eager_canvas, eager_done = eager.canvas.clone(), eager.is_done.clone()
        eager_argmax, eager_logits = slots.argmax_canvas[scratch].clone(), slots.logits[scratch].clone()
        _restore_row_state(slots, scratch, saved)
        graph.replay()
        torch.cuda.synchronize(self.device)
        is_same = (torch.equal(outputs.canvas, eager_canvas) and torch.equal(outputs.is_done, eager_done)
                   and torch.equal(slots.argmax_canvas[scratch], eager_argmax)
                   and torch.allclose(slots.logits[scratch].float(), eager_logits.float(), rtol=1e-3, atol=1e-3))
        if not is_same:
            raise GenerationError(f"the captured step for batch {batch_size}, {num_keys} cached tokens "
                                    "does not reproduce the eager step")


def _row_state(slots: SlotState, slot: int) -> tuple[torch.Tensor | None, ...]:
    history = None if slots.history is None else slots.history[:, slot].clone()
    return (slots.canvas[slot].clone(), slots.argmax_canvas[slot].clone(), slots.logits[slot].clone(),
            slots.has_signal[slot].clone(), history)


def _restore_row_state(slots: SlotState, slot: int, saved: tuple[torch.Tensor | None, ...]) -> None:
    canvas, argmax_canvas, logits, has_signal, history = saved
    slots.canvas[slot] = canvas
    slots.argmax_canvas[slot] = argmax_canvas
    slots.logits[slot] = logits
    slots.has_signal[slot] = has_signal
    if history is not None:
        slots.history[:, slot] = history

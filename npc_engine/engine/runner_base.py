"""What every runner shares: prompt prefill with the prefix cache, a plan's blocks, rendering.

A backend offers a request-level cache API (`new_cache`, `encode_chunk`, `snapshot`, `restore`);
the prefill walk over chunks and the prefix-cache bookkeeping are the same whatever holds the
tensors. So is a multi-block plan's walk: a finished block is committed (templates/blocks.py)
and encoded like a prompt chunk, then the next block's canvas opens. The batched denoising step
is each runner's own (`ModelRunner` for PyTorch, `OnnxRunner` for ONNX Runtime).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..diffusion import DiffusionSettings
from ..diffusion.constants import MASKED_LOGIT
from ..templates import render
from ..templates.blocks import commit_block, layout_ids
from ..templates.render import constrain_patterns
from .prefix_cache import PrefixCache
from .request import Request, RequestStatus, StepTrace

__all__ = ["RunnerBase"]


class RunnerBase:
    name: str  # what runs, as hello, stats and the `serving on` line say it; true after any fallback

    def __init__(self, backend: Any, settings: DiffusionSettings, prefix_cache: PrefixCache,
                 *, prefill_chunk_tokens: int) -> None:
        self.backend = backend
        self.settings = settings
        self.prefix_cache = prefix_cache
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.canvas_length = backend.canvas_length
        self.vocab_size = backend.vocab_size

    def next_chunk_tokens(self, request: Request) -> int:
        """Tokens the next prefill of `request` will encode (after a prefix-cache hit, if any)."""
        num_encoded = request.num_encoded
        if num_encoded == 0 and request.prefix_ids and request.prefix_ids in self.prefix_cache:
            num_encoded = len(request.prefix_ids)
        start, end = request.next_chunk(self.prefill_chunk_tokens, num_encoded)
        return end - start

    def prefill(self, request: Request) -> int:
        """Encode the request's next context chunk (restoring a cached prefix first): the prompt,
        or a committed block. Returns the number of tokens encoded; opens the live block's canvas
        once everything before it is in the cache."""
        backend = self.backend
        is_caching = self.prefix_cache.capacity_bytes > 0
        if request.cache is None:
            request.cache = backend.new_cache()
            request.status = RequestStatus.PREFILLING
            if request.prefix_ids and is_caching:
                snapshot = self.prefix_cache.get(request.prefix_ids)
                if snapshot is not None:
                    request.cache = backend.restore(snapshot)
                    request.num_encoded = request.num_cached_prompt_tokens = len(request.prefix_ids)
        num_tokens = 0
        if request.num_tokens_to_encode > 0:
            start, end = request.next_chunk(self.prefill_chunk_tokens)
            request.cache = backend.encode_chunk(request.cache, request.context_ids[start:end], start)
            request.num_encoded = end
            num_tokens = end - start
            if end == len(request.prefix_ids) and is_caching:
                snapshot = backend.snapshot(request.cache)
                self.prefix_cache.put(request.prefix_ids, snapshot, snapshot.num_bytes)
        if request.num_tokens_to_encode == 0:
            self._open_canvas(request)
        return num_tokens

    def _open_canvas(self, request: Request) -> None:
        raise NotImplementedError

    def end_block(self, request: Request) -> None:
        """The live block is done and another follows: commit it (what the next block sees and
        rendering reads), drop its row state, and leave the commit to be encoded; the prefill
        that encodes it opens the next block's canvas (as `generate` continues block by block)."""
        commit = commit_block(request.plan, request.block_index, self._host_ids(request.argmax_canvas),
                              request.self_conditioning_logits, np.asarray(request.done_ids, dtype=np.int64))
        request.done_ids += tuple(commit.ids.tolist())
        request.chosen.update(commit.chosen)
        request.next_pads = commit.next_pads if commit.next_pads.size else None
        request.block_index += 1
        self.forget_batch()
        self._leave_block(request)
        request.close_block()

    def _leave_block(self, request: Request) -> None:
        """A runner's own state for the live block goes (the static runner's slot)."""

    def block_clamp_ids(self, request: Request) -> np.ndarray:
        """int64 (L,): the live block's skeleton ids (-1 in slots), with the positions a line
        that ended in an earlier block holds to pad."""
        plan = request.plan
        clamp_ids = plan.clamp_ids[plan.block(request.block_index)]
        if request.next_pads is None:
            return clamp_ids
        clamp_ids = clamp_ids.copy()
        clamp_ids[request.next_pads] = plan.pad_token_id
        return clamp_ids

    @staticmethod
    def _hold_pads(bias: Any, request: Request) -> Any:
        """`bias` (L, V, a fresh copy) with only the pad allowed at the held positions."""
        bias[request.next_pads] = MASKED_LOGIT
        bias[request.next_pads, request.plan.pad_token_id] = 0.0
        return bias

    def block_logit_bias(self, request: Request) -> np.ndarray:
        """float32 (L, V): the live block's logit bias, on the host."""
        bias = request.plan.logit_bias[request.plan.block(request.block_index)]
        return bias if request.next_pads is None else self._hold_pads(bias.copy(), request)

    def step(self, requests: list[Request]) -> list[bool]:
        """One decoder forward and sampler update for `requests`; True where a canvas is done."""
        raise NotImplementedError

    @staticmethod
    def _advance_rows(requests: list[Request], is_done: list[bool], canvas: Any, argmax_canvas: Any,
                      logits: Any, history: Any) -> list[bool]:
        """Hand each request its row of a finished step; a request out of steps is done too."""
        for row, request in enumerate(requests):
            request.canvas = canvas[row]
            request.argmax_canvas = argmax_canvas[row]
            request.self_conditioning_logits = logits[row]
            request.stability_history = None if history is None else history[:, row]
            request.num_steps += 1
            request.num_steps_left -= 1
            is_done[row] = bool(is_done[row]) or request.num_steps_left == 0
        return is_done

    def _constrain_patterns(self, requests: list[Request], renoise: np.ndarray) -> None:
        """Hold each pattern slot to its automaton after a step: its argmax becomes the most
        probable sequence the automaton accepts under the step's logits, and so do the canvas's
        accepted positions (those not holding this step's `renoise` (B, L) draw), so the next step
        denoises around a line that matches. Host NumPy, the same for every runner; rows without
        a pattern cost nothing. Stability was judged on the model's own argmax, inside the step."""
        for row, request in enumerate(requests):
            if request.automata:
                spans = constrain_patterns(request.plan, request.automata, request.self_conditioning_logits,
                                           request.pattern_lines, offset=request.block_start)
                for name, (span, tokens) in spans.items():
                    self._write_span(request, span, tokens, renoise[row, span])
                    request.pattern_lines[name] = tokens

    def _write_span(self, request: Request, span: slice, tokens: np.ndarray, renoise: np.ndarray) -> None:
        """Write `tokens` into the request's argmax canvas and, where the canvas does not hold
        `renoise`, into its canvas (in place: the rows are views of what the next step reads)."""
        raise NotImplementedError

    def _after_step(self, requests: list[Request], renoise: np.ndarray) -> None:
        """Once a step's rows are in the requests: hold pattern slots, then record traces."""
        self._constrain_patterns(requests, renoise)
        for row, request in enumerate(requests):
            if request.is_traced:  # a host copy per traced row; untraced steps copy nothing
                ids = self._host_ids(request.canvas)
                clamped = self.block_clamp_ids(request) >= 0
                states = "".join("s" if is_clamped else ("r" if is_renoised else "a")
                                 for is_clamped, is_renoised in zip(clamped, ids == renoise[row]))
                request.trace_rows.append((request.num_steps, ids.tolist(), states))

    @staticmethod
    def _host_ids(row: Any) -> np.ndarray:
        """A canvas row as host numpy."""
        return np.asarray(row)

    def trace(self, request: Request) -> tuple[StepTrace, ...]:
        """The traced steps since the last call, as token strings (host work, outside the budget)."""
        rows, request.trace_rows = request.trace_rows, []
        decode = self.backend.tokenizer.batch_decode  # one id at a time: each position's own text
        return tuple(StepTrace(step, tuple(decode([[i] for i in ids])), states) for step, ids, states in rows)

    def forget_batch(self) -> None:
        """Drop the stacked batch (its membership changed, or the engine is idle)."""

    def release(self, request: Request) -> None:
        """A request is done with the runner (finished, cancelled, failed): drop its tensors."""
        request.release()

    def render(self, request: Request) -> dict[str, Any]:
        """The template's fields from the committed blocks and the live argmax canvas (valid
        after any step >= 1)."""
        live = None if request.argmax_canvas is None else self._host_ids(request.argmax_canvas)
        canvas = layout_ids(request.plan, np.asarray(request.done_ids, dtype=np.int64), live)
        return render(request.plan, canvas, request.self_conditioning_logits, self.backend.tokenizer,
                      request.automata, offset=request.block_start, chosen=request.chosen)

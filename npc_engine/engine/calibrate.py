"""Start-up measurement of step and prefill costs, so the first frame's budget is already right."""

from __future__ import annotations

from dataclasses import dataclass

from ..diffusion.noise import RequestNoise
from ..templates import TemplateCompiler, load_template
from .cost_model import CostModel, measure_ms
from .ladder import batch_sizes
from .request import Request
from .runner_base import RunnerBase

__all__ = ["Calibration", "calibrate"]

_CALIBRATION_TEMPLATE = load_template({
    "name": "_calibration", "slots": [{"name": "say", "kind": "text", "max_tokens": 16}]})


@dataclass(frozen=True)
class Calibration:
    step_ms: dict[int, float]           # predicted step cost by batch size
    prefill_ms: dict[int, float]        # predicted prefill cost by chunk size in tokens
    largest_batch_within_budget: int | None
    warning: str | None


def calibrate(runner: RunnerBase, compiler: TemplateCompiler, cost: CostModel, *, max_batch_size: int,
              prefill_chunk_tokens: int, budget_ms: float | None, num_repeats: int = 3) -> Calibration:
    """Time prefill chunks and one denoising step at each power-of-two batch size; feed `cost`."""
    backend = runner.backend
    plan = compiler.compile(_CALIBRATION_TEMPLATE)
    max_prompt = int(backend.max_position_embeddings) - backend.canvas_length
    chunk_sizes = sorted({min(16, prefill_chunk_tokens), min(prefill_chunk_tokens, max_prompt)})

    def timed(action) -> float:
        return measure_ms(action, backend.synchronize)[1]

    def dummy(index: int, num_tokens: int) -> Request:
        generator = RequestNoise(index)
        ids = tuple((index + i) % backend.vocab_size for i in range(num_tokens))
        return Request(request_id=f"_calibration-{index}", plan=plan, prefix_ids=(), turn_ids=ids,
                       seed=index, generator=generator)

    prefill_ms: dict[int, float] = {}
    for num_tokens in chunk_sizes:
        for repeat in range(num_repeats + 1):
            ms = timed(lambda: runner.prefill(dummy(repeat, num_tokens)))
            if repeat:  # the first run pays one-time allocation and kernel selection
                cost.observe_prefill(num_tokens, ms)
        prefill_ms[num_tokens] = cost.predict_prefill_ms(num_tokens)

    step_ms: dict[int, float] = {}
    for batch_size in batch_sizes(max_batch_size):
        batch = [dummy(i, 16) for i in range(batch_size)]
        for request in batch:
            runner.prefill(request)
        for repeat in range(num_repeats + 1):
            for request in batch:  # keep the temperature index in range however many repeats
                request.num_steps_left = runner.settings.max_denoising_steps
            ms = timed(lambda: runner.step(batch))
            if repeat:
                cost.observe_step(batch_size, backend.canvas_length, ms)
        runner.forget_batch()
        for request in batch:
            runner.release(request)
        step_ms[batch_size] = cost.predict_step_ms(batch_size, backend.canvas_length)

    largest, warning = None, None
    if budget_ms is not None:
        largest = cost.largest_batch_within(budget_ms, backend.canvas_length, max_batch_size)
        if largest == 0:
            warning = (f"one denoising step of a single request takes about {step_ms[1]:.2f} ms at canvas "
                       f"length {backend.canvas_length}, more than the frame budget of {budget_ms:.2f} ms; "
                       "the engine runs one step per frame anyway (each such frame is an overrun). "
                       "Raise the budget, or use a smaller model")
    return Calibration(step_ms, prefill_ms, largest, warning)

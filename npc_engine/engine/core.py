"""The engine loop: `step()` is schedule -> run -> update; `run_frame()` steps within a budget.

Only the thread that runs frames touches requests and tensors. Other threads talk to the core
through its inbox (submit, cancel), which `step()` drains first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, cast

from ..diffusion import DiffusionSettings
from ..errors import ModelLoadError
from ..models import Backend
from .config import EngineConfig
from .cost_model import CostModel, measure_ms
from .ladder import batch_sizes
from .prefix_cache import PrefixCache
from .request import Draft, FillResult, Request, RequestStatus, finish_reason
from .scheduler import RequestView, Scheduler, SchedulerOutput
from .stats import StatsRecorder

if TYPE_CHECKING:
    from ..models.backend import DiffusionGemmaBackend
    from ..models.onnx_backend import OnnxBackend

__all__ = ["EngineCore", "FrameReport"]

log = logging.getLogger("npc_engine.engine")


def make_runner(backend: Backend, settings: DiffusionSettings, prefix_cache: PrefixCache, config: EngineConfig) -> Any:
    """The runner for a backend; imported here so that only the backend in use is loaded. The
    static runner failing to start (its slots not fitting the device, say) is a log line and the
    dynamic-shape runner, never a crash (a ModelLoadError with the backend's `strict`)."""
    chunk = config.prefill_chunk_tokens
    if backend.kind == "onnx":
        from .onnx_runner import OnnxRunner
        return OnnxRunner(cast("OnnxBackend", backend), settings, prefix_cache, prefill_chunk_tokens=chunk)
    from .runner import ModelRunner
    torch_backend = cast("DiffusionGemmaBackend", backend)  # kind "torch"
    if torch_backend.runner in ("static", "compiled"):
        import torch

        from .static_runner import StaticRunner
        try:
            return StaticRunner(torch_backend, settings, prefix_cache, prefill_chunk_tokens=chunk,
                                num_slots=config.max_batch_size, compiles=torch_backend.runner == "compiled")
        except ModelLoadError:
            raise  # strict, and a graph capture or compile failed: already says what
        except Exception as exc:  # memory above all; any start-up fault of that path falls back
            what = "slots do not fit the device" if isinstance(exc, torch.OutOfMemoryError) else "failed to start"
            if torch_backend.strict:
                raise ModelLoadError(f"the static runner's {what}: {exc}", path=backend.path) from exc
            log.warning("the static runner's %s (%d slots on %s: %s); using the dynamic-shape runner",
                        what, config.max_batch_size, backend.device, exc)
    return ModelRunner(torch_backend, settings, prefix_cache, prefill_chunk_tokens=chunk)


@dataclass(frozen=True)
class FrameReport:
    device_ms: float          # the budgeted work: steps and prefill chunks, synchronized
    num_steps: int
    draft_ms: float = 0.0     # host time rendering drafts after that work (outside the budget)


class EngineCore:
    def __init__(self, backend: Backend, settings: DiffusionSettings, config: EngineConfig,
                 on_finish: Callable[[Request], None]) -> None:
        self.backend = backend
        self.config = config
        self.cost_model = CostModel()
        self.prefix_cache: PrefixCache = PrefixCache(config.prefix_cache_bytes)
        self.runner = make_runner(backend, settings, self.prefix_cache, config)
        self.scheduler = Scheduler(max_batch_size=config.max_batch_size, canvas_length=backend.canvas_length,
                                   aging_per_step=config.aging_per_step,
                                   batch_sizes=batch_sizes(config.max_batch_size))
        self.stats = StatsRecorder()
        self.lock = threading.Lock()      # held while a frame runs: one loop thread at a time
        self._on_finish = on_finish
        self._inbox: deque[tuple[str, object]] = deque()
        self._requests: dict[str, Request] = {}
        self._draft_due: dict[str, Request] = {}  # stepped this frame, with a draft listener
        self.num_active = 0

    # -- inbox (any thread) -------------------------------------------------------------------

    def post_submit(self, request: Request) -> None:
        self._inbox.append(("submit", request))

    def post_cancel(self, request_id: str) -> None:
        self._inbox.append(("cancel", request_id))

    @property
    def has_work(self) -> bool:
        return bool(self._requests) or bool(self._inbox)

    def _drain_inbox(self) -> None:
        while self._inbox:
            kind, item = self._inbox.popleft()
            if kind == "submit":
                self._requests[item.request_id] = item
            elif item in self._requests:
                self._finish(self._requests[item], RequestStatus.FINISHED_CANCELLED)

    # -- the loop ---------------------------------------------------------------------------

    def run_frame(self, budget_ms: float | None, *, max_steps: int | None = None) -> FrameReport:
        """Run whole steps while the next one's predicted cost fits what is left of `budget_ms`
        (no budget: `max_steps` steps, or until there is nothing left to do)."""
        spent_ms, num_steps = 0.0, 0
        with self.lock:
            while max_steps is None or num_steps < max_steps:
                budget_left = None if budget_ms is None else budget_ms - spent_ms
                output, step_ms = self.step(budget_left, is_frame_start=(num_steps == 0))
                if output is None:
                    break
                spent_ms += step_ms
                num_steps += 1
            draft_ms = self._emit_drafts()
            self._drain_inbox()  # cancels posted during the frame free their memory now
        if num_steps:
            self.stats.record_frame(spent_ms, budget_ms)
        return FrameReport(spent_ms, num_steps, draft_ms)

    def try_drain_inbox(self) -> None:
        """Apply pending submits/cancels now if no frame is running (never waits for one)."""
        if self.lock.acquire(blocking=False):
            try:
                self._drain_inbox()
            finally:
                self.lock.release()

    def step(self, budget_left_ms: float | None, *, is_frame_start: bool) -> tuple[SchedulerOutput | None, float]:
        self._drain_inbox()
        output = self.scheduler.schedule(self._views(), now_s=time.monotonic(), budget_left_ms=budget_left_ms,
                                         is_frame_start=is_frame_start, cost=self.cost_model)
        if output.is_empty:
            return None, 0.0
        device_ms = self._run(output)
        self._update(output)
        return output, device_ms

    def _views(self) -> list[RequestView]:
        return [RequestView(
            request_id=r.request_id, priority=r.priority, arrival_index=r.arrival_index,
            deadline_s=r.deadline_s, num_steps=r.num_steps, num_tokens_to_encode=r.num_tokens_to_encode,
            next_chunk_tokens=self.runner.next_chunk_tokens(r) if r.num_tokens_to_encode else 0,
            is_admitted=r.status >= RequestStatus.PREFILLING, num_steps_skipped=r.num_steps_skipped,
        ) for r in self._requests.values()]

    def _timed(self, action: Callable[[], object]) -> tuple[object, float]:
        return measure_ms(action, self.backend.synchronize)

    def _run(self, output: SchedulerOutput) -> float:
        device_ms = 0.0
        for request_id in output.finalize:
            request = self._requests[request_id]
            self._finish(request, RequestStatus.FINISHED_DEADLINE)
        if output.step:
            batch = [self._requests[i] for i in output.step]
            try:
                is_done, ms = self._timed(lambda: self.runner.step(batch))
            except Exception as exc:  # a device fault fails this batch, not the engine
                log.exception("denoising step failed")
                self.runner.forget_batch()
                for request in batch:
                    self._fail(request, exc)
                is_done, ms = [], 0.0
            else:
                self.cost_model.observe_step(len(batch), self.backend.canvas_length, ms)
                self.stats.record_step()
            device_ms += ms
            for request, done in zip(batch, is_done):
                if done and not request.has_blocks_left:
                    self._finish(request, RequestStatus.FINISHED_COMPLETE)
                    continue
                if done:
                    try:
                        self.runner.end_block(request)  # host work; encoding the block is scheduled
                    except Exception as exc:
                        log.exception("committing a block failed")
                        self._fail(request, exc)
                        continue
                if request.on_draft is not None:
                    self._draft_due[request.request_id] = request
        for chunk in output.prefill:
            request = self._requests[chunk.request_id]
            if request.status == RequestStatus.WAITING:
                self.num_active += 1
            try:
                num_tokens, ms = self._timed(lambda r=request: self.runner.prefill(r))
            except Exception as exc:
                log.exception("prefill failed")
                self._fail(request, exc)
                continue
            if num_tokens:
                self.cost_model.observe_prefill(num_tokens, ms)
            request.prefill_ms += ms
            device_ms += ms
        return device_ms

    def _update(self, output: SchedulerOutput) -> None:
        stepped = set(output.step)
        for request in self._requests.values():
            if request.status == RequestStatus.RUNNING and output.step:
                request.num_steps_skipped = 0 if request.request_id in stepped else request.num_steps_skipped + 1
            elif request.status == RequestStatus.WAITING:
                request.num_steps_skipped += 1

    # -- finishing ------------------------------------------------------------------------------

    def _emit_drafts(self) -> float:
        """One draft per streaming request stepped this frame, of its latest step, rendered after
        the frame's budgeted device work: rendering (and the listener, e.g. the server encoding
        the event) is host work the step cost model does not predict, so it stays out of the
        budget, and a request stepped several times in a frame is rendered once."""
        due, self._draft_due = self._draft_due, {}
        started = time.perf_counter()
        for request in due.values():
            if request.status != RequestStatus.RUNNING:
                continue  # finished (its result carries the fields) or cancelled meanwhile
            try:
                fields = self.runner.render(request)
                trace = self.runner.trace(request) if request.is_traced else ()
                request.on_draft(Draft(request.request_id, fields, request.num_steps, request.character_id, trace))
            except Exception:  # a listener's bug must not stop generation
                log.exception("draft listener failed for request %s", request.request_id)
        return (time.perf_counter() - started) * 1000.0 if due else 0.0

    def _fail(self, request: Request, exc: BaseException) -> None:
        request.error = f"{type(exc).__name__}: {exc}"
        self._finish(request, RequestStatus.FINISHED_ERROR)

    def _finish(self, request: Request, status: RequestStatus) -> None:
        fields = None
        if status in (RequestStatus.FINISHED_COMPLETE, RequestStatus.FINISHED_DEADLINE):
            try:
                fields = self.runner.render(request)
            except Exception as exc:
                log.exception("rendering failed for request %s", request.request_id)
                request.error = f"{type(exc).__name__}: {exc}"
                status = RequestStatus.FINISHED_ERROR
        if request.status >= RequestStatus.PREFILLING:
            self.num_active -= 1
        request.status = status
        num_forwards = max(request.num_steps, 1)
        num_slot_tokens = request.plan.num_slot_tokens
        tokens_per_forward = num_slot_tokens / num_forwards if fields is not None else None
        request.result = FillResult(
            request_id=request.request_id, template=request.plan.template.name, fields=fields,
            finish_reason=finish_reason(status), seed=request.seed, num_steps=request.num_steps,
            tokens_per_forward=tokens_per_forward or 0.0,
            elapsed_ms=(time.perf_counter() - request.submitted_s) * 1000.0,
            num_prompt_tokens=request.num_prompt_tokens,
            num_cached_prompt_tokens=request.num_cached_prompt_tokens, prefill_ms=request.prefill_ms,
            character_id=request.character_id, error=request.error,
        )
        self.stats.record_finish(request.result.finish_reason, tokens_per_forward)
        self._requests.pop(request.request_id, None)
        self.runner.forget_batch()
        self.runner.release(request)
        self._on_finish(request)

"""`Engine`: the public face. Submit requests from any thread; they are batched, stepped inside
the frame budget, and resolved through `RequestHandle`s.

Two ways to drive it:
- `start()`: the engine runs frames on its own thread at `target_fps`, each using at most
  `frame_budget_ms` of device time (the usual setup for a server).
- lockstep: the game calls `tick(budget_ms)` once per frame from its own loop.
`fill()` is the blocking convenience for scripts and tests: submit one request and wait.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from ..diffusion import DiffusionSettings, RequestNoise
from ..errors import BudgetError, ConfigError, EngineClosedError, EngineStateError, ModelLoadError, PromptError, \
    QueueFullError, TemplateError, UnknownRequestError
from ..models import Backend, ModelInfo, default_model_dir, default_onnx_dir, has_default_model
from ..models.prompt import EncodedPrompt, PromptEncoder
from ..templates import CanvasPlan, Template, TemplateCompiler, TemplateRegistry
from .admission import check_priority, deadline_at, request_id_for
from .calibrate import Calibration, calibrate
from .config import EngineConfig, check_budget_ms
from .core import EngineCore, FrameReport
from .handle import RequestHandle
from .request import Draft, FillResult, Request
from .stats import EngineStats

__all__ = ["Engine"]

log = logging.getLogger("npc_engine.engine")


class Engine:
    """Fills dialogue templates for many characters at once, inside a per-frame budget.

    >>> engine = Engine.from_pretrained("path/to/model", config=EngineConfig(frame_budget_ms=4))
    >>> handle = engine.submit(template, "Any rumours?", prefix=persona, priority=1)
    >>> engine.tick(4.0)      # once per frame, or engine.start() for a background thread
    """

    def __init__(self, backend: Backend, settings: DiffusionSettings | None = None,
                 config: EngineConfig | None = None) -> None:
        """`backend`: a `DiffusionGemmaBackend` (PyTorch) or an `OnnxBackend` (ONNX Runtime)."""
        self.backend = backend
        self.settings = settings or DiffusionSettings.from_generation_config(backend.generation_config)
        self.config = config or EngineConfig()
        self.compiler = TemplateCompiler.for_backend(backend)
        self.prompts = PromptEncoder(
            backend.tokenizer, max_position_embeddings=int(backend.max_position_embeddings),
            canvas_length=backend.canvas_length)
        self.core = EngineCore(backend, self.settings, self.config, self._on_finish)
        self.calibration: Calibration | None = None
        self._lock = threading.Lock()
        self._handles: dict[str, RequestHandle] = {}
        self._arrivals = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake = threading.Condition()
        self._is_stopping = False
        self._is_closed = False
        # Registering compiles (a template that cannot run is refused then) and keeps the plan's
        # key, so a say finds its plan in the compiler's bounded cache without serializing anything.
        self.templates = TemplateRegistry(check=lambda template: self.compiler.compile(template).key)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: str | None = None, dtype: str | None = None,
                        config: EngineConfig | None = None, backend: str = "torch", strict: bool = False,
                        num_threads: int | None = None, runner: str = "fast", **setting_overrides: Any) -> "Engine":
        """Load a local model folder; with no path, the small model that ships inside the package,
        with its templates registered.

        `backend="torch"`: a DiffusionGemma checkpoint (model + tokenizer, save_pretrained) on
        PyTorch. `backend="onnx"`: a folder written by `npc-engine export-onnx`, on ONNX Runtime
        with no PyTorch needed (`device` "cuda"/"cpu"; an unavailable CUDA falls back to CPU with
        a warning, or raises with `strict`; `dtype` does not apply: exports are float32).
        `num_threads`: CPU threads for the model (onnxruntime's; for PyTorch `torch.set_num_threads`,
        which is process-wide); size it to the cores the game leaves (`npc-engine serve` defaults
        to all but one). `runner` (PyTorch): "fast", our own forward where the
        model's configuration is covered (else transformers' with a log line, or ModelLoadError with
        `strict`), or "general", transformers' forward.
        """
        if backend not in ("torch", "onnx"):
            raise ConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        is_default = path is None
        if is_default:
            path = default_model_dir() if backend == "torch" else default_onnx_dir()
            is_present = has_default_model() if backend == "torch" else (Path(path) / "manifest.json").is_file()
            if not is_present:  # a bundle ships only the export, so each backend checks its own files
                raise ModelLoadError(f"the shipped default model is missing from {path}; reinstall npc-engine "
                                     "or pass a model folder", path=str(path))
        if backend == "onnx":
            from ..models.onnx_backend import OnnxBackend
            loaded: Backend = OnnxBackend.from_folder(path, device=device, strict=strict, num_threads=num_threads)
        else:
            from ..models.backend import DiffusionGemmaBackend
            loaded = DiffusionGemmaBackend.from_pretrained(path, device=device, dtype=dtype, runner=runner,
                                                           strict=strict, num_threads=num_threads)
        settings = DiffusionSettings.from_generation_config(loaded.generation_config)
        engine = cls(loaded, settings.with_overrides(**setting_overrides), config)
        template_folder = Path(path) / "templates"
        if is_default and backend == "onnx":
            template_folder = default_model_dir() / "templates"
        for template_file in sorted(template_folder.glob("*.json")):
            engine.register_template(template_file)  # a trained model folder carries its templates
        return engine

    # -- inputs ---------------------------------------------------------------------------

    def encode_prompt(self, prompt: str, prefix: str | None = None) -> list[int]:
        """All token ids the model sees for `prompt` (after an optional persona `prefix`)."""
        prefix_ids, turn_ids = self.prompts.encode(prompt, prefix)
        return [*prefix_ids, *turn_ids]

    def register_template(self, template: Template | Mapping[str, Any] | str | Path) -> Template:
        """Validate and compile a template now, and make it available by name (replacing one of
        the same name). At most MAX_TEMPLATES names are registered at once. Raises TemplateError /
        TemplateTooLargeError."""
        return self.templates.register(template)

    def check_template(self, template: Template | Mapping[str, Any]) -> dict[str, Any]:
        """Validate and compile without registering: the plan's shape as the wire's
        `template.check` result carries it. Raises TemplateError / TemplateTooLargeError."""
        plan = self.compiler.compile(self.resolve_template(template))
        return {"name": plan.template.name, "canvas_length": plan.canvas_length, "num_blocks": plan.num_blocks,
                "num_skeleton_tokens": plan.num_skeleton_tokens, "num_slot_tokens": plan.num_slot_tokens,
                "slots": [{"name": s.name, "kind": s.kind, "num_tokens": s.length} for s in plan.slots]}

    def resolve_template(self, template: Template | Mapping[str, Any] | str | Path) -> Template:
        """A Template, a mapping, a registered template's name, or a JSON file's path -> Template."""
        return self.templates.resolve(template)

    def plan_for(self, template: CanvasPlan | Template | Mapping[str, Any] | str | Path) -> CanvasPlan:
        """The compiled plan `submit` runs: a registered template's, found by its name or as the
        very object registered (compiled at registration and found again by the key kept then:
        nothing is serialized per say, and only a plan the bounded cache let go is compiled
        again); any other template compiled now (cached by its slots). Raises TemplateError."""
        if isinstance(template, CanvasPlan):
            if (template.canvas_length, template.vocab_size) != (self.compiler.canvas_length, self.compiler.vocab_size):
                raise TemplateError(f"the plan of template {template.template.name!r} was compiled for another "
                                    "model", template=template.template.name)
            return template
        resolved = self.templates.resolve(template)
        key = self.templates.checked(resolved)
        return self.compiler.compile(resolved, key=key if isinstance(key, str) else None)

    # -- requests (any thread; never blocks on the engine) -----------------------------------

    def submit(
        self,
        template: CanvasPlan | Template | Mapping[str, Any] | str | Path,
        prompt: str | EncodedPrompt,
        *,
        prefix: str | None = None,
        seed: int | None = None,
        priority: float = 0.0,
        deadline_ms: float | None = None,
        request_id: str | None = None,
        character_id: str | None = None,
        on_draft: Callable[[Draft], None] | None = None,
        stream: bool = False,
        trace: bool = False,
        values: Mapping[str, str] | None = None,
    ) -> RequestHandle:
        """Queue one generation and return at once.

        `template`: best prepared, a plan from `plan_for` (or a registered template's name);
        a Template, mapping or path is compiled first. `prompt` is text (encoded here after
        `prefix`, the stable part whose encoding is cached), or an `EncodedPrompt` from this
        engine's `prompts.encode` (taken as checked; any other is checked here; `prefix` unused).
        `deadline_ms` is a soft deadline from now: when it passes the request is finalized from
        its best canvas so far. `on_draft` is called on the engine thread after each step;
        `stream=True` makes `handle.drafts()` available. `trace=True` adds each step's canvas
        (`Draft.trace`) to the drafts: a debugging aid that costs a host copy per step. `values`
        fill the `{name}` placeholders of the template's pattern slots.
        Raises TemplateError, PromptError, DeadlineError, DuplicateRequestError, QueueFullError.
        """
        plan = self.plan_for(template)
        automata = self.compiler.slot_automata(plan, values or {})
        if not isinstance(prompt, EncodedPrompt):
            prompt = self.prompts.encode(prompt, prefix)
        elif not self.prompts.is_checked(prompt):
            prompt = self.prompts.check(prompt)
        max_positions = self.prompts.max_position_embeddings
        if prompt.num_tokens + plan.num_tokens > max_positions:  # a one-canvas plan passed the check
            raise PromptError(f"prompt is {prompt.num_tokens} tokens; with template {plan.template.name!r} "
                              f"({plan.num_blocks} canvases of {plan.canvas_length}) this model takes at most "
                              f"{max_positions - plan.num_tokens}", character_id=character_id)
        priority = check_priority(priority)
        now = time.monotonic()
        deadline_s = deadline_at(deadline_ms, now, request_id=request_id, character_id=character_id)
        seed = secrets.randbits(63) if seed is None else int(seed)
        with self._lock:
            if self._is_closed:
                raise EngineClosedError("the engine is closed", request_id=request_id)
            request_id = request_id_for(request_id, self._handles)
            num_waiting = len(self._handles) - self.core.num_active
            if num_waiting >= self.config.max_queued_requests:
                raise QueueFullError(
                    f"{num_waiting} requests are already waiting (max_queued_requests="
                    f"{self.config.max_queued_requests}); retry when some have finished",
                    max_queued_requests=self.config.max_queued_requests, request_id=request_id,
                    character_id=character_id)
            handle = RequestHandle(request_id, self.cancel, is_streaming=stream)
            self._handles[request_id] = handle

            def draft_listener(draft: Draft) -> None:
                handle._on_draft(draft)
                if on_draft is not None:
                    on_draft(draft)

            request = Request(
                request_id=request_id, plan=plan, prefix_ids=prompt.prefix_ids, turn_ids=prompt.turn_ids,
                seed=seed, generator=RequestNoise(seed), priority=priority, deadline_s=deadline_s,
                character_id=character_id, on_draft=draft_listener if (on_draft is not None or stream) else None,
                automata=automata, arrival_index=next(self._arrivals), submitted_s=time.perf_counter(),
                is_traced=bool(trace),
            )
            self.core.post_submit(request)
        self._notify()
        return handle

    def cancel(self, request_id: str) -> None:
        """Cancel a live request: its handle resolves with finish_reason 'cancelled' and its memory
        is freed at the next step boundary (at once when no frame is running)."""
        with self._lock:
            if request_id not in self._handles:
                raise UnknownRequestError(f"no live request has id {request_id!r} (never submitted, "
                                          "or already finished)", request_id=request_id)
            self.core.post_cancel(request_id)
        self.core.try_drain_inbox()
        self._notify()

    def fill(self, template: CanvasPlan | Template | Mapping[str, Any] | str | Path, prompt: str | EncodedPrompt,
             seed: int | None = None, **options: Any) -> FillResult:
        """Submit and wait. Without the engine thread, runs the engine in this thread until done.

        Raises GenerationError when the generation failed inside the engine.
        """
        return self.wait(self.submit(template, prompt, seed=seed, **options)).raise_if_failed()

    def wait(self, handle: RequestHandle, timeout: float | None = None) -> FillResult:
        """The handle's result; without the engine thread, runs the engine here until it is done."""
        if self._thread is None:
            while not handle.done():
                self.core.run_frame(None, max_steps=1)
        return handle.result(timeout)

    def _on_finish(self, request: Request) -> None:
        with self._lock:
            handle = self._handles.pop(request.request_id, None)
        if handle is not None:
            handle._on_result(request.result)

    # -- driving the engine ----------------------------------------------------------------

    def calibrate(self) -> Calibration:
        """Measure step and prefill costs now (runs once at start-up when a budget is set).

        With `strict=True`, raises BudgetError when one step of a single request cannot fit the
        frame budget; otherwise the warning is logged and shown in `stats()`.
        """
        budget_ms = self.config.frame_budget_ms
        with self.core.lock:
            self.calibration = calibrate(self.core.runner, self.compiler, self.core.cost_model,
                                         max_batch_size=self.config.max_batch_size,
                                         prefill_chunk_tokens=self.config.prefill_chunk_tokens,
                                         budget_ms=budget_ms)
        self.core.stats.largest_batch_within_budget = self.calibration.largest_batch_within_budget
        self.core.stats.budget_warning = self.calibration.warning
        if self.calibration.warning:
            if self.config.strict:
                raise BudgetError(self.calibration.warning, largest_batch_size=0)
            log.warning(self.calibration.warning)
        return self.calibration

    def tick(self, budget_ms: float | None = None) -> FrameReport:
        """Lockstep mode: run one frame now, in the caller's thread, within `budget_ms` (default:
        the configured frame budget; None with no configured budget = one step)."""
        if self._thread is not None:
            raise EngineStateError("tick() drives the engine from the game's loop; it cannot be used "
                                   "while the engine thread runs (see start())")
        budget_ms = self.config.frame_budget_ms if budget_ms is None else check_budget_ms(budget_ms)
        if budget_ms is not None and self.calibration is None:
            self.calibrate()
        return self.core.run_frame(budget_ms, max_steps=None if budget_ms is not None else 1)

    def start(self) -> "Engine":
        """Run frames on a background thread at `target_fps` within `frame_budget_ms`."""
        if self._is_closed:
            raise EngineClosedError("the engine is closed")
        if self._thread is not None:
            return self
        if self.config.frame_budget_ms is not None and self.calibration is None:
            self.calibrate()
        self._is_stopping = False
        self._thread = threading.Thread(target=self._loop, name="npc-engine", daemon=True)
        self._thread.start()
        return self

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _loop(self) -> None:
        budget_ms = self.config.frame_budget_ms
        period_s = self.config.frame_period_ms / 1000.0
        next_frame_s = time.monotonic()
        while not self._is_stopping:
            with self._wake:
                while not self._is_stopping and not self.core.has_work:
                    self._wake.wait()
                    next_frame_s = time.monotonic()
            if self._is_stopping:
                break
            self.core.run_frame(budget_ms, max_steps=None if budget_ms is not None else 1)
            if budget_ms is None:
                continue
            next_frame_s += period_s
            delay_s = next_frame_s - time.monotonic()
            if delay_s > 0:
                with self._wake:  # sleeps, never spins; stop() wakes it
                    self._wake.wait_for(lambda: self._is_stopping, timeout=delay_s)
            else:
                next_frame_s = time.monotonic()  # behind: do not try to catch up with a burst

    def stop(self) -> None:
        """Stop the engine thread after its current step; live requests stay queued."""
        thread = self._thread
        if thread is None:
            return
        self._is_stopping = True
        self._notify()
        thread.join()
        self._thread = None

    def close(self) -> None:
        """Stop, cancel every live request (handles resolve as 'cancelled'), refuse new ones."""
        with self._lock:
            self._is_closed = True
            live = list(self._handles)
        self.stop()
        for request_id in live:
            self.core.post_cancel(request_id)
        self.core.run_frame(None, max_steps=0)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- observing ---------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def model_info(self) -> ModelInfo:
        """What model this engine runs (hello's `model`)."""
        return self.backend.info()

    def stats_dict(self) -> dict[str, Any]:
        """`stats()` as the wire's `stats` result carries it (plain types, string keys)."""
        stats = dataclasses.asdict(self.stats())
        stats["step_cost_ms"] = {str(k): v for k, v in stats["step_cost_ms"].items()}
        return stats

    def stats(self) -> EngineStats:
        """A snapshot of the engine's statistics; safe from any thread at any time."""
        with self._lock:
            num_live = len(self._handles)
        num_active = self.core.num_active
        cost = self.core.cost_model
        canvas = self.backend.canvas_length
        step_cost = {b: cost.predict_step_ms(b, canvas) for b in cost.measured_batch_sizes(canvas)}
        return self.core.stats.snapshot(
            frame_budget_ms=self.config.frame_budget_ms, num_waiting=max(0, num_live - num_active),
            num_active=num_active, prefix_cache=self.core.prefix_cache.stats(), step_cost_ms=step_cost)

"""The engine with the real tiny DiffusionGemma: batching, prefix cache, deadlines, cancel, drafts."""

from __future__ import annotations

import threading
import time

import pytest

from npc_engine import (
    BudgetError,
    DeadlineError,
    DuplicateRequestError,
    EngineConfig,
    EngineStateError,
    QueueFullError,
    RequestError,
    UnknownRequestError,
)
from npc_engine.diffusion import DiffusionSettings
from npc_engine.engine import Engine, RequestStatus, finish_reason

from .conftest import SHOPKEEPER_TEMPLATE

GREETING = {"name": "greeting", "slots": [
    {"name": "line", "kind": "text", "max_tokens": 12},
    {"name": "mood", "kind": "choice", "options": ["calm", "wary", "delighted"]},
]}
PERSONA = ("You are Mara Ironhand, the blacksmith of Thornvale. You are gruff, proud of your work, "
           "and you distrust strangers who ask too many questions about the old mine. ") * 3
CASES = [
    (SHOPKEEPER_TEMPLATE, "Hello!", None),
    (GREETING, "What rumours have you heard about the marsh lately, old friend?", None),
    (SHOPKEEPER_TEMPLATE, "Buy?", "You are Tobin, a cheerful innkeeper."),
    (GREETING, "I want a sword and a shield, and be quick about it.", PERSONA),
    (SHOPKEEPER_TEMPLATE, "How much for the lantern?", PERSONA),
]


def make_engine(backend, *, max_steps: int = 6, **config) -> Engine:
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    return Engine(backend, settings.with_overrides(max_denoising_steps=max_steps), EngineConfig(**config))


def run_until_done(engine: Engine, handles, budget_ms: float | None = None) -> None:
    for _ in range(1000):
        if all(h.done() for h in handles):
            return
        engine.tick(budget_ms)
    raise AssertionError("requests did not finish")


def test_batched_equals_unbatched(backend):
    engine = make_engine(backend, prefill_chunk_tokens=64)
    alone = [engine.fill(t, p, seed=10 + i, prefix=pf) for i, (t, p, pf) in enumerate(CASES)]
    batched_engine = make_engine(backend, prefill_chunk_tokens=64)
    handles = [batched_engine.submit(t, p, seed=10 + i, prefix=pf) for i, (t, p, pf) in enumerate(CASES)]
    run_until_done(batched_engine, handles)
    batched = [h.result() for h in handles]
    assert len({r.num_prompt_tokens for r in batched}) == len(CASES)  # all prompt lengths differ
    for one, many in zip(alone, batched):
        assert many.finish_reason == "complete"
        assert (one.fields, one.num_steps) == (many.fields, many.num_steps)


def test_requests_joining_mid_flight_equal_unbatched(backend):
    engine = make_engine(backend, prefill_chunk_tokens=64)
    alone = [engine.fill(t, p, seed=30 + i, prefix=pf) for i, (t, p, pf) in enumerate(CASES)]
    staggered = make_engine(backend, prefill_chunk_tokens=64)
    handles = []
    for i, (t, p, pf) in enumerate(CASES):
        handles.append(staggered.submit(t, p, seed=30 + i, prefix=pf))
        staggered.tick()
        staggered.tick()
    run_until_done(staggered, handles)
    assert [h.result().fields for h in handles] == [r.fields for r in alone]


def test_prefix_cache_gives_identical_output(backend):
    cached = make_engine(backend, prefill_chunk_tokens=64)
    uncached = make_engine(backend, prefill_chunk_tokens=64, prefix_cache_bytes=0)
    turns = ["Good morning.", "Can you mend my axe?", "What happened at the old mine?"]
    for seed, turn in enumerate(turns):
        with_cache = cached.fill(SHOPKEEPER_TEMPLATE, turn, seed=seed, prefix=PERSONA)
        without = uncached.fill(SHOPKEEPER_TEMPLATE, turn, seed=seed, prefix=PERSONA)
        assert with_cache.fields == without.fields
        assert without.num_cached_prompt_tokens == 0
        persona_tokens = len(cached.prompts.encode("x", PERSONA)[0])
        assert persona_tokens > backend.config.get_text_config().sliding_window  # sliding layers truncate
        assert with_cache.num_cached_prompt_tokens == (0 if seed == 0 else persona_tokens)
    stats = cached.stats().prefix_cache
    assert (stats.num_hits, stats.num_misses, stats.num_entries) == (2, 1, 1)
    assert cached.stats().prefix_cache_hit_rate == pytest.approx(2 / 3)


def test_prefix_cache_evicts_by_bytes(backend):
    engine = make_engine(backend, max_steps=1, prefill_chunk_tokens=64)
    engine.fill(GREETING, "Hi", seed=1, prefix="Persona one is a baker.")
    one_entry = engine.stats().prefix_cache.num_bytes
    small = make_engine(backend, max_steps=1, prefill_chunk_tokens=64, prefix_cache_bytes=int(one_entry * 1.5))
    small.fill(GREETING, "Hi", seed=1, prefix="Persona one is a baker.")
    small.fill(GREETING, "Hi", seed=1, prefix="Persona two is a guard.")
    stats = small.stats().prefix_cache
    assert stats.num_entries == 1 and stats.num_evictions == 1 and stats.num_bytes <= stats.capacity_bytes


def test_deadline_finalizes_from_the_argmax_canvas(backend):
    engine = make_engine(backend, max_steps=16)
    handle = engine.submit(SHOPKEEPER_TEMPLATE, "Quick, what do you sell?", seed=5, deadline_ms=300,
                           stream=True)
    while handle.latest_draft is None:  # prefill chunks, then the first step
        engine.tick()
    time.sleep(0.35)
    engine.tick()
    result = handle.result(timeout=0)
    assert result.finish_reason == "deadline"
    assert 1 <= result.num_steps < 16
    plan = engine.compiler.compile(engine.resolve_template(SHOPKEEPER_TEMPLATE))
    plan.output_model.model_validate(result.fields)  # still a valid template output


def test_unstepped_request_past_deadline_gets_one_step_first(backend):
    engine = make_engine(backend, max_steps=16)
    handle = engine.submit(GREETING, "Hurry!", seed=2, deadline_ms=1)
    time.sleep(0.01)
    run_until_done(engine, [handle])
    result = handle.result()
    assert result.finish_reason == "deadline" and result.num_steps == 1 and result.fields["mood"] in {"calm", "wary", "delighted"}


def test_cancel_frees_everything_and_others_keep_going(backend):
    engine = make_engine(backend)
    keep = engine.submit(GREETING, "Stay", seed=1)
    drop = engine.submit(GREETING, "Go", seed=2)
    engine.tick()
    engine.tick()
    engine.cancel(drop.request_id)
    assert drop.done()  # no frame was running: applied at once
    result = drop.result()
    assert result.finish_reason == "cancelled" and result.fields is None
    assert drop.request_id not in engine.core._requests
    with pytest.raises(UnknownRequestError):
        engine.cancel(drop.request_id)
    with pytest.raises(UnknownRequestError, match="never-was"):
        engine.cancel("never-was")
    run_until_done(engine, [keep])
    assert keep.result().finish_reason == "complete"
    assert engine.core.num_active == 0 and engine.stats().num_finished == {"cancelled": 1, "complete": 1}


def test_status_is_ordered_and_maps_to_finish_reasons():
    assert RequestStatus.WAITING < RequestStatus.PREFILLING < RequestStatus.RUNNING < RequestStatus.FINISHED_COMPLETE
    assert [finish_reason(s) for s in RequestStatus] == [None, None, None, "complete", "deadline", "cancelled", "error"]


def test_drafts_stream_then_final(backend):
    engine = make_engine(backend, max_steps=6)
    seen = []
    handle = engine.submit(GREETING, "Tell me a story", seed=4, stream=True, on_draft=seen.append)
    run_until_done(engine, [handle])
    drafts = list(handle.drafts(timeout=1))
    assert drafts and drafts == seen
    assert [d.num_steps for d in drafts] == list(range(1, len(drafts) + 1))
    for draft in drafts:
        assert set(draft.fields) == {"line", "mood"} and draft.fields["mood"] in {"calm", "wary", "delighted"}
    assert handle.result().num_steps == len(drafts) + 1
    with pytest.raises(EngineStateError, match="stream=True"):
        next(engine.submit(GREETING, "x", seed=1).drafts())


def test_drafts_are_rendered_once_per_frame_after_its_budgeted_work(backend):
    engine = make_engine(backend, max_steps=12)
    seen = []
    handle = engine.submit(GREETING, "Tell me a story", seed=4, on_draft=seen.append)
    engine.core.run_frame(None, max_steps=1)  # the prefill
    report = engine.core.run_frame(None, max_steps=3)  # three steps in one frame
    assert report.num_steps == 3 and not handle.done()
    assert [d.num_steps for d in seen] == [2]  # one draft, of the frame's last step (prefill took a call)
    assert report.draft_ms > 0.0
    report = engine.core.run_frame(None, max_steps=2)
    assert [d.num_steps for d in seen] == [2, 4] and report.draft_ms > 0.0
    engine.cancel(handle.request_id)
    assert engine.core.run_frame(None, max_steps=1).draft_ms == 0.0  # nothing left to draw


def test_priority_runs_first_when_slots_are_scarce(backend):
    engine = make_engine(backend, max_batch_size=1)
    low = engine.submit(GREETING, "Low", seed=1, priority=0)
    high = engine.submit(GREETING, "High", seed=2, priority=5)
    finished = []
    for _ in range(200):
        engine.tick()
        for name, handle in (("low", low), ("high", high)):
            if handle.done() and name not in finished:
                finished.append(name)
        if len(finished) == 2:
            break
    assert finished == ["high", "low"]


def test_thread_mode_serves_many_submitters(backend):
    engine = make_engine(backend, max_steps=4, frame_budget_ms=50.0, target_fps=10.0)
    engine.start()
    try:
        handles, errors = [], []

        def submitter(offset: int) -> None:
            try:
                for i in range(3):
                    handles.append(engine.submit(GREETING, f"Hello {offset}-{i}", seed=offset * 10 + i))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=submitter, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        snapshot = engine.stats()  # callable while running
        assert snapshot.frame_budget_ms == 50.0
        results = [h.result(timeout=60) for h in handles]
        with pytest.raises(EngineStateError):
            engine.tick(5.0)
    finally:
        engine.stop()
    assert not errors and len(results) == 9 and all(r.finish_reason == "complete" for r in results)
    stats = engine.stats()
    assert stats.num_frames > 0 and stats.num_steps > 0 and stats.frame_device_ms_max > 0
    assert stats.mean_tokens_per_forward > 0 and stats.step_cost_ms


def test_bad_budgets_and_settings_are_refused(backend):
    for bad in (0, -1.0, float("nan"), float("inf"), "5", True):
        with pytest.raises(BudgetError):
            EngineConfig(frame_budget_ms=bad)
    with pytest.raises(BudgetError, match="longer than a frame"):
        EngineConfig(frame_budget_ms=40.0, target_fps=60.0)
    for field in ("max_batch_size", "max_queued_requests", "prefill_chunk_tokens"):
        with pytest.raises(BudgetError, match=field):
            EngineConfig(**{field: 0})
    with pytest.raises(BudgetError):
        EngineConfig(target_fps=0)
    engine = make_engine(backend)
    with pytest.raises(BudgetError):
        engine.tick(-3.0)


def test_budget_below_one_step(backend):
    strict = make_engine(backend, max_steps=2, frame_budget_ms=0.001, strict=True, max_batch_size=2)
    with pytest.raises(BudgetError, match="more than the frame budget") as info:
        strict.start()
    assert info.value.largest_batch_size == 0 and not strict.is_running
    lenient = make_engine(backend, max_steps=2, frame_budget_ms=0.001, max_batch_size=2)
    handle = lenient.submit(GREETING, "Slowly", seed=3)
    run_until_done(lenient, [handle])  # still makes progress: one step per frame, as overruns
    stats = lenient.stats()
    assert handle.result().finish_reason == "complete"
    assert "more than the frame budget" in stats.budget_warning and stats.largest_batch_within_budget == 0
    assert stats.num_overruns == stats.num_frames > 0


def test_bad_requests_are_refused_and_the_engine_keeps_serving(backend):
    engine = make_engine(backend, max_queued_requests=2)
    for bad in (0, -5, float("nan")):
        with pytest.raises(DeadlineError):
            engine.submit(GREETING, "x", deadline_ms=bad)
    with pytest.raises(RequestError):
        engine.submit(GREETING, "x", priority=float("inf"))
    with pytest.raises(RequestError):
        engine.submit(GREETING, "x", request_id="")
    first = engine.submit(GREETING, "one", seed=1, request_id="npc-1")
    with pytest.raises(DuplicateRequestError):
        engine.submit(GREETING, "dup", request_id="npc-1")
    engine.submit(GREETING, "two", seed=2)
    with pytest.raises(QueueFullError) as info:
        engine.submit(GREETING, "three", seed=3)
    assert info.value.max_queued_requests == 2
    run_until_done(engine, [first])
    assert first.result().finish_reason == "complete"
    assert engine.fill(GREETING, "still here?", seed=9).fields["mood"] in {"calm", "wary", "delighted"}


def test_close_cancels_live_requests(backend):
    engine = make_engine(backend)
    handle = engine.submit(GREETING, "bye", seed=1)
    engine.close()
    assert handle.result(timeout=1).finish_reason == "cancelled"
    with pytest.raises(RequestError, match="closed"):
        engine.submit(GREETING, "again")

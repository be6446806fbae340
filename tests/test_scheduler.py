"""The scheduler, cost model and prefix cache are pure policy: tested on plain data, no model."""

from __future__ import annotations

import pytest

from npc_engine.engine.cost_model import CostModel
from npc_engine.engine.prefix_cache import PrefixCache
from npc_engine.engine.scheduler import RequestView, Scheduler

CANVAS = 128


def view(request_id: str, *, priority: float = 0.0, arrival: int = 0, deadline_s: float | None = None,
         num_steps: int = 0, tokens_left: int = 0, admitted: bool = True, skipped: int = 0) -> RequestView:
    return RequestView(request_id=request_id, priority=priority, arrival_index=arrival, deadline_s=deadline_s,
                       num_steps=num_steps, num_tokens_to_encode=tokens_left,
                       next_chunk_tokens=min(tokens_left, 64), is_admitted=admitted, num_steps_skipped=skipped)


def linear_cost(per_row_ms: float = 1.0, base_ms: float = 1.0, prefill_ms: float = 0.5) -> CostModel:
    cost = CostModel()
    for batch_size in (1, 2, 4, 8, 16, 32):
        for _ in range(20):  # steady measurements: deviation decays, prediction ~ the mean
            cost.observe_step(batch_size, CANVAS, base_ms + per_row_ms * batch_size)
    for _ in range(20):
        cost.observe_prefill(64, prefill_ms)
    return cost


def scheduler(max_batch_size: int = 4, aging: float = 1.0) -> Scheduler:
    return Scheduler(max_batch_size=max_batch_size, canvas_length=CANVAS, aging_per_step=aging)


def test_batch_takes_highest_priority_up_to_max_batch_size():
    views = [view(f"r{i}", priority=i, arrival=i) for i in range(6)]
    out = scheduler(max_batch_size=4).schedule(views, now_s=0.0, budget_left_ms=None, is_frame_start=True,
                                               cost=CostModel())
    assert out.step == ("r5", "r4", "r3", "r2")
    assert not out.finalize and not out.prefill


def test_equal_priority_keeps_arrival_order():
    views = [view(f"r{i}", arrival=i) for i in (3, 1, 2, 0)]
    out = scheduler(max_batch_size=2).schedule(views, now_s=0.0, budget_left_ms=None, is_frame_start=True,
                                               cost=CostModel())
    assert out.step == ("r0", "r1")


def test_batch_shrinks_to_fit_the_budget():
    cost = linear_cost()  # a step of b rows costs about 1 + b ms
    views = [view(f"r{i}", arrival=i) for i in range(4)]
    out = scheduler().schedule(views, now_s=0.0, budget_left_ms=3.5, is_frame_start=True, cost=cost)
    assert out.step == ("r0", "r1")  # 3 ms predicted: a third row would not fit


def test_budget_below_one_step_runs_one_at_frame_start_only():
    cost = linear_cost()
    views = [view("a"), view("b", arrival=1)]
    first = scheduler().schedule(views, now_s=0.0, budget_left_ms=0.5, is_frame_start=True, cost=cost)
    assert first.step == ("a",)  # over the budget, but a frame always moves
    later = scheduler().schedule(views, now_s=0.0, budget_left_ms=0.5, is_frame_start=False, cost=cost)
    assert later.is_empty


def test_unmeasured_cost_is_tried_only_at_frame_start():
    views = [view("a")]
    assert scheduler().schedule(views, now_s=0, budget_left_ms=5, is_frame_start=True, cost=CostModel()).step == ("a",)
    assert scheduler().schedule(views, now_s=0, budget_left_ms=5, is_frame_start=False, cost=CostModel()).is_empty


def test_aging_lets_a_low_priority_request_through():
    sched = scheduler(max_batch_size=1, aging=1.0)
    high, low = view("high", priority=3.0), view("low", priority=0.0, arrival=1, skipped=2)
    assert sched.schedule([high, low], now_s=0, budget_left_ms=None, is_frame_start=True, cost=CostModel()).step == ("high",)
    low = view("low", priority=0.0, arrival=1, skipped=4)
    assert sched.schedule([high, low], now_s=0, budget_left_ms=None, is_frame_start=True, cost=CostModel()).step == ("low",)


def test_no_starvation_under_a_tight_budget():
    """Simulate frames where only one step fits: every request keeps getting steps."""
    sched = scheduler(max_batch_size=4, aging=0.5)
    cost = linear_cost()
    skipped = {"vip": 0, "a": 0, "b": 0}
    priorities = {"vip": 10.0, "a": 0.0, "b": 0.0}
    num_steps = dict.fromkeys(skipped, 0)
    for _ in range(200):
        views = [view(k, priority=priorities[k], arrival=i, skipped=skipped[k]) for i, k in enumerate(skipped)]
        out = sched.schedule(views, now_s=0, budget_left_ms=2.5, is_frame_start=True, cost=cost)
        assert len(out.step) == 1
        for k in skipped:
            if k in out.step:
                skipped[k], num_steps[k] = 0, num_steps[k] + 1
            else:
                skipped[k] += 1
    assert num_steps["vip"] > num_steps["a"] > 0 and num_steps["b"] > 0
    assert max(skipped.values()) <= 2 * priorities["vip"] / 0.5 + 2


def test_deadline_finalizes_stepped_requests_and_rushes_unstepped_ones():
    views = [
        view("late_stepped", deadline_s=1.0, num_steps=3, arrival=0),
        view("late_fresh", deadline_s=1.0, num_steps=0, arrival=1),
        view("vip", priority=100.0, arrival=2),
        view("future", deadline_s=50.0, arrival=3),
    ]
    out = scheduler(max_batch_size=2).schedule(views, now_s=2.0, budget_left_ms=None, is_frame_start=True,
                                               cost=CostModel())
    assert out.finalize == ("late_stepped",)
    assert out.step == ("late_fresh", "vip")


def test_nearer_deadline_breaks_priority_ties():
    views = [view("later", deadline_s=9.0), view("sooner", deadline_s=5.0, arrival=1)]
    out = scheduler(max_batch_size=1).schedule(views, now_s=0.0, budget_left_ms=None, is_frame_start=True,
                                               cost=CostModel())
    assert out.step == ("sooner",)


def test_prefill_respects_free_slots_and_budget():
    cost = linear_cost(prefill_ms=0.5)
    views = [
        view("running", arrival=0),
        view("half_encoded", tokens_left=100, admitted=True, arrival=1),
        view("new1", tokens_left=100, admitted=False, arrival=2),
        view("new2", tokens_left=100, admitted=False, arrival=3),
        view("new3", tokens_left=100, admitted=False, arrival=4),
    ]
    out = scheduler(max_batch_size=4).schedule(views, now_s=0, budget_left_ms=None, is_frame_start=True, cost=cost)
    assert out.step == ("running",)
    assert [c.request_id for c in out.prefill] == ["half_encoded", "new1", "new2"]  # 4 slots
    tight = scheduler(max_batch_size=4).schedule(views, now_s=0, budget_left_ms=2.7, is_frame_start=True, cost=cost)
    assert tight.step == ("running",) and [c.request_id for c in tight.prefill] == ["half_encoded"]


def test_cost_model_predictions_are_conservative():
    cost = CostModel()
    assert cost.predict_step_ms(1, CANVAS) is None
    for _ in range(30):
        cost.observe_step(1, CANVAS, 2.0)
        cost.observe_step(8, CANVAS, 9.0)
    assert cost.predict_step_ms(1, CANVAS) == pytest.approx(2.0, abs=0.01)
    assert cost.predict_step_ms(4, CANVAS) == pytest.approx(5.0, abs=0.05)     # interpolated
    assert cost.predict_step_ms(16, CANVAS) == pytest.approx(18.0, abs=0.1)    # linear upper bound
    assert cost.largest_batch_within(5.1, CANVAS, 32) == 4
    assert cost.largest_batch_within(1.0, CANVAS, 32) == 0
    noisy = CostModel()
    for ms in [2.0, 3.0] * 20:
        noisy.observe_step(1, CANVAS, ms)
    assert noisy.predict_step_ms(1, CANVAS) > 3.0  # mean + 2 deviations covers the spread


def test_prefix_cache_is_lru_by_bytes():
    cache: PrefixCache[str] = PrefixCache(capacity_bytes=100)
    assert cache.put("a", "A", 40) and cache.put("b", "B", 40)
    assert cache.get("a") == "A"          # a is now the most recent
    assert cache.put("c", "C", 40)        # evicts b, the least recently used
    assert "b" not in cache and "a" in cache and "c" in cache
    assert not cache.put("huge", "H", 101)
    assert cache.get("b") is None
    stats = cache.stats()
    assert (stats.num_entries, stats.num_bytes, stats.num_hits, stats.num_misses, stats.num_evictions) == (2, 80, 1, 1, 1)
    assert stats.hit_rate == pytest.approx(0.5)


def test_request_chunks_restart_at_the_prefix_boundary():
    from npc_engine.engine.request import Request
    request = Request.__new__(Request)
    request.prefix_ids, request.turn_ids, request.num_encoded = tuple(range(150)), tuple(range(70)), 0
    chunks = []
    while request.num_encoded < 220:
        start, end = request.next_chunk(64)
        chunks.append((start, end))
        request.num_encoded = end
    assert chunks == [(0, 64), (64, 128), (128, 150), (150, 214), (214, 220)]
    # after a prefix-cache hit the turn is chunked exactly as without one
    assert request.next_chunk(64, num_encoded=150) == (150, 214)


def test_under_a_budget_batches_use_measured_sizes_only():
    cost = linear_cost()
    views = [view(f"r{i}", arrival=i) for i in range(7)]
    sched = Scheduler(max_batch_size=8, canvas_length=CANVAS, aging_per_step=1.0, batch_sizes=[1, 2, 4, 8])
    assert len(sched.schedule(views, now_s=0, budget_left_ms=100.0, is_frame_start=True, cost=cost).step) == 4
    assert len(sched.schedule(views, now_s=0, budget_left_ms=3.5, is_frame_start=True, cost=cost).step) == 2
    # without a budget, throughput wins: every ready request steps
    assert len(sched.schedule(views, now_s=0, budget_left_ms=None, is_frame_start=True, cost=cost).step) == 7

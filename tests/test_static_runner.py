"""The static-shape runner (engine/static_runner.py): our own forward over preallocated per-slot
state, padded to batch and cached-length buckets. Its fills equal the dynamic-shape runner's
token for token (tiny model with prompts past its sliding window, built-in model; padded and
unpadded; more requests than slots; its step through torch.compile); slots come back when
requests end, calibration included; and what cannot run (slots, graph capture, compile) falls
back with a log line (an error with strict)."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from npc_engine import ModelLoadError
from npc_engine.engine import Engine, EngineConfig
from npc_engine.cli_common import runner_note
from npc_engine.engine import static_runner
from npc_engine.engine.runner import ModelRunner
from npc_engine.engine.static_runner import StaticRunner
from npc_engine.errors import GenerationError
from npc_engine.models import TinyModelSpec, build_tiny_model, default_model_dir
from npc_engine.models.backend import DiffusionGemmaBackend
from npc_engine.templates import load_template
from npc_engine.templates.placeholders import fill_placeholders

from .conftest import SHOPKEEPER_TEMPLATE

PROMPTS = ["Any work?", "What do you sell, and how much for the sword? " * 12,  # > the tiny sliding window
           "Hello.", "Any work?"]  # the last one hits the prefix cache


def _engine(folder, runner: str, *, pads_batches: bool = False, max_batch_size: int = 32) -> Engine:
    engine = Engine(DiffusionGemmaBackend.from_pretrained(folder, runner=runner),
                    config=EngineConfig(max_batch_size=max_batch_size))
    if isinstance(engine.core.runner, StaticRunner):
        engine.core.runner.pads_batches = pads_batches
    return engine


def _fills(engine: Engine, prompts: list[str], template=SHOPKEEPER_TEMPLATE, values=None) -> list[tuple]:
    handles = [engine.submit(template, prompt, prefix="You are Brom, a gruff smith.", seed=seed, values=values)
               for seed, prompt in enumerate(prompts)]
    return [(r.fields, r.num_steps, r.num_cached_prompt_tokens) for r in (engine.wait(h) for h in handles)]


@pytest.fixture(scope="module")
def folders(tiny_model_dir):
    return {"tiny": tiny_model_dir, "built-in": default_model_dir()}


@pytest.mark.parametrize("name", ["tiny", "built-in"])
@pytest.mark.parametrize("pads_batches", [False, True])
def test_the_static_runner_fills_token_for_token_like_the_dynamic_one(folders, name, pads_batches):
    dynamic = _engine(folders[name], "fast")
    static = _engine(folders[name], "static", pads_batches=pads_batches)
    assert type(dynamic.core.runner) is ModelRunner and type(static.core.runner) is StaticRunner
    expected = _fills(dynamic, PROMPTS)
    assert _fills(static, PROMPTS) == expected
    assert expected[3][2] > 0  # the prefix-cache hit was exercised
    runner = static.core.runner
    assert runner.slots.num_free == runner.slots.num_slots  # every slot came back


@pytest.mark.parametrize("pads_batches", [False, True])
def test_pattern_slots_are_held_alike_on_both_runners(folders, pads_batches):
    authored = default_model_dir() / "templates" / "shopkeeper_authored.json"
    values = {"player": "Aria", "name": "Brom"}
    fills = [_fills(_engine(folders["built-in"], runner, pads_batches=pads_batches), PROMPTS, authored, values)
             for runner in ("fast", "static")]
    assert fills[0] == fills[1]
    pattern = fill_placeholders(load_template(authored).slots[0].pattern, values)
    assert all(re.fullmatch(pattern, fields["say"]) for fields, _, _ in fills[0])


def test_more_requests_than_slots_reuse_them(folders):
    prompts = [f"Tell me about the {thing}." for thing in ("mine", "river", "king", "war", "bread")]
    dynamic = _engine(folders["tiny"], "fast", max_batch_size=2)
    static = _engine(folders["tiny"], "static", pads_batches=True, max_batch_size=2)
    assert static.core.runner.batch_buckets == [1, 2]
    assert _fills(static, prompts) == _fills(dynamic, prompts)
    assert static.core.runner.slots.num_free == 2


def test_a_cancelled_request_gives_its_slot_back(folders):
    engine = _engine(folders["tiny"], "static")
    handle = engine.submit(SHOPKEEPER_TEMPLATE, "Hello.", seed=3)
    while engine.core.runner.slots.num_free == engine.core.runner.slots.num_slots:
        engine.tick(None)  # until it has stepped (and so holds a slot)
    engine.cancel(handle.request_id)
    assert engine.wait(handle).finish_reason == "cancelled"
    assert engine.core.runner.slots.num_free == engine.core.runner.slots.num_slots


def test_calibration_gives_its_slots_back(folders):
    engine = Engine(DiffusionGemmaBackend.from_pretrained(folders["tiny"], runner="static"),
                    config=EngineConfig(max_batch_size=4, frame_budget_ms=16))
    engine.calibrate()
    assert engine.core.runner.slots.num_free == 4


def test_slots_that_do_not_fit_fall_back_to_the_dynamic_runner(folders, monkeypatch, caplog):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(static_runner, "SlotState", no_memory)
    with caplog.at_level(logging.WARNING, logger="npc_engine.engine"):
        engine = _engine(folders["tiny"], "static")
    assert type(engine.core.runner) is ModelRunner and engine.core.runner.name == "fast"
    assert runner_note(engine) == " (fast runner)"  # what the `serving on` line says
    assert "slots do not fit" in caplog.text
    strict = DiffusionGemmaBackend.from_pretrained(folders["tiny"], runner="static", strict=True)
    with pytest.raises(ModelLoadError, match="slots do not fit"):
        Engine(strict)


def test_any_other_start_up_fault_falls_back_too(folders, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("an unexpected fault (simulated)")

    monkeypatch.setattr(static_runner, "StaticStep", broken)
    with caplog.at_level(logging.WARNING, logger="npc_engine.engine"):
        engine = _engine(folders["tiny"], "static")
    assert type(engine.core.runner) is ModelRunner and "failed to start" in caplog.text
    assert engine.core.runner.name == "fast"
    assert _fills(engine, PROMPTS[:1])[0][0] is not None


def test_a_failed_graph_capture_runs_the_step_eagerly(folders, monkeypatch, caplog):
    def fails(self, batch_size, num_keys):
        raise GenerationError(f"capturing the step for batch {batch_size} failed (simulated)")

    monkeypatch.setattr(static_runner.StepGraphs, "capture", fails)
    backend = DiffusionGemmaBackend.from_pretrained(folders["tiny"], runner="static")
    with caplog.at_level(logging.WARNING, logger="npc_engine.engine"):
        runner = StaticRunner(backend, Engine(backend).settings, Engine(backend).core.prefix_cache,
                              prefill_chunk_tokens=256, num_slots=2, uses_graphs=True)
    assert runner.graphs is None and "CUDA graphs are off" in caplog.text
    backend.strict = True
    with pytest.raises(ModelLoadError, match="CUDA graphs: capturing the step"):
        StaticRunner(backend, Engine(backend).settings, Engine(backend).core.prefix_cache,
                     prefill_chunk_tokens=256, num_slots=2, uses_graphs=True)


def test_the_runner_names_are_what_runs(folders):
    for asked in ("fast", "static", "general"):
        engine = Engine(DiffusionGemmaBackend.from_pretrained(folders["tiny"], runner=asked, device="cpu"))
        assert engine.core.runner.name == asked and runner_note(engine) == f" ({asked} runner)"


def test_the_compiled_runner_fills_like_the_dynamic_one(tmp_path):
    # Two layers (a sliding one with a short window, and a full one): compiling takes time in
    # proportion to the layers, about two minutes here with torch's compile cache cold.
    folder = build_tiny_model(tmp_path / "two-layer", TinyModelSpec(num_hidden_layers=2, sliding_window=32))
    compiled = _engine(folder, "compiled")  # compiles two graphs at start-up
    runner = compiled.core.runner
    assert type(runner) is StaticRunner and runner.is_compiled and runner.name == "compiled"
    assert _fills(compiled, PROMPTS) == _fills(_engine(folder, "fast"), PROMPTS)
    assert runner.slots.num_free == runner.slots.num_slots


def test_a_failed_compile_runs_the_step_eagerly(folders, monkeypatch, caplog):
    def broken_compile(function, **options):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler found (simulated)")
        return run

    monkeypatch.setattr(static_runner.torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING, logger="npc_engine.engine"):
        engine = _engine(folders["tiny"], "compiled")
    assert not engine.core.runner.is_compiled and "torch.compile of the step failed" in caplog.text
    assert engine.core.runner.name == "static"  # not "compiled": the step runs eagerly
    assert _fills(engine, PROMPTS[:1])[0][0] is not None  # and it still fills, eagerly
    strict = DiffusionGemmaBackend.from_pretrained(folders["tiny"], runner="compiled", strict=True)
    with pytest.raises(ModelLoadError, match="no C.. compiler found"):
        Engine(strict)

"""Templates longer than one canvas: laid out over consecutive blocks, denoised block by block
with the finished ones in context, as `generate` continues (tests/block_reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from npc_engine.engine import Engine, EngineConfig
from npc_engine.errors import PromptError
from npc_engine.models import default_model_dir
from npc_engine.models.backend import DiffusionGemmaBackend
from npc_engine.models.prompt import EncodedPrompt
from npc_engine.templates import load_template
from npc_engine.templates.blocks import commit_block

from .block_reference import fill_block_by_block

PERSONA = "You are Brom, a gruff smith."

# On the tiny model (128-token canvas): `note` starts in the first block and runs on into the
# second; `mood` and `action` sit in different blocks.
LONG_REPLY = {"name": "long_reply", "slots": [
    {"name": "say", "kind": "text", "max_tokens": 100},
    {"name": "mood", "kind": "choice", "options": ["calm", "cross", "glad"]},
    {"name": "note", "kind": "text", "max_tokens": 60},
    {"name": "action", "kind": "choice", "options": ["nod", "give_item", "walk_away"]},
    {"name": "trust_delta", "kind": "integer", "min": -2, "max": 2},
]}

# The case on the built-in model (64-token canvas): six fields, a 32-token line.
QUEST_REPLY = str(Path(__file__).resolve().parent.parent / "schemas" / "templates" / "quest_reply.json")

def _engine(folder, runner: str) -> Engine:
    return Engine(DiffusionGemmaBackend.from_pretrained(folder, device="cpu", runner=runner),
                  config=EngineConfig(max_batch_size=4))


def _capture_finished(engine: Engine) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Record each request's committed blocks and last argmax canvas as the runner lets it go."""
    seen: list[tuple[tuple[int, ...], np.ndarray]] = []
    runner = engine.core.runner
    release = runner.release

    def recording(request):
        if request.argmax_canvas is not None:
            seen.append((request.done_ids, runner._host_ids(request.argmax_canvas).copy()))
        release(request)
    runner.release = recording
    return seen


def test_the_layout_spans_blocks_and_keeps_unsplittable_slots_whole(engine):
    plan = engine.plan_for(LONG_REPLY)
    length = plan.canvas_length
    assert plan.num_blocks == 2 and plan.num_tokens == 2 * length
    slots = {slot.name: slot for slot in plan.slots}
    note = slots["note"]
    assert note.start < length < note.start + note.length  # a line may run on into the next block
    for name in ("mood", "action", "trust_delta"):  # options never cross a block
        assert slots[name].start // length == (slots[name].start + slots[name].length - 1) // length
    assert slots["mood"].start < length <= slots["action"].start
    # What the wire's template.check says of it.
    assert engine.check_template(LONG_REPLY)["num_blocks"] == 2


def test_a_choice_that_would_cross_moves_to_the_next_block_with_its_key(engine):
    length = engine.backend.canvas_length

    def plan_with_line(num_tokens: int):
        return engine.compiler.compile(load_template({"name": "t", "slots": [
            {"name": "say", "kind": "text", "max_tokens": num_tokens},
            {"name": "pick", "kind": "choice", "options": ["aa bb cc dd", "ee"]}]}))
    short = plan_with_line(4)
    say_end = short.slots[0].start + 4
    key = short.clamp_ids[say_end: short.slots[1].start].tolist()  # '", "pick": "'
    num_moved = 0
    for line_tokens in range(length - 16, length + 4):
        plan = plan_with_line(line_tokens)
        say, pick = plan.slots
        assert pick.start // length == (pick.start + pick.length - 1) // length  # never crosses
        assert plan.clamp_ids[pick.start - len(key): pick.start].tolist() == key  # its key right before it
        gap = plan.clamp_ids[say.start + say.length: pick.start - len(key)]
        assert (gap == plan.pad_token_id).all()  # clamped pads, as after a short line
        num_moved += bool(gap.size)
    assert num_moved > 0


def test_commit_writes_the_chosen_option_and_ends_a_line_at_its_pad(engine):
    plan = engine.plan_for(LONG_REPLY)
    length, pad = plan.canvas_length, plan.pad_token_id
    slots = {slot.name: slot for slot in plan.slots}
    note, mood = slots["note"], slots["mood"]
    rng = np.random.default_rng(0)
    ids = np.where(plan.clamp_ids[:length] >= 0, plan.clamp_ids[:length], 7)
    ids[note.start + 3] = pad      # the line ends after three tokens ...
    ids[note.start + 5] = 9        # ... so what follows the pad is not part of it
    logits = rng.standard_normal((length, plan.vocab_size)).astype(np.float32)
    logits[mood.start: mood.start + mood.length, mood.option_ids[2]] += 50.0  # "glad" wins
    commit = commit_block(plan, 0, ids, logits, np.zeros(0, dtype=np.int64))
    assert commit.chosen == {"mood": 2}
    assert commit.ids[mood.start: mood.start + mood.length].tolist() == mood.option_ids[2].tolist()
    assert (commit.ids[note.start + 3: length] == pad).all()
    assert commit.next_pads.tolist() == list(range(note.start + note.length - length))
    # A line still going at the boundary holds nothing in the next block.
    ids[note.start + 3] = ids[note.start + 5] = 7
    assert commit_block(plan, 0, ids, logits, np.zeros(0, dtype=np.int64)).next_pads.size == 0


def test_a_line_that_ended_holds_pads_in_the_next_block(engine):
    """The next block's clamp and bias allow only the pad where a split line already ended, on
    the host (ONNX) and on the device (PyTorch), and leave the plan's own masks untouched."""
    from npc_engine.diffusion import RequestNoise
    from npc_engine.engine.request import Request

    plan = engine.plan_for(LONG_REPLY)
    note = next(slot for slot in plan.slots if slot.name == "note")
    held = np.arange(note.start + note.length - plan.canvas_length)
    request = Request(request_id="held", plan=plan, prefix_ids=(), turn_ids=(5,), seed=0, generator=RequestNoise(0),
                      block_index=1, next_pads=held)
    runner = engine.core.runner
    clamp_ids = runner.block_clamp_ids(request)
    assert (clamp_ids[held] == plan.pad_token_id).all()
    for bias in (runner.block_logit_bias(request), runner.block_logit_bias_on_device(request).numpy()):
        allowed = bias[held] == 0.0
        assert allowed[:, plan.pad_token_id].all() and allowed.sum() == len(held)
    plan_bias = plan.logit_bias[plan.block(1)]
    assert (plan_bias[held] == 0.0).sum() > len(held)  # the plan's own bias still allows text there
    assert (plan.clamp_ids[plan.block(1)][held] == -1).all()


@pytest.mark.parametrize("runner", ["fast", "static"])
def test_a_two_block_fill_equals_generate_continuing_block_by_block(tiny_model_dir, runner):
    engine = _engine(tiny_model_dir, runner)
    reference_backend = DiffusionGemmaBackend.from_pretrained(tiny_model_dir, device="cpu", runner="general")
    plan = engine.plan_for(LONG_REPLY)
    finished = _capture_finished(engine)
    for seed in range(3):
        prompt = engine.prompts.encode(f"Any work, {seed}?", PERSONA)
        result = engine.fill(plan, prompt, seed=seed)
        blocks, num_steps = fill_block_by_block(reference_backend, engine.settings, plan,
                                                [*prompt.prefix_ids, *prompt.turn_ids], seed)
        done_ids, last_block = finished[-1]
        assert result.num_steps == num_steps
        assert list(done_ids) == blocks[0].tolist()
        assert last_block.tolist() == blocks[1].tolist()
        assert result.finish_reason == "complete"
        plan.output_model.model_validate(result.fields)
    engine.close()


# On the built-in model (64-token canvas) a long line slot crosses the boundary; the trained model
# ends its line early, so the rest of the slot in the second block is held to pad.
LONG_LINE = {"name": "long_line", "slots": [
    {"name": "say", "kind": "text", "max_tokens": 80},
    {"name": "emotion", "kind": "choice", "options": ["neutral", "happy", "angry", "suspicious"]},
    {"name": "trust_delta", "kind": "integer", "min": -2, "max": 2},
]}


@pytest.mark.parametrize("runner", ["fast", "static"])
def test_a_line_that_ends_in_the_first_block_holds_pads_in_the_second_like_the_reference(runner):
    engine = _engine(default_model_dir(), runner)
    reference_backend = DiffusionGemmaBackend.from_pretrained(default_model_dir(), device="cpu", runner="general")
    plan = engine.plan_for(LONG_LINE)
    say = plan.slots[0]
    assert plan.num_blocks == 2 and say.start < plan.canvas_length < say.start + say.length
    held = []
    end_block = engine.core.runner.end_block

    def spying(request):
        end_block(request)
        held.append(request.next_pads is not None)
    engine.core.runner.end_block = spying
    finished = _capture_finished(engine)
    for seed in range(2):
        prompt = engine.prompts.encode("Any work for me?", PERSONA)
        result = engine.fill(plan, prompt, seed=seed)
        blocks, num_steps = fill_block_by_block(reference_backend, engine.settings, plan,
                                                [*prompt.prefix_ids, *prompt.turn_ids], seed)
        done_ids, last_block = finished[-1]
        assert (result.num_steps, list(done_ids), last_block.tolist()) == \
            (num_steps, blocks[0].tolist(), blocks[1].tolist())
        first_in_second = say.start + say.length - plan.canvas_length
        assert (last_block[:first_in_second] == plan.pad_token_id).all()  # held to pad
        assert result.fields["say"]
    assert all(held)  # the scenario really ran: each first block ended the line
    engine.close()


def test_blocks_share_a_batch_with_one_block_requests_and_count_each_blocks_steps(tiny_model_dir):
    engine = _engine(tiny_model_dir, "fast")
    alone = [engine.fill(LONG_REPLY, "Any work?", prefix=PERSONA, seed=seed) for seed in range(2)]
    handles = [engine.submit(LONG_REPLY, "Any work?", prefix=PERSONA, seed=seed) for seed in range(2)]
    handles += [engine.submit("shopkeeper_reply" if "shopkeeper_reply" in engine.templates else
                              {"name": "short", "slots": [{"name": "say", "kind": "text", "max_tokens": 8}]},
                              "Hello.", prefix=PERSONA, seed=5)]
    results = [engine.wait(handle) for handle in handles]
    assert [(r.fields, r.num_steps) for r in results[:2]] == [(r.fields, r.num_steps) for r in alone]
    # Two blocks: two denoising runs, each at most the step cap, more than one block's.
    cap = engine.settings.max_denoising_steps
    assert all(1 < r.num_steps <= 2 * cap for r in alone)
    engine.close()


def test_drafts_show_the_finished_blocks_and_the_live_one(tiny_model_dir):
    engine = _engine(tiny_model_dir, "fast")
    drafts = []
    result = engine.fill(LONG_REPLY, "Any work?", prefix=PERSONA, seed=3, on_draft=drafts.append)
    plan = engine.plan_for(LONG_REPLY)
    for draft in drafts:
        plan.output_model.model_validate(draft.fields)  # every draft is a valid reply
    assert drafts[-1].num_steps <= result.num_steps
    # Once the first block is done, its fields stay as committed in every later draft.
    first_block_fields = ("say", "mood")
    later = [d for d in drafts if d.num_steps > result.num_steps - 2]
    assert later and all({k: d.fields[k] for k in first_block_fields} ==
                         {k: result.fields[k] for k in first_block_fields} for d in later)
    engine.close()


def test_a_prompt_that_leaves_no_room_for_every_block_is_refused(tiny_model_dir):
    engine = _engine(tiny_model_dir, "fast")
    plan = engine.plan_for(LONG_REPLY)
    room = engine.prompts.max_position_embeddings - plan.num_tokens
    prompt = engine.prompts.check(EncodedPrompt((), tuple([5] * (room + 1))))
    with pytest.raises(PromptError, match="long_reply") as info:
        engine.submit(plan, prompt)
    assert str(room) in str(info.value)
    assert engine.stats().num_waiting == 0  # nothing was queued
    engine.close()


def test_a_model_with_few_positions_takes_fewer_blocks(tmp_path):
    """Blocks that would leave no room for a prompt are refused at registration, not at a say."""
    from npc_engine.errors import TemplateTooLargeError
    from npc_engine.models import TinyModelSpec, build_tiny_model

    folder = build_tiny_model(tmp_path / "short", TinyModelSpec(max_position_embeddings=300))
    engine = Engine(DiffusionGemmaBackend.from_pretrained(folder, device="cpu"))
    assert engine.compiler.max_blocks == 2  # 299 // 128: two canvases and a prompt of up to 44 tokens
    assert engine.plan_for(LONG_REPLY).num_blocks == 2
    three = {"name": "three", "slots": [{"name": "say", "kind": "text", "max_tokens": 300}]}
    with pytest.raises(TemplateTooLargeError, match="2 canvases of 128") as info:
        engine.register_template(three)
    assert info.value.max_blocks == 2 and "three" not in engine.templates
    engine.close()


def test_pattern_slots_hold_in_a_later_block(tiny_model_dir):
    engine = _engine(tiny_model_dir, "fast")
    template = {"name": "greeting_late", "slots": [
        {"name": "say", "kind": "text", "max_tokens": 120},
        {"name": "greeting", "kind": "text", "max_tokens": 24,
         "pattern": r"(Hello|Bah|Well met), {player}\."},
        {"name": "mood", "kind": "choice", "options": ["glad", "cross"]}]}
    plan = engine.plan_for(template)
    assert plan.num_blocks == 2 and plan.slots[1].start >= plan.canvas_length
    for seed in range(3):
        fields = engine.fill(template, "Hello", prefix=PERSONA, seed=seed, values={"player": "Aria"}).fields
        assert fields["greeting"] in {f"{word}, Aria." for word in ("Hello", "Bah", "Well met")}
    engine.close()


@pytest.mark.parametrize("runner", ["fast", "static"])
def test_six_fields_with_a_32_token_line_fill_validly_on_the_built_in_model(runner):
    engine = _engine(default_model_dir(), runner)
    plan = engine.plan_for(QUEST_REPLY)
    assert plan.num_blocks == 2  # 70 positions: refused by one 64-token canvas before
    results = [engine.fill(QUEST_REPLY, "Any work for me?", prefix=PERSONA, seed=seed) for seed in range(3)]
    for result in results:
        assert result.finish_reason == "complete"
        fields = plan.output_model.model_validate(result.fields).model_dump()
        assert fields["say"] and list(fields) == [slot.name for slot in plan.template.slots]
    engine.close()

"""Training: generated data, a few real optimizer steps, the folder round trip, bad input, and the
shipped default model."""

from __future__ import annotations

import json

import pytest
from transformers import DiffusionGemmaForBlockDiffusion

from npc_engine import Engine, TemplateTooLargeError
from npc_engine.cli import main
from npc_engine.templates import load_template
from npc_engine.templates.compiler import _output_model
from npc_engine.training import (
    DataConfig,
    DataError,
    TrainConfig,
    TrainError,
    combinations,
    generate,
    load_jsonl,
    train,
)
from npc_engine.models.tiny import build_tiny_tokenizer
from npc_engine.templates import TemplateCompiler
from npc_engine.training import PRESETS, stream
from npc_engine.training.data import default_template_path, expected_emotion, iter_texts
from npc_engine.training.family import is_heldout_variant, largest_variant
from npc_engine.training.utterances import load_paraphrases, pattern_split
from npc_engine.training.world import tavern_world

TAVERN = tavern_world()

SMALL = DataConfig(num_train=120, num_heldout=24, seed=3)
QUICK = TrainConfig(steps=12, batch_size=8, eval_every=4, checkpoint_every=4, warmup_steps=3, learning_rate=3e-3,
                    num_eval_samples=16)


def _by_concept(sample):
    return {concept: sample.fields[name] for name, concept in sample.meta["concepts"].items()}


def test_generator_variety_and_split_by_combination():
    assert len(TAVERN.archetypes) >= 30 and len(TAVERN.intents) >= 15
    train_combos, heldout_combos = combinations(SMALL)
    assert not set(train_combos) & set(heldout_combos)
    train_samples, heldout = generate(SMALL, split="train"), generate(SMALL, split="heldout")
    assert {s.combination for s in heldout} <= set(heldout_combos)
    assert not {s.combination for s in heldout} & {s.combination for s in train_samples}
    for sample in train_samples + heldout:
        _output_model(sample.template).model_validate(sample.fields)
        _, intent, mood = sample.combination
        truth = _by_concept(sample)
        assert truth.get("emotion", expected_emotion(intent, mood)) == expected_emotion(intent, mood)
        assert truth.get("action", TAVERN.intents[intent].actions[0]) in TAVERN.intents[intent].actions
        assert sample.prompt.endswith(sample.prompt.splitlines()[-1]) and " says: " in sample.prompt.splitlines()[-1]
    assert all(s.template.name == "shopkeeper_reply" for s in heldout)
    assert len({s.fields["say"] for s in heldout}) > 20  # lines are not a handful of sentences
    assert generate(SMALL, split="train")[5] == train_samples[5]  # deterministic


def test_held_out_phrasings_and_template_variants_never_train():
    train_samples = generate(DataConfig(num_train=1500, seed=3), split="train")
    paraphrases = generate(SMALL, split="paraphrase")
    variants = generate(SMALL, split="variant")
    seen_patterns = {(s.meta["intent"], s.meta["pattern"]) for s in train_samples}
    held_patterns = {(s.meta["intent"], s.meta["pattern"]) for s in paraphrases}
    assert held_patterns and not held_patterns & seen_patterns
    for intent in TAVERN.intents:
        train_ids, heldout_ids = pattern_split(TAVERN, intent, SMALL.seed)
        assert heldout_ids and not set(train_ids) & set(heldout_ids)
    seen_templates = {s.template.cache_key() for s in train_samples}
    assert len(seen_templates) > 50  # a family, not one template
    assert {s.template.name for s in train_samples if s.meta["is_base_template"]} == {"shopkeeper_reply"}
    assert all(is_heldout_variant(s.template, SMALL.seed) for s in variants)
    assert not {s.template.cache_key() for s in variants} & seen_templates
    names = {slot.name for s in train_samples for slot in s.template.slots}
    assert {"mood", "feeling", "gesture", "line", "speech", "topic"} <= names


def test_streamed_samples_are_fresh_and_repeatable():
    first, again, second = stream(SMALL, 7, 8), stream(SMALL, 7, 8), stream(SMALL, 8, 8)
    assert first == again and first != second
    _, heldout_combos = combinations(SMALL)
    assert not {s.combination for s in first + second} & set(heldout_combos)


def test_the_canvas_holds_the_largest_family_member():
    assert PRESETS["voice"].canvas_length == 64
    tokenizer = build_tiny_tokenizer(PRESETS["voice"].tokenizer_vocab_size,
                                     iter_texts(generate(DataConfig(num_train=2000), split="train")),
                                     max_phrase_chars=PRESETS["voice"].max_phrase_chars)
    compiler = TemplateCompiler(tokenizer, len(tokenizer), PRESETS["voice"].canvas_length, 0, [1])
    plan = compiler.compile(largest_variant().template)
    assert len(plan.template.slots) == 6 and plan.num_skeleton_tokens + plan.num_slot_tokens <= 64


def test_paraphrase_files_are_validated(tmp_path):
    good = tmp_path / "lines.jsonl"
    good.write_text('{"intent": "buy", "text": "Got any {item} for sale?"}\n\n'
                    '{"intent": "greet", "text": "[Oi|Ahoy], {name}!"}\n')
    assert load_paraphrases(good) == {"buy": ["Got any {item} for sale?"], "greet": ["[Oi|Ahoy], {name}!"]}
    config = DataConfig(num_train=200, seed=3, paraphrase_file=str(good))
    lines = {s.prompt.splitlines()[-1] for s in generate(config, split="train")}
    assert any("for sale" in line for line in lines)
    cases = {"missing.jsonl": None, "json.jsonl": '{"intent": "buy", "text": "x"}\n{oops\n',
             "intent.jsonl": '{"intent": "dance", "text": "Shall we?"}\n',
             "filler.jsonl": '{"intent": "buy", "text": "One {sword}"}\n',
             "keys.jsonl": '{"intent": "buy"}\n', "empty.jsonl": "\n"}
    expected = {"missing.jsonl": "cannot read", "json.jsonl": r"json.jsonl:2: not JSON",
                "intent.jsonl": r"intent.jsonl:1: unknown intent", "filler.jsonl": r"filler.jsonl:1: unknown filler",
                "keys.jsonl": r"keys.jsonl:1: expected", "empty.jsonl": "no paraphrase lines"}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=expected[name]):
            load_paraphrases(tmp_path / name)
    assert main(["train", "--out", str(tmp_path / "m"), "--steps", "1", "--num-train", "20",
                 "--paraphrases", str(tmp_path / "intent.jsonl")]) == 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    report = train(QUICK, out, generate(SMALL, split="train"), generate(SMALL, split="heldout"),
                   data_description={"generator": {"num_train": 120, "num_heldout": 24, "seed": 3}}, device="cpu")
    return out, report


def test_loss_falls_and_the_folder_round_trips(trained):
    out, report = trained
    losses = [entry["validation_loss"] for entry in report["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    model = DiffusionGemmaForBlockDiffusion.from_pretrained(out)
    assert model.config.canvas_length == PRESETS["voice"].canvas_length
    engine = Engine.from_pretrained(out, device="cpu", max_denoising_steps=4)
    assert "shopkeeper_reply" in engine.templates
    sample = generate(SMALL, split="heldout")[0]
    result = engine.fill("shopkeeper_reply", sample.prompt, prefix=sample.prefix, seed=1)
    assert result.finish_reason == "complete" and set(result.fields) == set(sample.fields)
    assert json.loads((out / "training.json").read_text())["num_train_samples"] > 100


def test_refuses_existing_folders_and_foreign_checkpoints(trained, tmp_path):
    out, _ = trained
    samples, heldout = generate(SMALL, split="train"), generate(SMALL, split="heldout")
    description = {"generator": {"num_train": 120, "num_heldout": 24, "seed": 3}}
    with pytest.raises(TrainError, match="--overwrite"):
        train(QUICK, out, samples, heldout, data_description=description, device="cpu")
    other = TrainConfig(**{**QUICK.__dict__, "learning_rate": 1e-3})
    with pytest.raises(TrainError, match="another config"):
        train(other, out, samples, heldout, data_description=description, device="cpu", is_resume=True)
    longer = TrainConfig(**{**QUICK.__dict__, "steps": 16})
    lines = []
    report = train(longer, out, samples, heldout, data_description=description, device="cpu", is_resume=True,
                   log=lines.append, stop_at=14)  # a long run split in two: stop, then resume
    assert "resumed at step 12" in lines and report["history"][-1]["step"] == 14
    report = train(longer, out, samples, heldout, data_description=description, device="cpu", is_resume=True,
                   log=lines.append)
    assert "resumed at step 14" in lines and report["history"][-1]["step"] == 16


def test_a_run_starts_from_a_trained_model(trained, tmp_path):
    out, report = trained
    samples, heldout = generate(SMALL, split="train"), generate(SMALL, split="heldout")
    description = {"generator": {"num_train": 120, "num_heldout": 24, "seed": 3}}
    warm = TrainConfig(**{**QUICK.__dict__, "steps": 4, "init_from": str(out)})
    warm_report = train(warm, tmp_path / "warm", samples, heldout, data_description=description, device="cpu")
    fresh_first = report["history"][0]["validation_loss"]  # the same 4 steps from random weights
    assert warm_report["history"][0]["validation_loss"] < fresh_first
    assert (tmp_path / "warm" / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()
    with pytest.raises(TrainError, match="is not the preset's"):
        train(TrainConfig(**{**warm.__dict__, "preset": "tiny"}), tmp_path / "other", samples, heldout,
              data_description=description, device="cpu")
    with pytest.raises(TrainError, match="--init-from"):
        train(TrainConfig(**{**warm.__dict__, "init_from": str(tmp_path / "missing")}), tmp_path / "none",
              samples, heldout, data_description=description, device="cpu")


def test_user_jsonl(tmp_path):
    template = load_template(default_template_path())
    good = {"prompt": {"character": {"id": "brom", "name": "Brom", "persona": "A smith."},
                       "speaker": {"id": "player", "name": "Aria"}, "utterance": "Hello!"},
            "template": "shopkeeper_reply",
            "fields": {"say": "Well met.", "emotion": "happy", "action": "wave", "trust_delta": 1,
                       "ends_conversation": False}}
    bad_fields = {**good, "fields": {**good["fields"], "emotion": "ecstatic"}}
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps(bad_fields), json.dumps([1]),
                               json.dumps(good)]) + "\n")
    samples, num_skipped = load_jsonl(path, {"shopkeeper_reply": template})
    assert len(samples) == 2 and num_skipped == 3
    assert samples[0].prefix.startswith("You are Brom.") and samples[0].prompt.endswith("Aria says: Hello!")
    with pytest.raises(DataError, match=r"mine.jsonl:2"):
        load_jsonl(path, {"shopkeeper_reply": template}, is_strict=True)
    huge = {**good, "template": {"name": "huge", "slots": [{"name": "line", "kind": "text", "max_tokens": 500}]},
            "fields": {"line": "hi"}}
    (tmp_path / "huge.jsonl").write_text(json.dumps(huge) + "\n")
    samples, _ = load_jsonl(tmp_path / "huge.jsonl", {})
    with pytest.raises(TemplateTooLargeError, match="huge"):
        train(QUICK, tmp_path / "out", samples, samples, data_description={}, device="cpu")


def test_shipped_model_loads_offline_and_evaluates(tmp_path, capsys):
    engine = Engine.from_pretrained(device="cpu")
    assert "shopkeeper_reply" in engine.templates
    result = engine.fill("shopkeeper_reply", "Hello there.", prefix="You are Brom. A gruff smith.", seed=1)
    assert result.finish_reason == "complete"
    assert main(["eval", "--num-samples", "6", "--json", str(tmp_path / "eval.json")]) == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert set(results["slices"]) == {"heldout", "paraphrase", "variant"}
    assert all(scores["validity"] == 1.0 for scores in results["slices"].values())
    assert results["random_weights"]["num_samples"] == 6
    printed = capsys.readouterr().out
    assert "grammatical_lines" in printed and "held-out template variants" in printed


def test_samples_drawn_ahead_are_the_step_s_own():
    from npc_engine.training.trainer import StepSamples

    calls = []

    def draw(step):
        calls.append(step)
        return [step] * 2

    ahead = StepSamples(draw, 3, 6)
    assert [ahead.take(step) for step in (3, 4, 5)] == [[3, 3], [4, 4], [5, 5]]
    assert calls == [3, 4, 5]  # one step ahead, never past the last
    with pytest.raises(TrainError, match="no samples drawn for step 6"):
        ahead.take(6)
    ahead.close()

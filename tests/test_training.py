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
from npc_engine.training.corpus import ARCHETYPES, INTENTS
from npc_engine.training.data import default_template_path, expected_emotion

SMALL = DataConfig(num_train=120, num_heldout=24, seed=3)
QUICK = TrainConfig(steps=12, batch_size=8, eval_every=4, checkpoint_every=4, warmup_steps=3, learning_rate=3e-3,
                    num_eval_samples=16)


def test_generator_variety_and_split_by_combination():
    assert len(ARCHETYPES) >= 30 and len(INTENTS) >= 15
    train_combos, heldout_combos = combinations(SMALL)
    assert not set(train_combos) & set(heldout_combos)
    train_samples, heldout = generate(SMALL, split="train"), generate(SMALL, split="heldout")
    assert {s.combination for s in heldout} <= set(heldout_combos)
    assert not {s.combination for s in heldout} & {s.combination for s in train_samples}
    template = load_template(default_template_path())
    output = _output_model(template)
    for sample in train_samples + heldout:
        output.model_validate(sample.fields)
        _, intent, mood = sample.combination
        assert sample.fields["emotion"] == expected_emotion(intent, mood)
        assert sample.fields["action"] in INTENTS[intent]["actions"]
        assert sample.prompt.endswith(sample.prompt.splitlines()[-1]) and " says: " in sample.prompt.splitlines()[-1]
    assert len({s.fields["say"] for s in train_samples}) > 100  # lines are not a handful of sentences
    assert generate(SMALL, split="train")[5] == train_samples[5]  # deterministic


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
    assert model.config.canvas_length == 96
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
    longer = TrainConfig(**{**QUICK.__dict__, "steps": 14})
    lines = []
    report = train(longer, out, samples, heldout, data_description=description, device="cpu", is_resume=True,
                   log=lines.append)
    assert "resumed at step 12" in lines and report["history"][-1]["step"] == 14


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
    assert results["trained"]["validity"] == 1.0 and results["random_weights"]["num_samples"] == 6
    assert "action_accuracy" in capsys.readouterr().out

"""`npc-engine eval`: a model on the held-out split through the engine's real path (templates,
sampler, no frame budget), next to the same architecture with random weights as the floor."""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from ..errors import ConfigError
from ..engine import Engine
from ..models import default_model_dir
from ..templates import load_template
from .data import DataConfig, generate, world_of
from .grammar import is_grammatical
from .world import World

__all__ = ["SLICES", "evaluate", "print_table"]


def _data_config(model_dir: Path, num_samples: int, seed: int | None,
                 world: str | None = None) -> tuple[DataConfig, DataConfig]:
    """(held-out config, the training data config) from the model's training.json when present;
    `world` overrides the world file it names (none named: the tavern)."""
    trained = {}
    report = model_dir / "training.json"
    if report.is_file():
        trained = json.loads(report.read_text()).get("data", {}).get("generator", {})
    base = DataConfig(**trained) if trained else DataConfig()
    seed = base.seed if seed is None else seed
    world = world if world is not None else base.world
    return (DataConfig(num_train=0, num_heldout=num_samples, heldout_fraction=base.heldout_fraction, seed=seed,
                       world=world),
            DataConfig(num_train=base.num_train, num_heldout=0, heldout_fraction=base.heldout_fraction, seed=seed,
                       world=world))


def _concept_fields(sample: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """A reply's fields keyed by concept (line, emotion, ...), whatever the variant named them."""
    return {concept: fields.get(name) for name, concept in sample.meta["concepts"].items()}


def _line_values(sample: Any) -> dict[str, str]:
    """What a game would fill a pattern's placeholders with for this sample: its world's names."""
    world = sample.meta["world"]
    return {key: world[key][0] for key in ("player", "name", "town", "signature", "role") if world.get(key)}


def _score(engine: Engine, samples: list, training_lines: set[str], world: World) -> dict[str, Any]:
    for warm in samples[:3]:
        engine.fill(warm.template, warm.prompt, prefix=warm.prefix, seed=0, values=_line_values(warm))
    rows = []
    for index, sample in enumerate(samples):
        plan = engine.compiler.compile(sample.template)
        result = engine.fill(sample.template, sample.prompt, prefix=sample.prefix, seed=index,
                             values=_line_values(sample))
        intent, mood = sample.meta["intent"], sample.meta["mood"]
        fields = result.fields or {}
        try:
            plan.output_model.model_validate(fields)
            is_valid = result.finish_reason == "complete"
        except ValueError:
            is_valid = False
        got = _concept_fields(sample, fields)
        row = {"is_valid": is_valid, "tokens_per_forward": result.tokens_per_forward,
               "num_steps": result.num_steps, "ms": result.elapsed_ms}
        if "line" in got:
            row["line"] = str(got["line"] or "")
            row["is_grammatical"] = is_grammatical(row["line"], sample.meta, world)
        if "action" in got:
            row["is_action_ok"] = got["action"] in world.turn_kinds[intent].actions
        if "emotion" in got:
            row["is_emotion_ok"] = got["emotion"] == world.expected_emotion(intent, mood)
        if "trust" in got:
            delta, sign = got["trust"] or 0, world.turn_kinds[intent].trust
            row["is_sign_ok"] = (delta > 0) - (delta < 0) == sign
        rows.append(row)
    lines = [r["line"] for r in rows if "line" in r]
    bigrams = [tuple(words[i:i + 2]) for words in (line.split() for line in lines) for i in range(len(words) - 1)]
    times = sorted(r["ms"] for r in rows)
    count = len(rows)

    def rate(key: str) -> float | None:
        scored = [r[key] for r in rows if key in r]
        return sum(scored) / len(scored) if scored else None

    return {
        "num_samples": count,
        "validity": rate("is_valid"),
        "grammatical_lines": rate("is_grammatical"),
        "action_accuracy": rate("is_action_ok"),
        "emotion_agreement": rate("is_emotion_ok"),
        "trust_sign_agreement": rate("is_sign_ok"),
        "distinct_2": len(set(bigrams)) / max(1, len(bigrams)),
        "copied_from_training": sum(line in training_lines for line in lines) / max(1, len(lines)),
        "tokens_per_forward": statistics.mean(r["tokens_per_forward"] for r in rows),
        "steps_per_line": statistics.mean(r["num_steps"] for r in rows),
        "ms_per_line_p50": times[len(times) // 2],
        "ms_per_line_p95": times[min(count - 1, round(0.95 * (count - 1)))],
    }


SLICES = {"heldout": "held-out combinations", "paraphrase": "+ held-out phrasings",
          "variant": "+ held-out template variants", "events": "game events (held-out combinations)"}


def evaluate(model_dir: str | Path | None = None, *, num_samples: int = 200, seed: int | None = None,
             device: str = "cpu", with_floor: bool = True, slices: tuple[str, ...] = tuple(SLICES),
             backend: str = "torch", num_threads: int | None = None,
             template_name: str | None = None, world: str | Path | None = None) -> dict[str, Any]:
    """Scores per held-out slice for the model (and, with `with_floor`, random weights of the same
    architecture on the first slice). `backend="onnx"` scores the model's export (its `onnx/`
    folder) on ONNX Runtime instead; the random floor then needs PyTorch and is skipped.
    `template_name`: score that template of the model's (e.g. `shopkeeper_authored`, whose line is a
    pattern) in place of the one the samples were made with; its slots must name the same concepts
    (the variant slice, whose templates differ by design, is then left out). `world`: a world
    file to draw the samples from (default: the one the model's training.json names, else the
    tavern)."""
    unknown = [name for name in slices if name not in SLICES]
    if unknown or not slices:
        raise ConfigError(f"unknown slices {unknown}; expected some of {sorted(SLICES)}")
    folder = Path(model_dir) if model_dir else default_model_dir()
    heldout_config, train_config = _data_config(folder, num_samples, seed, None if world is None else str(world))
    grammar = world_of(heldout_config)
    template = load_template(folder / "templates" / f"{grammar.template.name}.json")
    training_lines = {s.fields["say"] for s in generate(train_config, split="train", template=template)
                      if "say" in s.fields}
    torch.manual_seed(0)
    if backend == "onnx":
        engine = Engine.from_pretrained(folder / "onnx", device=device, backend="onnx", num_threads=num_threads)
        with_floor = False
    else:
        engine = Engine.from_pretrained(folder, device=device)
    results: dict[str, Any] = {"model": str(folder), "device": device, "backend": backend,
                               "heldout_seed": heldout_config.seed, "slices": {}, "template": template_name}
    if template_name is not None:
        scored = engine.resolve_template(template_name)
        slices = tuple(name for name in slices if name != "variant")
        by_slice = {name: [dataclasses.replace(sample, template=scored) for sample in
                           generate(heldout_config, split=name, template=template)] for name in slices}
    else:
        by_slice = {name: generate(heldout_config, split=name, template=template) for name in slices}
    for name, samples in by_slice.items():
        results["slices"][name] = _score(engine, samples, training_lines, grammar)
    examples = []
    for sample in by_slice[slices[0]][:5]:
        fill = engine.fill(sample.template, sample.prompt, prefix=sample.prefix, seed=7, values=_line_values(sample))
        examples.append({"player": sample.prompt.splitlines()[-1], "combination": list(sample.combination),
                         "fields": fill.fields})
    results["examples"] = examples
    if with_floor:
        with tempfile.TemporaryDirectory(prefix="npc-floor-") as floor_dir:
            torch.manual_seed(0)  # same architecture and tokenizer, untrained
            model = DiffusionGemmaForBlockDiffusion(engine.backend.model.config)
            model.generation_config = engine.backend.model.generation_config
            model.save_pretrained(floor_dir)
            engine.backend.tokenizer.save_pretrained(floor_dir)
            floor = Engine.from_pretrained(floor_dir, device=device)
            first = by_slice[slices[0]]
            if template_name is not None:
                floor.register_template(engine.resolve_template(template_name))
            results["random_weights"] = _score(floor, first[: min(len(first), 50)], training_lines, grammar)
    return results


_ROWS = [("validity", "{:.1%}"), ("grammatical_lines", "{:.1%}"), ("action_accuracy", "{:.1%}"),
         ("emotion_agreement", "{:.1%}"), ("trust_sign_agreement", "{:.1%}"), ("distinct_2", "{:.3f}"),
         ("copied_from_training", "{:.1%}"), ("tokens_per_forward", "{:.2f}"), ("steps_per_line", "{:.2f}"),
         ("ms_per_line_p50", "{:.1f}"), ("ms_per_line_p95", "{:.1f}")]


def print_table(results: dict[str, Any]) -> None:
    columns = [(name, results["slices"][name]) for name in results["slices"]]
    if "random_weights" in results:
        columns.append(("random weights", results["random_weights"]))
    print(f"{results['model']} ({results.get('backend', 'torch')}) on {results['device']}, batch 1, template "
          f"{results.get('template') or 'as generated'}; samples: "
          + ", ".join(f"{name} {scores['num_samples']}" for name, scores in columns))
    print("| metric | " + " | ".join(SLICES.get(name, name) for name, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key, fmt in _ROWS:
        cells = ["n/a" if scores[key] is None else fmt.format(scores[key]) for _, scores in columns]
        print(f"| {key} | " + " | ".join(cells) + " |")

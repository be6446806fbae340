"""`npc-engine eval`: a model on the held-out split through the engine's real path (templates,
sampler, no frame budget), next to the same architecture with random weights as the floor."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import DiffusionGemmaForBlockDiffusion

from ..engine import Engine
from ..models import default_model_dir
from ..templates import load_template
from .corpus import INTENTS
from .data import DataConfig, expected_emotion, generate

__all__ = ["evaluate", "print_table"]


def _data_config(model_dir: Path, num_samples: int, seed: int | None) -> tuple[DataConfig, DataConfig]:
    """(held-out config, the training data config) from the model's training.json when present."""
    trained = {}
    report = model_dir / "training.json"
    if report.is_file():
        trained = json.loads(report.read_text()).get("data", {}).get("generator", {})
    base = DataConfig(**trained) if trained else DataConfig()
    seed = base.seed if seed is None else seed
    return (DataConfig(num_train=0, num_heldout=num_samples, heldout_fraction=base.heldout_fraction, seed=seed),
            DataConfig(num_train=base.num_train, num_heldout=0, heldout_fraction=base.heldout_fraction, seed=seed))


def _score(engine: Engine, template: Any, samples: list, training_lines: set[str]) -> dict[str, Any]:
    plan = engine.compiler.compile(template)
    for warm in samples[:3]:
        engine.fill(template, warm.prompt, prefix=warm.prefix, seed=0)
    rows = []
    for index, sample in enumerate(samples):
        result = engine.fill(template, sample.prompt, prefix=sample.prefix, seed=index)
        _, intent, mood = sample.combination
        fields = result.fields or {}
        try:
            plan.output_model.model_validate(fields)
            is_valid = result.finish_reason == "complete"
        except ValueError:
            is_valid = False
        sign = INTENTS[intent]["trust"]
        rows.append({"is_valid": is_valid,
                     "is_action_ok": fields.get("action") in INTENTS[intent]["actions"],
                     "is_emotion_ok": fields.get("emotion") == expected_emotion(intent, mood),
                     "is_sign_ok": (fields.get("trust_delta", 0) > 0) - (fields.get("trust_delta", 0) < 0) == sign,
                     "line": str(fields.get("say", "")), "tokens_per_forward": result.tokens_per_forward,
                     "num_steps": result.num_steps, "ms": result.elapsed_ms})
    lines = [r["line"] for r in rows]
    bigrams = [tuple(words[i:i + 2]) for words in (line.split() for line in lines) for i in range(len(words) - 1)]
    times = sorted(r["ms"] for r in rows)
    count = len(rows)
    return {
        "num_samples": count,
        "validity": sum(r["is_valid"] for r in rows) / count,
        "action_accuracy": sum(r["is_action_ok"] for r in rows) / count,
        "emotion_agreement": sum(r["is_emotion_ok"] for r in rows) / count,
        "trust_sign_agreement": sum(r["is_sign_ok"] for r in rows) / count,
        "distinct_2": len(set(bigrams)) / max(1, len(bigrams)),
        "copied_from_training": sum(line in training_lines for line in lines) / count,
        "tokens_per_forward": statistics.mean(r["tokens_per_forward"] for r in rows),
        "steps_per_line": statistics.mean(r["num_steps"] for r in rows),
        "ms_per_line_p50": times[len(times) // 2],
        "ms_per_line_p95": times[min(count - 1, round(0.95 * (count - 1)))],
    }


def evaluate(model_dir: str | Path | None = None, *, num_samples: int = 200, seed: int | None = None,
             device: str = "cpu", with_floor: bool = True) -> dict[str, Any]:
    """Scores for the model (and, with `with_floor`, for random weights of the same architecture)."""
    folder = Path(model_dir) if model_dir else default_model_dir()
    heldout_config, train_config = _data_config(folder, num_samples, seed)
    template = load_template(folder / "templates" / "shopkeeper_reply.json")
    samples = generate(heldout_config, split="heldout", template=template)
    training_lines = {s.fields["say"] for s in generate(train_config, split="train", template=template)}
    torch.manual_seed(0)
    engine = Engine.from_pretrained(folder, device=device)
    results: dict[str, Any] = {"model": str(folder), "device": device, "heldout_seed": heldout_config.seed,
                               "trained": _score(engine, template, samples, training_lines)}
    examples = []
    for sample in samples[:5]:
        fill = engine.fill(template, sample.prompt, prefix=sample.prefix, seed=7)
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
            results["random_weights"] = _score(floor, template, samples[: min(len(samples), 50)], training_lines)
    return results


_ROWS = [("validity", "{:.1%}"), ("action_accuracy", "{:.1%}"), ("emotion_agreement", "{:.1%}"),
         ("trust_sign_agreement", "{:.1%}"), ("distinct_2", "{:.3f}"), ("copied_from_training", "{:.1%}"),
         ("tokens_per_forward", "{:.2f}"), ("steps_per_line", "{:.2f}"), ("ms_per_line_p50", "{:.1f}"),
         ("ms_per_line_p95", "{:.1f}")]


def print_table(results: dict[str, Any]) -> None:
    columns = [name for name in ("trained", "random_weights") if name in results]
    print(f"Held-out split ({results['trained']['num_samples']} samples; random weights on "
          f"{results.get('random_weights', {}).get('num_samples', 0)}), {results['device']}, batch 1")
    print("| metric | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key, fmt in _ROWS:
        print(f"| {key} | " + " | ".join(fmt.format(results[c][key]) for c in columns) + " |")

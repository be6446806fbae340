"""`npc-engine` command line.

    npc-engine fill --template FILE --prompt TEXT [--model DIR] [--seed N]
    npc-engine serve [--bind tcp://127.0.0.1:5555] [--model DIR] [--db FILE] [--templates DIR]
    npc-engine schemas [--write] [--dir schemas]
    npc-engine curve-keys DIR
    npc-engine make-tiny-model DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import NpcEngineError

__all__ = ["main"]


def default_model_dir() -> Path:
    """Where the default model lives until the SDK ships a trained one inside the package."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache_root / "npc-engine" / "tiny-random-v1"


def _ensure_default_model() -> Path:
    from .models import build_tiny_model

    directory = default_model_dir()
    print(
        "npc-engine: no --model given and no trained default model ships yet; using a tiny "
        f"random-weight DiffusionGemma at {directory}. Its lines are noise, but every field is "
        "valid for the template.", file=sys.stderr)
    if not (directory / "config.json").is_file():
        build_tiny_model(directory)
    return directory


def _cmd_fill(args: argparse.Namespace) -> int:
    from .engine import Engine

    model_dir = Path(args.model) if args.model else _ensure_default_model()
    overrides = {"max_denoising_steps": args.max_steps} if args.max_steps else {}
    engine = Engine.from_pretrained(model_dir, device=args.device, **overrides)
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


def _cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .characters import Store
    from .engine import Engine, EngineConfig
    from .protocol import PROTOCOL_VERSION, Limits
    from .server import Server, check_bind

    check_bind(args.bind, curve_keys=args.curve_keys, is_insecure=args.insecure)  # before loading a model
    model_dir = Path(args.model) if args.model else _ensure_default_model()
    config = EngineConfig(frame_budget_ms=args.frame_budget_ms, target_fps=args.target_fps)
    engine = Engine.from_pretrained(model_dir, device=args.device, dtype=args.dtype, config=config)
    for folder in args.templates:
        files = sorted(Path(folder).glob("*.json"))
        if not files:
            print(f"npc-engine: warning: no *.json templates in {folder}", file=sys.stderr)
        for path in files:
            engine.register_template(path)
    store = Store(args.db) if args.db else Store()
    limits = Limits(max_message_bytes=args.max_message_bytes, hard_message_bytes=4 * args.max_message_bytes,
                    max_outstanding_per_client=args.max_outstanding)
    server = Server(engine, store, bind=args.bind, limits=limits, curve_keys=args.curve_keys,
                    is_insecure=args.insecure)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"npc-engine serving on {server.endpoint} (protocol {PROTOCOL_VERSION}; "
          f"model {model_dir}; state {store.path}; templates {sorted(engine.templates) or 'none'})", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        engine.close()
        store.close()
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    from .protocol.export import check_schemas, write_schemas

    folder = Path(args.dir)
    if args.write:
        for path in write_schemas(folder):
            print(path)
        return 0
    stale = check_schemas(folder)
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
    fill.add_argument("--template", required=True, help="template JSON file")
    fill.add_argument("--prompt", required=True, help="what the player says")
    fill.add_argument("--model", help="DiffusionGemma checkpoint folder (default: the built-in model)")
    fill.add_argument("--seed", type=int, default=None, help="random seed (same seed, same output)")
    fill.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    fill.add_argument("--max-steps", type=int, default=None, help="denoising step cap")
    fill.add_argument("--pretty", action="store_true", help="indent the JSON")
    fill.set_defaults(handler=_cmd_fill)

    serve = commands.add_parser("serve", help="serve the engine over ZeroMQ (see schemas/PROTOCOL.md)")
    serve.add_argument("--bind", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint (default: loopback)")
    serve.add_argument("--model", help="DiffusionGemma checkpoint folder (default: the built-in model)")
    serve.add_argument("--db", help="state database file (default: under your user data folder)")
    serve.add_argument("--templates", action="append", default=[], help="folder of template JSON files (repeatable)")
    serve.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if present)")
    serve.add_argument("--dtype", default=None, help="float32, bfloat16, float16")
    serve.add_argument("--frame-budget-ms", type=float, default=None, help="device ms per frame (default: none)")
    serve.add_argument("--target-fps", type=float, default=60.0)
    serve.add_argument("--max-message-bytes", type=int, default=1 << 20)
    serve.add_argument("--max-outstanding", type=int, default=64, help="outstanding requests per client")
    serve.add_argument("--curve-keys", type=Path, default=None, help="folder from `npc-engine curve-keys`")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CURVE")
    serve.set_defaults(handler=_cmd_serve)

    schemas = commands.add_parser("schemas", help="check (or --write) the protocol's JSON Schemas and vectors")
    schemas.add_argument("--write", action="store_true", help="regenerate the files instead of checking them")
    schemas.add_argument("--dir", default="schemas", help="the schemas folder (default: ./schemas)")
    schemas.set_defaults(handler=_cmd_schemas)

    keys = commands.add_parser("curve-keys", help="create CurveZMQ certificates for a non-loopback server")
    keys.add_argument("directory")
    keys.set_defaults(handler=_cmd_curve_keys)

    tiny = commands.add_parser("make-tiny-model", help="write a tiny random DiffusionGemma checkpoint")
    tiny.add_argument("directory")
    tiny.set_defaults(handler=_cmd_make_tiny_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

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
    sys.exit(main())

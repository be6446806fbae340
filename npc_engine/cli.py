"""`npc-engine` command line.

    npc-engine fill --template FILE --prompt TEXT [--model DIR] [--seed N]
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

"""Do the runners agree on a device? The same says (template, prompts, seeds) through each PyTorch
runner: general (transformers' forward), fast (our forward, dynamic shapes), static (our forward
over per-slot state, padded to buckets, eager), compiled (static through torch.compile) and, on
CUDA, graphs (the static step as CUDA graphs). Prints, per runner, how many fills equal the dynamic runner's and the general one's,
and the start-up cost of capturing the graphs. On a CPU the tests assert this equality; this
script is the check for a lent GPU, where kernels differ and only measured agreement counts.

    python bench/static_parity.py [--device cuda] [--dtype float32] [--num-says 24] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import engine_on_runner, hardware, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine.engine import Engine  # noqa: E402
from npc_engine.models import default_model_dir  # noqa: E402

TEMPLATE = str(Path(__file__).resolve().parent.parent / "schemas" / "templates" / "shopkeeper_reply.json")
LINES = ["Any work?", "What do you sell?", "How much for the sword?", "Hello.", "Tell me about the mine.",
         "Is the river safe?", "Who rules here?", "Good day to you."]


def engine_for(runner: str, args) -> tuple[Engine | None, float]:
    """The engine for `runner` and how long its runner took to build; None when torch.compile
    failed for "compiled" (the log says why)."""
    engine, startup_s = engine_on_runner(default_model_dir(), runner, device=args.device, dtype=args.dtype,
                                         pads_batches=True)
    if runner == "compiled" and not engine.core.runner.is_compiled:
        return None, 0.0
    return engine, startup_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--num-says", type=int, default=24)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = ["general", "fast", "static", "compiled"] + (["graphs"] if device.type == "cuda" else [])
    fills, startup_s = {}, {}
    for name in list(names):
        engine, startup_s[name] = engine_for(name, args)
        if engine is None:
            print(f"warning: torch.compile failed on {device}; no {name} row")
            names.remove(name)
            continue
        handles = [engine.submit(TEMPLATE, LINES[i % len(LINES)], prefix="You are Brom, a gruff smith.", seed=i)
                   for i in range(args.num_says)]  # submitted together: they share batches
        fills[name] = [(r.fields, r.num_steps) for r in (engine.wait(h) for h in handles)]
        engine.close()
    rows = [{"runner": name, "equal_to_fast": sum(a == b for a, b in zip(fills[name], fills["fast"])),
             "equal_to_general": sum(a == b for a, b in zip(fills[name], fills["general"])),
             "startup_s": startup_s[name]} for name in names]
    print(f"runner agreement on {hardware(device)} ({args.dtype}, torch {torch.__version__}), "
          f"{args.num_says} says of the built-in model")
    print(f"{'runner':<8} | {'= fast':>7} | {'= general':>9} | {'runner start s':>14}")
    for row in rows:
        print(f"{row['runner']:<8} | {row['equal_to_fast']:>7} | {row['equal_to_general']:>9} | {row['startup_s']:>14.2f}")
    write_json("static_parity", {"hardware": hardware(device), "dtype": args.dtype, "rows": rows}, args.out)


if __name__ == "__main__":
    main()

"""Import time of `npc_engine.client` (what a Python game pays to talk to the server), by
`python -X importtime`, for this tree and optionally older trees, rounds interleaved.

    python bench/import_time.py [--rounds 15] [--module npc_engine.client] [--compare DIR ...]

`--compare` takes other checkouts (e.g. `git worktree add /tmp/before <commit>`); each is run
with itself first on `sys.path`. Prints a table (median and min of the module's cumulative
import time, modules loaded, whether numpy / the engine / the store got loaded) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_PROBE = """
import json, sys
import {module}
print(json.dumps([len(sys.modules), sum(m.startswith("npc_engine") for m in sys.modules),
                  "numpy" in sys.modules, "npc_engine.engine" in sys.modules,
                  "npc_engine.characters.store" in sys.modules]))
"""


def cumulative_us(tree: Path, module: str) -> int:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=tree,
                         capture_output=True, text=True, check=True)
    line = [entry for entry in out.stderr.splitlines() if entry.rstrip().endswith(f"| {module}")][-1]
    return int(line.split("|")[1])


def loaded(tree: Path, module: str) -> list:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], cwd=tree, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--module", default="npc_engine.client")
    parser.add_argument("--compare", nargs="*", default=[])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    trees = {"this tree": ROOT, **{str(path): Path(path).resolve() for path in args.compare}}
    samples: dict[str, list[int]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            samples[name].append(cumulative_us(tree, args.module))
    rows = []
    for name, tree in trees.items():
        num_modules, num_ours, has_numpy, has_engine, has_store = loaded(tree, args.module)
        rows.append({"tree": name, "median_ms": statistics.median(samples[name]) / 1000,
                     "min_ms": min(samples[name]) / 1000, "num_modules": num_modules, "num_npc_engine_modules": num_ours,
                     "loads_numpy": has_numpy, "loads_engine": has_engine, "loads_store": has_store})
    print(f"import {args.module}: Python {platform.python_version()}, {args.rounds} interleaved rounds")
    print(f"{'tree':<24} | {'median ms':>9} | {'min ms':>7} | {'modules':>7} | {'ours':>4} | numpy | engine | store")
    for row in rows:
        print(f"{row['tree'][-24:]:<24} | {row['median_ms']:>9.1f} | {row['min_ms']:>7.1f} | {row['num_modules']:>7} | "
              f"{row['num_npc_engine_modules']:>4} | {str(row['loads_numpy']):>5} | {str(row['loads_engine']):>6} | "
              f"{str(row['loads_store']):>5}")
    write_json("import_time", {"module": args.module, "python": platform.python_version(), "rows": rows}, args.out)


if __name__ == "__main__":
    main()

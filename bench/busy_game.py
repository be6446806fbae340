"""A game shares the CPU: the built-in model's engine step with the machine quiet vs with one
core kept busy by another process (what a game's main thread does), side by side.

Configurations (each in a fresh process, since the OpenMP wait policy is read when torch loads):
- `torch, spinning, torch's threads`: how the engine ran before issue 20;
- `torch, passive, cores - 1`: the default of `npc-engine serve` now (idle threads sleep, one
  core left to the game);
- `onnx, cores - 1`: the ONNX Runtime backend with the same thread count.
For each, the median `runner.step` time at batch 1 and 8, quiet and busy, and busy / quiet.

    python bench/busy_game.py [--rounds 7] [--steps 4] [--batch-sizes 1,8] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

_PROBE = r"""
import json, statistics, sys, time
sys.path.insert(0, {bench!r})
backend_kind, threads, batch, rounds, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
from common import running_batch
from npc_engine.diffusion import DiffusionSettings
from npc_engine.engine import Engine
from npc_engine.models import default_model_dir, default_onnx_dir
if backend_kind == "onnx":
    from npc_engine.models.onnx_backend import OnnxBackend
    backend = OnnxBackend.from_folder(default_onnx_dir(), num_threads=threads)
else:
    from npc_engine.models.backend import DiffusionGemmaBackend
    backend = DiffusionGemmaBackend.from_pretrained(default_model_dir(), num_threads=threads or None)
engine = Engine(backend, DiffusionSettings(max_denoising_steps=100_000))
requests = running_batch(engine, batch)
runner = engine.core.runner
for _ in range(3):
    runner.step(requests)
samples = []
for _ in range(rounds):
    started = time.perf_counter()
    for _ in range(steps):
        runner.step(requests)
    samples.append((time.perf_counter() - started) * 1000.0 / steps)
print(json.dumps(statistics.median(samples)))
"""


def _spin(until_s: float) -> None:
    while time.time() < until_s:
        pass


class BusyCore:
    """One process spinning on a core for as long as the context lasts: a game's main thread."""

    def __enter__(self) -> "BusyCore":
        self.process = multiprocessing.Process(target=_spin, args=(time.time() + 3600,), daemon=True)
        self.process.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.join()


def probe(backend: str, threads: int, wait_policy: str | None, batch: int, rounds: int, steps: int) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    code = _PROBE.format(bench=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code, backend, str(threads), str(batch), str(rounds), str(steps)],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from common import write_json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    leave_one = max(1, cores - 1)
    configs = [("torch, spinning, torch's threads", "torch", 0, None),
               (f"torch, passive, {leave_one} thread(s)", "torch", leave_one, "PASSIVE"),
               (f"onnx, {leave_one} thread(s)", "onnx", leave_one, None)]
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        quiet = {name: probe(kind, threads, policy, batch, args.rounds, args.steps)
                 for name, kind, threads, policy in configs}
        with BusyCore():
            busy = {name: probe(kind, threads, policy, batch, args.rounds, args.steps)
                    for name, kind, threads, policy in configs}
        rows += [{"config": name, "batch_size": batch, "quiet_ms": quiet[name], "busy_ms": busy[name],
                  "slowdown": busy[name] / quiet[name]} for name, *_ in configs]
    print(f"built-in model step, quiet vs one core busy, on {cores} cores; {args.rounds} rounds x {args.steps} steps")
    print(f"{'configuration':<34} | {'batch':>5} | {'quiet ms':>8} | {'busy ms':>8} | {'busy/quiet':>10}")
    for row in rows:
        print(f"{row['config']:<34} | {row['batch_size']:>5} | {row['quiet_ms']:>8.2f} | {row['busy_ms']:>8.2f} | "
              f"{row['slowdown']:>9.2f}x")
    write_json("busy_game", {"cores": cores, "rows": rows, "args": vars(args)}, args.out)


if __name__ == "__main__":
    main()

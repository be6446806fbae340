"""Engine step time: the ONNX Runtime backend vs the PyTorch backend, side by side.

For batch sizes 1, 8 and 32, both engines' runners step the same requests (same template,
prompts and seeds) on the CPU: one step is the decoder forward, the sampler and the row
bookkeeping, exactly what the engine's frame loop pays. Rounds alternate between the backends so
machine noise hits both alike; medians are reported, with the speed-up (PyTorch ms / ONNX ms).

    python bench/backends.py [--model default|tiny|small] [--rounds 5] [--steps 8] [--out FILE]
                             [--torch-device cpu|cuda] [--onnx-device cpu|cuda]

The devices default to the CPU, the comparison the goal is about; on a GPU machine the same table
can put PyTorch on CUDA (onnxruntime-gpu runs the ONNX side on CUDA where it is installed).

`default` is the shipped model and its shipped export; `tiny` / `small` are random-weight models
of the same architecture, built and exported into a temp folder first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_SIZES, hardware, running_batch, time_step_ms, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine import Engine  # noqa: E402
from npc_engine.export import export_onnx  # noqa: E402
from npc_engine.models import build_tiny_model, default_model_dir, default_onnx_dir  # noqa: E402
from npc_engine.models.onnx_backend import OnnxBackend  # noqa: E402

def model_folders(name: str, scratch: Path) -> tuple[Path, Path]:
    if name == "default":
        return default_model_dir(), default_onnx_dir()
    checkpoint = build_tiny_model(scratch / name, MODEL_SIZES[name])
    export_onnx(checkpoint, scratch / f"{name}-onnx")
    return Path(checkpoint), scratch / f"{name}-onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", choices=["default", *MODEL_SIZES])
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both (torch.set_num_threads and onnxruntime's intra-op)")
    parser.add_argument("--onnx-spinning", action="store_true", help="let onnxruntime's idle threads spin")
    parser.add_argument("--torch-device", default="cpu")
    parser.add_argument("--onnx-device", default="cpu")
    parser.add_argument("--out", default=None, help="JSON output (default: bench/results/backends_MODEL.json)")
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    # A step cap far above what is run, so no row's temperature index runs out while timed.
    cap = (args.rounds + 1) * (args.steps + 1) + 2
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="npc-bench-") as scratch:
        checkpoint, exported = model_folders(args.model, Path(scratch))
        torch_engine = Engine.from_pretrained(checkpoint, device=args.torch_device, dtype="float32",
                                              max_denoising_steps=cap)
        onnx_backend = OnnxBackend.from_folder(exported, device=args.onnx_device, num_threads=args.threads,
                                               allow_spinning=args.onnx_spinning)
        engines = {"torch": torch_engine, "onnx": Engine(onnx_backend, torch_engine.settings)}
        rows = []
        for batch_size in batch_sizes:
            times: dict[str, list[float]] = {name: [] for name in engines}
            batches = {name: running_batch(engine, batch_size) for name, engine in engines.items()}
            for _ in range(args.rounds):
                for name, engine in engines.items():
                    times[name].append(time_step_ms(engine, batches[name], args.steps))
            torch_ms, onnx_ms = (statistics.median(times[name]) for name in ("torch", "onnx"))
            rows.append({"batch_size": batch_size, "torch_ms": round(torch_ms, 3), "onnx_ms": round(onnx_ms, 3),
                         "speedup": round(torch_ms / onnx_ms, 2)})
        devices = {name: str(engine.backend.device) for name, engine in engines.items()}
        for engine in engines.values():
            engine.close()
    cpu = hardware(torch.device("cpu"))
    if devices["torch"].startswith("cuda"):
        cpu += f"; PyTorch on {hardware(torch.device(devices['torch']))}"
    print(f"engine step time, {args.model} model, float32; CPU: {cpu}; torch {torch.__version__} on "
          f"{devices['torch']}, onnxruntime {_ort_version()} on {devices['onnx']}"
          f"{' (spinning threads)' if args.onnx_spinning else ''}; threads: {args.threads or 'default'}")
    print(f"{'batch':>5} | {'PyTorch ms':>10} | {'ONNX ms':>8} | {'speed-up':>8}")
    for row in rows:
        print(f"{row['batch_size']:>5} | {row['torch_ms']:>10.2f} | {row['onnx_ms']:>8.2f} | {row['speedup']:>7.2f}x")
    write_json(f"backends_{args.model}", {"hardware": cpu, "devices": devices, "model": args.model,
                                          "rounds": args.rounds, "threads": args.threads,
                                          "onnx_spinning": args.onnx_spinning,
                                          "steps_per_round": args.steps, "onnxruntime": _ort_version(),
                                          "torch": torch.__version__, "rows": rows}, args.out)


def _ort_version() -> str:
    import onnxruntime
    return onnxruntime.__version__


if __name__ == "__main__":
    main()

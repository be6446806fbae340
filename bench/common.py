"""Shared by the benchmark scripts: the model to run, the hardware's name, the JSON output."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from npc_engine.diffusion import DiffusionSettings, RequestNoise  # noqa: E402
from npc_engine.engine import Engine  # noqa: E402
from npc_engine.engine.request import Request, RequestStatus  # noqa: E402
from npc_engine.models import DiffusionGemmaBackend, TinyModelSpec, build_tiny_model  # noqa: E402

# Random-weight models of the DiffusionGemma architecture: `tiny` is the test model; `small` has
# matrices big enough that a GPU step is not all kernel-launch overhead.
MODEL_SIZES = {
    "tiny": TinyModelSpec(),
    "small": TinyModelSpec(hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8,
                           num_key_value_heads=4, head_dim=64, moe_intermediate_size=512, num_experts=8),
}

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TEMPLATE = ROOT / "schemas" / "templates" / "shopkeeper_reply.json"


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def add_model_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: a fresh random model)")
    parser.add_argument("--size", choices=sorted(MODEL_SIZES), default="tiny",
                        help="size of the fresh random model when no --model is given")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: per device)")
    parser.add_argument("--max-steps", type=int, default=16, help="denoising step cap")
    parser.add_argument("--runner", choices=("fast", "static", "compiled", "general"), default="fast",
                        help="the PyTorch runner: fast (ours, the default; on CUDA the static one with CUDA "
                             "graphs), static, compiled (static through torch.compile), or general "
                             "(transformers' forward)")


def load_backend(args) -> DiffusionGemmaBackend:
    model_dir = args.model or build_tiny_model(Path(tempfile.mkdtemp(prefix="npc-bench-")), MODEL_SIZES[args.size])
    return DiffusionGemmaBackend.from_pretrained(model_dir, device=args.device, dtype=args.dtype,
                                                 runner=getattr(args, "runner", "fast"))


def load_settings(backend: DiffusionGemmaBackend, args) -> DiffusionSettings:
    """The model's own sampler settings with the bench's step cap."""
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    return settings.with_overrides(max_denoising_steps=args.max_steps)


def describe(backend: DiffusionGemmaBackend) -> dict[str, Any]:
    info = backend.info()
    return {"hardware": hardware(backend.device), "device": info.device, "dtype": info.dtype,
            "runner": getattr(backend, "runner", None),
            "num_parameters": info.num_parameters, "vocab_size": info.vocab_size,
            "canvas_length": info.canvas_length, "torch": torch.__version__}


def headline(title: str, meta: dict[str, Any]) -> str:
    return (f"{title} on {meta['hardware']} ({meta['device']}, {meta['dtype']}); model "
            f"{meta['num_parameters'] / 1e6:.2f}M params, vocab {meta['vocab_size']}, canvas {meta['canvas_length']}")


def write_json(name: str, payload: dict[str, Any], out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path


PERSONA = "You are Brom, a gruff blacksmith of Thornvale who distrusts strangers."
PROMPTS = ["Got any rumours about the marsh?", "How much for the sword?", "Who runs this town?",
           "I lost my way in the mine.", "Nice weather today."]


# The PyTorch runners the runner benchmarks compare: general (transformers' forward), fast (our
# forward, dynamic shapes), static (over per-slot state), compiled (static through torch.compile)
# and graphs (static as CUDA graphs; CUDA only).
STATIC_RUNNERS = ("static", "compiled", "graphs")


def engine_on_runner(folder: Path, runner: str, *, device: str | None, dtype: str | None = None,
                     num_slots: int = 32, pads_batches: bool | None = None,
                     settings: DiffusionSettings | None = None) -> tuple[Engine, float]:
    """An engine whose core runs `runner`, built here so that each can be had on any device, and
    the seconds its runner took to build (capture, compile). A failed capture for "graphs" exits;
    a failed compile for "compiled" leaves `core.runner.is_compiled` False (the log says why)."""
    from npc_engine.engine.static_runner import StaticRunner

    backend = DiffusionGemmaBackend.from_pretrained(folder, device=device, dtype=dtype,
                                                    runner="general" if runner == "general" else "fast")
    if runner != "general":
        if backend.fast is None:
            raise SystemExit(f"{folder}: the fast path does not cover this model")
        backend.runner = "fast"  # the engine builds the dynamic-shape runner; the static ones below
    engine = Engine(backend, settings)
    started = time.perf_counter()
    if runner in STATIC_RUNNERS:
        core = engine.core
        core.runner = StaticRunner(backend, engine.settings, core.prefix_cache,
                                   prefill_chunk_tokens=engine.config.prefill_chunk_tokens, num_slots=num_slots,
                                   pads_batches=pads_batches, uses_graphs=runner == "graphs",
                                   compiles=runner == "compiled")
        if runner == "graphs" and core.runner.graphs is None:
            raise SystemExit("CUDA graph capture failed (see the log)")
    return engine, time.perf_counter() - started


def running_batch(engine: Engine, batch_size: int, template: Any = TEMPLATE,
                  values: dict[str, str] | None = None) -> list[Request]:
    """`batch_size` requests prefilled and open, as the scheduler would hand them to a step
    (`values`: a pattern template's placeholders)."""
    plan = engine.compiler.compile(engine.resolve_template(template))
    automata = engine.compiler.slot_automata(plan, values or {})
    requests = []
    for index in range(batch_size):
        prefix_ids, turn_ids = engine.prompts.encode(PROMPTS[index % len(PROMPTS)], PERSONA)
        request = Request(request_id=f"bench-{index}", plan=plan, prefix_ids=prefix_ids, turn_ids=turn_ids,
                          seed=index, generator=RequestNoise(index), automata=automata)
        while request.status != RequestStatus.RUNNING:
            engine.core.runner.prefill(request)
        requests.append(request)
    return requests


def time_step_ms(engine: Engine, requests: list[Request], num_steps: int) -> float:
    """Mean ms of `num_steps` runner steps of `requests` (after one that stacks the batch)."""
    runner = engine.core.runner
    runner.forget_batch()
    runner.step(requests)  # stacks the batch; later steps reuse it, as in the engine
    engine.backend.synchronize()
    started = time.perf_counter()
    for _ in range(num_steps):
        runner.step(requests)
    engine.backend.synchronize()
    return (time.perf_counter() - started) * 1000.0 / num_steps

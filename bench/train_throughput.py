"""Training throughput (issue 32): samples per second of the shipped recipe's optimizer step, and
where a step's time goes (drawing and encoding the streamed samples, then forward, backward and
the optimizer), side by side, in turns: the recipe as shipped (samples drawn in the loop), with
the samples drawn one step ahead on a thread (what `train` does now), and with larger batches.

    python bench/train_throughput.py [--steps 20] [--rounds 3] [--world FILE]

Do not run it while a training run shares the cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import hardware, write_json  # noqa: E402

from npc_engine.models.prompt import PromptEncoder  # noqa: E402
from npc_engine.models import DiffusionGemmaBackend  # noqa: E402
from npc_engine.models.tiny import build_tiny_tokenizer  # noqa: E402
from npc_engine.templates import TemplateCompiler  # noqa: E402
from npc_engine.training import PRESETS, DataConfig, generate, stream  # noqa: E402
from npc_engine.training.data import iter_texts  # noqa: E402
from npc_engine.training.trainer import StepSamples, _batch, build_model, encode_samples, loss_on  # noqa: E402

# (batch size, drawn ahead on a thread); the first is the shipped recipe before issue 32
VARIANTS = ((16, False), (16, True), (32, True), (64, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--world", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    data = DataConfig(num_train=256, num_heldout=0, event_fraction=0.15, npc_fraction=0.1, world=args.world)
    spec = PRESETS["voice"]
    tokenizer = build_tiny_tokenizer(spec.tokenizer_vocab_size, iter_texts(generate(data, split="train")),
                                     max_phrase_chars=spec.max_phrase_chars)
    model = build_model(spec, tokenizer, 0)
    backend = DiffusionGemmaBackend(model, tokenizer, "bench")
    encoder = PromptEncoder(tokenizer, max_position_embeddings=spec.max_position_embeddings,
                            canvas_length=spec.canvas_length)
    compiler = TemplateCompiler.for_backend(backend)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    model.train()
    rows: dict[tuple[int, bool], dict[str, list[float]]] = {v: {"wait_ms": [], "compute_ms": []} for v in VARIANTS}
    step = 0
    for _ in range(args.rounds):
        for batch_size, is_ahead in VARIANTS:  # in turns, so drift on a shared machine hits every variant

            def draw(at: int, size: int = batch_size) -> list:
                return encode_samples(stream(data, at, size), encoder, compiler)[0]

            ahead = StepSamples(draw, step, step + args.steps + 1) if is_ahead else None
            wait_ms = compute_ms = 0.0
            for index in range(args.steps + 1):  # the first step of a turn warms up and is not counted
                started = time.perf_counter()
                chosen = ahead.take(step) if ahead is not None else draw(step)
                batch = _batch(chosen, backend.device)
                drawn = time.perf_counter()
                loss = loss_on(backend, batch, generator, 0.0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                done = time.perf_counter()
                if index:
                    wait_ms += (drawn - started) * 1000
                    compute_ms += (done - drawn) * 1000
                step += 1
            if ahead is not None:
                ahead.close()
            rows[(batch_size, is_ahead)]["wait_ms"].append(wait_ms / args.steps)
            rows[(batch_size, is_ahead)]["compute_ms"].append(compute_ms / args.steps)
    machine = hardware(torch.device("cpu"))
    print(f"\nTraining throughput on {machine}; preset voice ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
          f"parameters), streamed samples, medians of {args.rounds} turns of {args.steps} steps")
    print("| batch | samples | waiting for samples, ms/step | compute ms/step | samples/s | vs shipped |\n"
          "|---:|---|---:|---:|---:|---:|")
    base, summary = None, {}
    for (batch_size, is_ahead), row in rows.items():
        wait_ms, compute_ms = statistics.median(row["wait_ms"]), statistics.median(row["compute_ms"])
        rate = batch_size / ((wait_ms + compute_ms) / 1000)
        base = base or rate
        summary[f"{batch_size}{'_ahead' if is_ahead else ''}"] = {"wait_ms": wait_ms, "compute_ms": compute_ms,
                                                                 "samples_per_s": rate, **row}
        print(f"| {batch_size} | {'drawn ahead' if is_ahead else 'in the loop'} | {wait_ms:.0f} | {compute_ms:.0f} | "
              f"{rate:.1f} | {rate / base:.2f}x |")
    write_json("train_throughput", {"hardware": machine, "rows": summary, "args": vars(args)}, args.out)


if __name__ == "__main__":
    main()

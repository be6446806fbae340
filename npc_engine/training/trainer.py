"""Train a DiffusionGemma-architecture model with its own objective on template-filling samples.

The objective follows the reference recipe (Google's DiffusionGemma training code; the NeMo and
Megatron guides). Per sample t ~ U(1e-3, 1), drawn low-discrepancy across the batch (one
stratum per row); every *slot* position of the target canvas is replaced by a uniformly random
token with probability t (skeleton positions never: at inference they are clamped). The decoder's
cross-entropy runs over every slot position, corrupted and clean alike; beside it, an
autoregressive next-token loss on the causal encoder over the prompt it encodes (weight
`ar_weight`). Self-conditioning: a no-grad first pass gives logits that a random half of the
batch receives on the second pass; the other half gets the true zero signal
(`self_conditioning_mask`), as at inference. Prompt and canvas go through the same backend calls
the engine uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from transformers import DiffusionGemmaForBlockDiffusion

from ..diffusion.sampler import MASKED_LOGIT
from ..models.prompt import PromptEncoder
from ..errors import NpcEngineError
from ..models import DiffusionGemmaBackend
from ..models.tiny import TinyModelSpec, build_tiny_tokenizer, generation_config, tiny_config
from ..templates import TemplateCompiler
from .data import Sample, iter_texts

__all__ = ["PRESETS", "TrainConfig", "TrainError", "train", "encode_samples"]

PRESETS: dict[str, TinyModelSpec] = {
    "tiny": TinyModelSpec(tokenizer_vocab_size=1024, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_experts=4, top_k_experts=2,
                          moe_intermediate_size=128, sliding_window=256, canvas_length=96,
                          max_position_embeddings=1024, max_denoising_steps=12),
    # The shipped model: phrase-merging tokenizer (frequent phrases are one token, so prompts and
    # lines are 2-3x shorter) and a 64-token canvas, which holds the largest template of the
    # family it is trained on (six fields, a 32-token line).
    "voice": TinyModelSpec(tokenizer_vocab_size=3072, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_experts=4,
                           top_k_experts=2, moe_intermediate_size=128, sliding_window=256, canvas_length=64,
                           max_position_embeddings=1024, max_denoising_steps=16, max_phrase_chars=24),
    "small": TinyModelSpec(tokenizer_vocab_size=2048, hidden_size=256, intermediate_size=768, num_hidden_layers=6,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=64, num_experts=4,
                           top_k_experts=2, moe_intermediate_size=256, sliding_window=256, canvas_length=96,
                           max_position_embeddings=1024, max_denoising_steps=12),
}


class TrainError(NpcEngineError, ValueError):
    """Training cannot start: the output folder exists, a checkpoint is from another config, ..."""


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "voice"
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    eval_every: int = 250
    checkpoint_every: int = 250
    num_eval_samples: int = 64
    seed: int = 0
    ar_weight: float = 1.0          # the encoder's next-token loss beside the decoder's
    init_from: str | None = None    # a model folder to start from (its weights and tokenizer)

    def fingerprint(self, data: dict[str, Any]) -> str:
        """What a checkpoint must match to be resumed (steps and eval cadence may change)."""
        key = {"preset": dataclasses.asdict(PRESETS[self.preset]), "batch_size": self.batch_size,
               "learning_rate": self.learning_rate, "seed": self.seed, "data": data, "ar_weight": self.ar_weight}
        if self.init_from is not None:  # only then, so checkpoints written before the field still resume
            key["init_from"] = self.init_from
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Encoded:
    prompt_ids: list[int]
    canvas: torch.Tensor     # (L,) target canvas
    is_slot: torch.Tensor    # (L,) positions that are denoised at inference
    allowed: torch.Tensor    # (L, V) allowed tokens


def encode_samples(samples: list[Sample], encoder: PromptEncoder,
                   compiler: TemplateCompiler) -> tuple[list[Encoded], int]:
    """Samples -> prompt ids and target canvases. Returns (encoded, number skipped because a field
    cannot be written in the canvas, e.g. a line longer than its slot)."""
    encoded, num_skipped = [], 0
    for sample in samples:
        plan = compiler.compile(sample.template)
        canvas = torch.from_numpy(plan.clamp_ids.copy())
        is_ok = True
        for slot in plan.slots:
            value = sample.fields[slot.name]
            if slot.kind == "text":
                ids = list(compiler.tokenizer.encode(str(value), add_special_tokens=False))
                span_allowed = plan.allowed_tokens[slot.start: slot.start + len(ids)]
                if len(ids) > slot.length or not all(span_allowed[i, t] for i, t in enumerate(ids)):
                    is_ok = False
                    break
                ids = ids + [plan.pad_token_id] * (slot.length - len(ids))
                canvas[slot.start: slot.start + slot.length] = torch.tensor(ids)
            else:
                canvas[slot.start: slot.start + slot.length] = torch.from_numpy(slot.option_ids[slot.values.index(value)])
        if not is_ok:
            num_skipped += 1
            continue
        prefix_ids, turn_ids = encoder.encode(sample.prompt, sample.prefix)
        encoded.append(Encoded([*prefix_ids, *turn_ids], canvas, torch.from_numpy(plan.clamp_ids < 0),
                               torch.from_numpy(plan.allowed_tokens)))
    return encoded, num_skipped


class StepSamples:
    """A streamed run's samples, drawn and encoded one step ahead on a thread: drawing is Python
    and a step's compute releases the GIL, so the two overlap. A step gets the same samples as
    when drawn in the loop (they depend on the step alone), so runs and resumes are unchanged."""

    def __init__(self, draw: Callable[[int], list[Encoded]], first: int, last: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npc-train-samples")
        self._draw, self._last = draw, last
        self._next = self._pool.submit(draw, first) if first < last else None

    def take(self, step: int) -> list[Encoded]:
        """Step `step`'s samples (steps are taken in order); starts drawing the next step's."""
        if self._next is None:
            raise TrainError(f"no samples drawn for step {step}")
        chosen = self._next.result()
        self._next = self._pool.submit(self._draw, step + 1) if step + 1 < self._last else None
        return chosen

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _batch(items: list[Encoded], device: torch.device) -> dict[str, torch.Tensor]:
    length = max(len(item.prompt_ids) for item in items)
    ids = torch.zeros((len(items), length), dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.bool)
    for row, item in enumerate(items):  # left padding, as the engine merges caches
        ids[row, length - len(item.prompt_ids):] = torch.tensor(item.prompt_ids)
        mask[row, length - len(item.prompt_ids):] = True
    return {"ids": ids.to(device), "mask": mask.to(device),
            "positions": (mask.long().cumsum(-1) - 1).clamp(min=0).to(torch.int32).to(device),
            "lengths": mask.sum(-1).to(torch.int32).to(device),
            "canvas": torch.stack([i.canvas for i in items]).to(device),
            "is_slot": torch.stack([i.is_slot for i in items]).to(device),
            "allowed": torch.stack([i.allowed for i in items]).to(device)}


def loss_on(backend: DiffusionGemmaBackend, batch: dict[str, torch.Tensor], generator: torch.Generator,
            ar_weight: float = 1.0) -> torch.Tensor:
    """The objective for one batch (see the module docstring)."""
    device = batch["ids"].device
    num_rows, canvas_length = batch["canvas"].shape
    cache = backend.new_cache()
    hidden = backend.encode(batch["ids"], batch["mask"], cache, batch["positions"])
    strata = (torch.arange(num_rows, device=device)[:, None]
              + torch.rand((num_rows, 1), generator=generator, device=device)) / num_rows
    t = 1e-3 + (1 - 1e-3) * strata[torch.randperm(num_rows, generator=generator, device=device)]
    is_slot = batch["is_slot"]
    is_corrupt = (torch.rand((num_rows, canvas_length), generator=generator, device=device) < t) & is_slot
    noise = torch.randint(0, backend.vocab_size, (num_rows, canvas_length), generator=generator, device=device)
    noisy = torch.where(is_corrupt, noise, batch["canvas"])
    decoder_mask = F.pad(batch["mask"], (0, canvas_length), value=True)
    masks = backend.decoder_masks(noisy, cache, decoder_mask)
    positions = batch["lengths"][:, None] + torch.arange(canvas_length, dtype=torch.int32, device=device)[None, :]
    with torch.no_grad():
        first = backend.denoise(noisy, None, cache, masks, positions).masked_fill(~batch["allowed"], MASKED_LOGIT)
    use_signal = torch.rand((num_rows,), generator=generator, device=device) < 0.5
    logits = backend.denoise(noisy, first.to(backend.dtype), cache, masks, positions, use_signal)
    logits = logits.masked_fill(~batch["allowed"], MASKED_LOGIT)
    loss = F.cross_entropy(logits[is_slot], batch["canvas"][is_slot])
    if ar_weight > 0:
        loss = loss + ar_weight * _encoder_loss(backend, hidden, batch["ids"], batch["mask"])
    return loss


def _encoder_loss(backend: DiffusionGemmaBackend, hidden: torch.Tensor, ids: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of the causal encoder over the (left-padded) prompt."""
    is_target = mask[:, :-1] & mask[:, 1:]
    logits = backend.model.lm_head(hidden[:, :-1][is_target]).float()
    softcap = backend.model.final_logit_softcapping
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, ids[:, 1:][is_target])


def build_model(spec: TinyModelSpec, tokenizer: Any, seed: int) -> DiffusionGemmaForBlockDiffusion:
    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(tiny_config(spec, vocab_size=len(tokenizer)))
    model.generation_config = generation_config(spec)
    return model


def warm_start(path: str | Path, spec: TinyModelSpec) -> tuple[DiffusionGemmaForBlockDiffusion, Any]:
    """A trained model folder's weights (in float32) and its tokenizer, to train on from there: the
    tokenizer is kept, since the embeddings are its ids. TrainError when the folder cannot be
    loaded or its shape is not `spec`'s."""
    try:
        backend = DiffusionGemmaBackend.from_pretrained(path, device="cpu", dtype="float32")
    except NpcEngineError as exc:
        raise TrainError(f"--init-from {path}: {exc}") from None
    text = backend.text_config
    found = {"hidden_size": text.hidden_size, "num_hidden_layers": text.num_hidden_layers,
             "intermediate_size": text.intermediate_size, "canvas_length": backend.canvas_length}
    wanted = {name: getattr(spec, name) for name in found}
    if found != wanted:
        raise TrainError(f"--init-from {path}: its shape {found} is not the preset's {wanted}")
    model = backend.model.float()
    model.generation_config = generation_config(spec)
    return model, backend.tokenizer


def train(config: TrainConfig, out_dir: str | Path, train_samples: list[Sample], eval_samples: list[Sample], *,
          data_description: dict[str, Any], device: str | None = None, is_overwrite: bool = False,
          is_resume: bool = False, is_fp16: bool = False, log=print,
          sample_stream: Callable[[int, int], list[Sample]] | None = None,
          stop_at: int | None = None) -> dict[str, Any]:
    """Train, checkpoint, and write a model folder that `Engine.from_pretrained` loads. Returns a report.

    `train_samples` build the tokenizer; they are also the training set unless `sample_stream`
    is given: then `sample_stream(step, batch_size)` hands each optimizer step fresh samples (the
    same step, the same samples, so a resumed run continues exactly). `stop_at` ends the run at
    that step (checkpointed) on the schedule of `config.steps`: a long run split over sessions."""
    if config.preset not in PRESETS:
        raise TrainError(f"unknown preset {config.preset!r}; expected one of {sorted(PRESETS)}")
    out = Path(out_dir)
    checkpoint_path = out / "checkpoints" / "last.pt"
    fingerprint = config.fingerprint(data_description)
    if out.exists() and any(out.iterdir()) and not (is_overwrite or is_resume):
        raise TrainError(f"output folder {out} exists and is not empty; pass --overwrite to replace it "
                         "or --resume to continue its checkpoint")
    if is_overwrite and not is_resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = PRESETS[config.preset]
    random.seed(config.seed)
    if config.init_from is not None:
        model, tokenizer = warm_start(config.init_from, spec)
    else:
        tokenizer = build_tiny_tokenizer(spec.tokenizer_vocab_size, iter_texts(train_samples),
                                         max_phrase_chars=spec.max_phrase_chars)
        model = build_model(spec, tokenizer, config.seed)
    backend = DiffusionGemmaBackend(model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))),
                                    tokenizer, str(out))
    encoder = PromptEncoder(tokenizer, max_position_embeddings=spec.max_position_embeddings,
                            canvas_length=spec.canvas_length)
    compiler = TemplateCompiler.for_backend(backend, max_blocks=1)  # a sample is one canvas
    # Streamed training draws its samples per step; the fixed set only built the tokenizer.
    train_set, num_skipped = encode_samples(train_samples if sample_stream is None else train_samples[:256],
                                            encoder, compiler)
    eval_set, _ = encode_samples(eval_samples[: config.num_eval_samples], encoder, compiler)
    if not train_set:
        raise TrainError("no training sample fits the canvas")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / config.warmup_steps) * (
        0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, config.steps))))))
    start_step, history = 0, []
    if is_resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=backend.device, weights_only=False)
        if state["fingerprint"] != fingerprint:
            raise TrainError(f"checkpoint {checkpoint_path} is from another config or data "
                             f"({state['fingerprint']} != {fingerprint}); train into a new folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_step, history = state["step"], state["history"]
        log(f"resumed at step {start_step}")
    generator = torch.Generator(device=backend.device).manual_seed(config.seed + start_step)
    order = random.Random(config.seed + start_step)
    log(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, vocab {len(tokenizer)}, "
        f"{len(train_set)} training samples ({num_skipped} skipped), {len(eval_set)} validation samples")
    started = time.perf_counter()
    model.train()
    last_step = config.steps if stop_at is None else min(config.steps, stop_at)
    ahead = None if sample_stream is None else StepSamples(
        lambda at: encode_samples(sample_stream(at, config.batch_size), encoder, compiler)[0], start_step, last_step)
    for step in range(start_step, last_step):
        if ahead is not None:
            chosen = ahead.take(step)
        else:
            chosen = order.sample(train_set, min(config.batch_size, len(train_set)))
        loss = loss_on(backend, _batch(chosen, backend.device), generator, config.ar_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        is_last = step + 1 == last_step
        if (step + 1) % config.eval_every == 0 or is_last:
            validation = evaluate_loss(backend, eval_set, config) if eval_set else float("nan")
            # The decoder's part alone compares runs with and without the encoder loss.
            decoder_only = evaluate_loss(backend, eval_set, config, ar_weight=0.0) if eval_set else float("nan")
            elapsed = time.perf_counter() - started
            history.append({"step": step + 1, "train_loss": loss.item(), "validation_loss": validation,
                            "validation_decoder_loss": decoder_only, "seconds": round(elapsed, 1)})
            log(f"step {step + 1}/{config.steps}  loss {loss.item():.3f}  validation {validation:.3f}  "
                f"decoder {decoder_only:.3f}  {elapsed:.0f}s")
            model.train()
        if (step + 1) % config.checkpoint_every == 0 or is_last:
            checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"step": step + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "fingerprint": fingerprint, "history": history},
                       checkpoint_path)
    if ahead is not None:
        ahead.close()
    model.eval()
    seconds = time.perf_counter() - started
    if is_fp16:
        model = model.half()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    templates = out / "templates"
    templates.mkdir(exist_ok=True)
    # The family's generated variants stay out: the folder ships the templates users call by name.
    for template in {s.template.name: s.template for s in train_samples
                     if s.meta.get("is_base_template", True)}.values():
        (templates / f"{template.name}.json").write_text(template.model_dump_json(indent=2) + "\n")
    report = {"config": dataclasses.asdict(config), "data": data_description, "fingerprint": fingerprint,
              "num_parameters": sum(p.numel() for p in model.parameters()), "history": history,
              "train_seconds": round(seconds, 1), "device": str(backend.device), "torch": torch.__version__,
              "num_train_samples": len(train_set), "num_skipped": num_skipped}
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


@torch.no_grad()
def evaluate_loss(backend: DiffusionGemmaBackend, items: list[Encoded], config: TrainConfig,
                  ar_weight: float | None = None) -> float:
    """Mean objective over `items` with fixed noise (comparable across evaluations)."""
    ar_weight = config.ar_weight if ar_weight is None else ar_weight
    backend.model.eval()
    generator = torch.Generator(device=backend.device).manual_seed(12345)
    losses = []
    for start in range(0, len(items), config.batch_size):
        losses.append(float(loss_on(backend, _batch(items[start: start + config.batch_size], backend.device),
                                    generator, ar_weight)))
    return sum(losses) / len(losses)

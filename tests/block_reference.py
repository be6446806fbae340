"""A template filled block by block the way `generate` continues: the reference for the engine's
multi-block fills. Tests only.

It is `parity_oracle.BlockDiffusion`'s walk for one prompt (proven token for token equal to
`model.generate`, several canvases included): encode the whole prompt at once, denoise a canvas
until it is stable and confident or out of steps, encode the finished canvas into the cache at
the positions after it (`end_canvas`), open the next canvas. What differs is what the engine
adds on purpose, taken from the same functions the engine calls: the engine's sampler with the
request's host draws (`sample_with_draws`, `RequestNoise`), each block's template masks, and the
block commit (`templates.blocks.commit_block`: the chosen options' tokens and pads after a line's
end are what gets encoded). Run it with a backend loaded with runner="general" and the forwards
are transformers' own.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from npc_engine.diffusion import DiffusionSettings, RequestNoise
from npc_engine.diffusion.constants import MASKED_LOGIT
from npc_engine.diffusion.sampler import sample_with_draws
from npc_engine.diffusion.stability import stable_and_confident
from npc_engine.models.backend import DiffusionGemmaBackend
from npc_engine.templates import CanvasPlan
from npc_engine.templates.blocks import commit_block

__all__ = ["fill_block_by_block"]


@torch.inference_mode()
def fill_block_by_block(backend: DiffusionGemmaBackend, settings: DiffusionSettings, plan: CanvasPlan,
                        prompt_ids: list[int], seed: int) -> tuple[list[np.ndarray], int]:
    """Each block's committed ids (the last block as denoised) and the total number of steps."""
    device, length, vocab = backend.device, plan.canvas_length, backend.vocab_size
    noise = RequestNoise(seed)
    temperatures = torch.from_numpy(settings.temperatures())
    cache = backend.new_cache()
    cur_len = len(prompt_ids)
    attention_mask = torch.ones((1, cur_len), dtype=torch.bool, device=device)
    backend.encode(torch.tensor([prompt_ids], device=device), attention_mask, cache,
                   torch.arange(cur_len, dtype=torch.int32, device=device)[None])
    blocks: list[np.ndarray] = []
    next_pads = np.zeros(0, dtype=np.int64)
    num_steps = 0
    for index in range(plan.num_blocks):
        clamp_ids = plan.clamp_ids[plan.block(index)].copy()
        bias = torch.from_numpy(plan.logit_bias[plan.block(index)].copy())
        clamp_ids[next_pads] = plan.pad_token_id
        bias[next_pads] = MASKED_LOGIT
        bias[next_pads, plan.pad_token_id] = 0.0
        canvas = torch.from_numpy(noise.tokens(length, vocab))[None]
        clamp = torch.from_numpy(clamp_ids)[None]
        canvas = argmax_canvas = torch.where(clamp >= 0, clamp, canvas)
        decoder_attention_mask = F.pad(attention_mask, (0, length), value=True)
        masks = backend.decoder_masks(canvas, cache, decoder_attention_mask)
        positions = torch.arange(cur_len, cur_len + length, dtype=torch.int32, device=device)[None]
        logits, history, steps_left = None, None, settings.max_denoising_steps
        while True:
            raw = backend.denoise(canvas, logits, cache, masks, positions)
            uniform, renoise = noise.step_draws(length, vocab)
            canvas, argmax_canvas, mean_entropy, logits = sample_with_draws(
                raw, bias[None], temperatures[steps_left - 1][None], torch.from_numpy(uniform)[None],
                torch.from_numpy(renoise)[None], settings.entropy_bound)
            is_done, history = stable_and_confident(argmax_canvas, mean_entropy, history,
                                                    settings.stability_threshold, settings.confidence_threshold)
            steps_left -= 1
            num_steps += 1
            if bool(is_done[0]) or steps_left == 0:
                break
        if index + 1 == plan.num_blocks:
            blocks.append(argmax_canvas[0].numpy())
            break
        done_ids = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
        commit = commit_block(plan, index, argmax_canvas[0].numpy(), logits[0], done_ids)
        blocks.append(commit.ids)
        next_pads = commit.next_pads
        # `end_canvas`: the finished canvas goes into the cache at the positions after it.
        attention_mask = F.pad(attention_mask, (0, length), value=True)
        backend.encode(torch.from_numpy(commit.ids)[None], attention_mask, cache, positions)
        cur_len += length
    return blocks, num_steps

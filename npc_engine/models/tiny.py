"""Build a tiny random DiffusionGemma checkpoint (model + tokenizer) in a local folder.

Tests and benchmarks use it: it has the real architecture (encoder, decoder, self-conditioning,
MoE, a tiny vision tower) with a few million random weights, a small byte-level BPE tokenizer
and a chat template. It is saved with `save_pretrained` and loaded back through the very same
`DiffusionGemmaBackend.from_pretrained` path as a real checkpoint. Nothing is downloaded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    DiffusionGemmaConfig,
    DiffusionGemmaForBlockDiffusion,
    DiffusionGemmaTextConfig,
    Gemma4VisionConfig,
    PreTrainedTokenizerFast,
)
from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
    DiffusionGemmaGenerationConfig,
    EntropyBoundSamplerConfig,
)

__all__ = ["TinyModelSpec", "build_tiny_model", "build_tiny_tokenizer", "tiny_config", "generation_config",
           "SPECIAL_TOKENS", "CHAT_TEMPLATE"]

# Ids 0..2 follow Gemma's layout (pad, eos, bos); the rest are reserved so that the config's
# image token ids point at real vocabulary entries.
SPECIAL_TOKENS = [
    "<pad>", "<eos>", "<bos>", "<unk>",
    "<start_of_image>", "<end_of_image>", "<image>",
    "<start_of_turn>", "<end_of_turn>",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

_NAMES = ["Mara", "Tobin", "Greta", "Old Wil", "Sera", "Brannoc", "Ysolde", "Pip"]
_OPENERS = ["Well met,", "Hail,", "Careful now,", "Ah,", "Listen,", "By the gods,", "Hm."]
_LINES = [
    "the roads north are thick with wolves this winter",
    "I sell blades, rope and lamp oil, nothing more",
    "you look like you have walked a long way",
    "the miller's daughter saw lights over the marsh",
    "ten silver for the room, and the stew is free",
    "don't trust the men who drink at the corner table",
    "the old bridge washed out in the spring flood",
    "I remember your face from the harvest fair",
    "the baron pays well for wolf pelts, 5 coins each",
    "what do you want? speak quickly, I'm busy",
]
_EMOTIONS = ["happy", "angry", "afraid", "sad", "curious", "neutral", "suspicious"]
_ACTIONS = ["nod", "wave", "shrug", "frown", "laugh", "point_north", "hand_over_item"]


def _tokenizer_corpus() -> list[str]:
    lines = []
    for name, opener, line in itertools.product(_NAMES, _OPENERS, _LINES):
        lines.append(f"{name}: {opener} {line}.")
    for emotion, action, trust in itertools.product(_EMOTIONS, _ACTIONS, range(-3, 4)):
        lines.append(
            f'{{"say": "Hello, traveller!", "emotion": "{emotion}", "action": "{action}", '
            f'"trust_delta": {trust}, "leaves": {"true" if trust > 0 else "false"}}}'
        )
    lines.append(" ".join(str(n) for n in range(0, 200)))
    lines.append("Ünïcödé: café, naïve, smörgåsbord, 東京, ¿qué?, — “quotes” ‘single’")
    return lines


def build_tiny_tokenizer(vocab_size: int = 512, corpus: Iterable[str] | None = None, *,
                         max_phrase_chars: int = 0) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with DiffusionGemma's special tokens and a chat template, trained
    on `corpus` (default: a small built-in NPC corpus). Deterministic for the same corpus.

    With `max_phrase_chars` > 0, merges may cross spaces (never a line break), so a frequent
    phrase of up to that many characters becomes one token: a narrow corpus's lines and prompts
    then take far fewer tokens, which a small diffusion model denoises far more easily."""
    tokenizer = Tokenizer(models.BPE())
    if max_phrase_chars > 0:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        **({"max_token_length": max_phrase_chars} if max_phrase_chars > 0 else {}),
    )
    tokenizer.train_from_iterator(list(corpus) if corpus is not None else _tokenizer_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of a tiny random DiffusionGemma. The defaults give about 1.5M parameters."""

    tokenizer_vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    num_experts: int = 4
    top_k_experts: int = 2
    moe_intermediate_size: int = 64
    sliding_window: int = 128
    canvas_length: int = 128
    max_position_embeddings: int = 4096
    max_denoising_steps: int = 16
    seed: int = 0
    max_phrase_chars: int = 0   # > 0: tokenizer merges may cross spaces (see build_tiny_tokenizer)


def tiny_config(spec: TinyModelSpec, vocab_size: int) -> DiffusionGemmaConfig:
    layer_types = ["sliding_attention"] * (spec.num_hidden_layers - 1) + ["full_attention"]
    text_config = DiffusionGemmaTextConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        global_head_dim=spec.head_dim,
        sliding_window=spec.sliding_window,
        layer_types=layer_types,
        num_experts=spec.num_experts,
        top_k_experts=spec.top_k_experts,
        moe_intermediate_size=spec.moe_intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    # The vision tower is unused for dialogue; keep it negligible.
    vision_config = Gemma4VisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, head_dim=8, patch_size=4, position_embedding_size=16,
    )
    return DiffusionGemmaConfig(
        text_config=text_config,
        vision_config=vision_config,
        canvas_length=spec.canvas_length,
        boi_token_id=SPECIAL_TOKENS.index("<start_of_image>"),
        eoi_token_id=SPECIAL_TOKENS.index("<end_of_image>"),
        image_token_id=SPECIAL_TOKENS.index("<image>"),
    )


def generation_config(spec: TinyModelSpec) -> DiffusionGemmaGenerationConfig:
    return DiffusionGemmaGenerationConfig(
        max_new_tokens=spec.canvas_length,
        max_denoising_steps=spec.max_denoising_steps,
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1),
        t_min=0.4,
        t_max=0.8,
        stability_threshold=1,
        confidence_threshold=0.005,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )


def build_tiny_model(directory: str | Path, spec: TinyModelSpec | None = None) -> Path:
    """Create a tiny random DiffusionGemma checkpoint with its tokenizer in `directory`.

    Returns the directory. The same spec always yields the same weights.
    """
    spec = spec or TinyModelSpec()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(spec.tokenizer_vocab_size)
    config = tiny_config(spec, vocab_size=len(tokenizer))
    torch.manual_seed(spec.seed)
    model = DiffusionGemmaForBlockDiffusion(config)
    model.generation_config = generation_config(spec)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory

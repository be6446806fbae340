"""The tokenizer of an exported model, on the `tokenizers` library alone (no transformers).

It offers the few calls the engine makes of a Hugging Face tokenizer, with the same results (the
exporter checks them against the original before it reports success): encode with special-token
parsing on or off, decode, batch_decode, the special and added ids, and the chat framing around
one user turn, which the exporter renders once and stores in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["OnnxTokenizer"]


class OnnxTokenizer:
    def __init__(self, path: Path, *, special_ids: list[int], added_ids: list[int],
                 chat_framing: tuple[str, str] | None) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelLoadError("the ONNX backend needs the `tokenizers` package: "
                                 "pip install 'npc-engine[onnx]'", path=str(path)) from exc
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception type for bad files
            raise ModelLoadError(f"cannot read the tokenizer {str(path)!r}: {exc}", path=str(path)) from exc
        self.all_special_ids = list(special_ids)
        self.added_tokens_decoder = {token_id: None for token_id in added_ids}
        self._chat_framing = chat_framing
        self.chat_template = "rendered at export" if chat_framing is not None else None

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def backend_tokenizer(self) -> Any:
        """The `tokenizers.Tokenizer` underneath, as a Hugging Face fast tokenizer names it
        (pattern slots read each token's piece and the decoder's kind from it)."""
        return self._tokenizer

    def encode(self, text: str, add_special_tokens: bool = False, split_special_tokens: bool = False) -> list[int]:
        self._tokenizer.encode_special_tokens = split_special_tokens
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, sequences: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        return self._tokenizer.decode_batch([[int(i) for i in ids] for ids in sequences],
                                            skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict[str, str]], *, tokenize: bool = False,
                            add_generation_prompt: bool = True) -> str:
        """One user turn framed as the model's chat template frames it (the only use the engine
        makes of a chat template: finding the framing around a turn)."""
        if self._chat_framing is None or tokenize or not add_generation_prompt or len(messages) != 1 \
                or messages[0].get("role") != "user":
            raise NotImplementedError("an exported tokenizer frames exactly one user turn")
        before, after = self._chat_framing
        return before + messages[0]["content"] + after

"""Player text -> token ids: a stable prefix (chat framing + persona) and the new turn.

The player's text is tokenized with special-token parsing off and spliced into the model's chat
template, so it can never forge a turn marker. The prefix is tokenized on its own, so the same
persona always gives the same ids and the engine's prefix cache hits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import PromptError

__all__ = ["EncodedPrompt", "PromptEncoder"]

# Stands in for the content while the chat template is rendered, to find the framing around it.
_CONTENT_SENTINEL = "\x00npc-engine-content\x00"
_PREFIX_SEPARATOR = "\n\n"


class EncodedPrompt(NamedTuple):
    """A prompt as token ids: the stable prefix (its KV cache is reused) and the new turn."""

    prefix_ids: tuple[int, ...]
    turn_ids: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return len(self.prefix_ids) + len(self.turn_ids)


class _CheckedPrompt(EncodedPrompt):
    """An EncodedPrompt as `PromptEncoder.check` returns it: still a pair of id tuples, marked
    with the encoder that checked it, so the engine need not walk its ids a second time."""

    checked_by: "PromptEncoder"


class PromptEncoder:
    def __init__(self, tokenizer: Any, *, max_position_embeddings: int, canvas_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_position_embeddings = max_position_embeddings
        self.canvas_length = canvas_length
        self.max_prompt_tokens = max_position_embeddings - canvas_length
        self.vocab_size = len(tokenizer)
        self.turn_prefix_ids, self.turn_suffix_ids = self._chat_framing()
        self.separator_ids = self._encode(_PREFIX_SEPARATOR)

    def _chat_framing(self) -> tuple[list[int], list[int]]:
        if not getattr(self.tokenizer, "chat_template", None):
            return [], []
        framed = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": _CONTENT_SENTINEL}], tokenize=False, add_generation_prompt=True)
        before, _, after = framed.partition(_CONTENT_SENTINEL)
        return self._encode(before, parse_special=True), self._encode(after, parse_special=True)

    def _encode(self, text: str, *, parse_special: bool = False) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer.encode(text, add_special_tokens=False,
                                          split_special_tokens=not parse_special))

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes inside a prompt (special-token parsing off, as for player text)."""
        return len(self._encode(text))

    def encode(self, prompt: str, prefix: str | None = None) -> EncodedPrompt:
        """(prefix ids, turn ids) for `prompt` as a user turn, after an optional stable `prefix`."""
        if not isinstance(prompt, str):
            raise PromptError(f"prompt must be a string, got {type(prompt).__name__}")
        if prefix is not None and not isinstance(prefix, str):
            raise PromptError(f"prefix must be a string or None, got {type(prefix).__name__}")
        prefix_ids = list(self.turn_prefix_ids)
        if prefix:
            prefix_ids += self._encode(prefix)
        turn_ids = (self.separator_ids if prefix else []) + self._encode(prompt) + self.turn_suffix_ids
        return self.check(EncodedPrompt(tuple(prefix_ids), tuple(turn_ids)))

    def is_checked(self, encoded: EncodedPrompt) -> bool:
        """Whether `encoded` came from this encoder's `check` (or `encode`): then it holds."""
        return getattr(encoded, "checked_by", None) is self

    def check(self, encoded: EncodedPrompt) -> EncodedPrompt:
        """`encoded` if this model can take it (a length within its positions, known token ids),
        marked as checked by this encoder (`is_checked`); else PromptError. The one walk over a
        prompt's ids: `encode` ends with it, and the engine skips prompts already checked."""
        total = encoded.num_tokens
        if total > self.max_prompt_tokens:
            raise PromptError(
                f"prompt is {total} tokens; this model takes at most {self.max_prompt_tokens} "
                f"({self.max_position_embeddings} positions less a {self.canvas_length}-token canvas)")
        if total == 0:
            raise PromptError("prompt encodes to no tokens")
        vocab_size = self.vocab_size
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab_size
               for i in (*encoded.prefix_ids, *encoded.turn_ids)):
            raise PromptError(f"an encoded prompt holds ids outside this model's vocabulary (0..{vocab_size - 1})")
        checked = _CheckedPrompt(tuple(encoded.prefix_ids), tuple(encoded.turn_ids))
        checked.checked_by = self
        return checked

    def framing_tokens(self, *, has_prefix: bool) -> int:
        """Tokens `encode` adds around the texts themselves (chat framing, prefix separator)."""
        return len(self.turn_prefix_ids) + len(self.turn_suffix_ids) + (len(self.separator_ids) if has_prefix else 0)

"""Patterns for text slots: a regular expression -> a `TokenAutomaton` over the model's vocabulary.

`outlines-core` (Rust; measured against a hand-written subset construction and `interegular`:
docs/templates.md) builds the token-level index from the regular expression and the vocabulary's
byte strings; this module gives it the bytes each token stands for (byte-level BPE, or
SentencePiece's `▁` and `<0xNN>` pieces), keeps only tokens a text slot may hold, renumbers the
states for the dynamic program (`diffusion/automaton.py`), checks the size limits, and caches
each filled pattern (least recently used go first).

Patterns arrive here filled: placeholders.py replaces each `{name}` with its escaped value.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

from ..diffusion.automaton import TokenAutomaton
from ..errors import TemplateError

__all__ = ["PatternCompiler", "MAX_PATTERN_STATES", "MAX_PATTERN_EDGES"]

MAX_PATTERN_STATES = 20_000
MAX_PATTERN_EDGES = 200_000    # a dynamic-program position is a few gathers over these


class PatternCompiler:
    """Compiles filled patterns against one tokenizer; `allowed[t]` says which tokens a line may hold."""

    def __init__(self, tokenizer: Any, allowed: np.ndarray, eos_token_id: int, *, max_cached: int = 256) -> None:
        self.max_cached = max_cached
        self._cache: OrderedDict[str, TokenAutomaton] = OrderedDict()
        self._lock = threading.Lock()
        self._vocabulary = _outlines_vocabulary(tokenizer, allowed, eos_token_id)
        self._eos_token_id = eos_token_id

    def compile(self, pattern: str, *, template: str | None = None, slot: str | None = None) -> TokenAutomaton:
        """The automaton of a filled pattern (no placeholders left), or TemplateError."""
        with self._lock:
            automaton = self._cache.get(pattern)
            if automaton is not None:
                self._cache.move_to_end(pattern)
                return automaton
        automaton = self._compile(pattern, template, slot)
        with self._lock:
            self._cache[pattern] = automaton
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        return automaton

    def _compile(self, pattern: str, template: str | None, slot: str | None) -> TokenAutomaton:
        from outlines_core import Index

        try:
            index = Index(pattern, self._vocabulary)
        except Exception as exc:  # outlines-core raises ValueError / its own errors for unsupported syntax
            try:  # Python's parser names a syntax error best; only asked on failure (a long pattern takes it 90 ms)
                re.compile(pattern)
            except re.error as syntax:
                raise TemplateError(f"pattern {pattern!r} is not a regular expression: {syntax}",
                                    template=template, slot=slot) from None
            why = str(exc).split(". This may be")[0]
            if "incompatible" in why:  # a character no text token holds (a quote, a brace, a newline)
                raise TemplateError(f"pattern {pattern!r} matches no line this model's tokens can write ({why})",
                                    template=template, slot=slot) from None
            raise TemplateError(f"pattern {pattern!r} cannot be compiled: {why}", template=template,
                                slot=slot) from None
        transitions = index.get_transitions()
        finals = set(index.get_final_states())
        initial = index.get_initial_state()
        states = [initial] + sorted(s for s in set(transitions) | finals | _targets(transitions) if s != initial)
        number = {state: i for i, state in enumerate(states)}
        edges = [(number[s], token, number[d]) for s, moves in transitions.items() for token, d in moves.items()
                 if token != self._eos_token_id]  # padding, not EOS, follows an accepted line here
        if len(states) > MAX_PATTERN_STATES or len(edges) > MAX_PATTERN_EDGES:
            raise TemplateError(f"pattern {pattern!r} compiles to {len(states)} states and {len(edges)} token "
                                f"edges; at most {MAX_PATTERN_STATES} and {MAX_PATTERN_EDGES}",
                                template=template, slot=slot)
        is_final = np.array([s in finals for s in states], dtype=np.bool_)
        automaton = TokenAutomaton.from_edges(len(states), np.array(edges, dtype=np.int64), is_final)
        if automaton.min_tokens_to_accept is None:
            raise TemplateError(f"pattern {pattern!r} matches no line this model's tokens can write",
                                template=template, slot=slot)
        return automaton


def _targets(transitions: Mapping[int, Mapping[int, int]]) -> set[int]:
    return {d for moves in transitions.values() for d in moves.values()}


def _outlines_vocabulary(tokenizer: Any, allowed: np.ndarray, eos_token_id: int) -> Any:
    from outlines_core import Vocabulary

    backend = tokenizer.backend_tokenizer  # `tokenizers.Tokenizer`: a fast HF tokenizer's, or the ONNX backend's
    pieces = [backend.id_to_token(token_id) for token_id in range(len(allowed))]
    is_byte_level = "ByteLevel" in str(backend.decoder)
    decode = _byte_level_decoder() if is_byte_level else None
    by_bytes: dict[bytes, list[int]] = {}
    for token_id, piece in enumerate(pieces):
        if not allowed[token_id] or piece is None or token_id == eos_token_id:
            continue
        raw = _piece_bytes(piece, decode)
        if raw:
            by_bytes.setdefault(raw, []).append(token_id)
    return Vocabulary(eos_token_id, by_bytes)


def _piece_bytes(piece: str, decode: dict[str, int] | None) -> bytes | None:
    if decode is not None:
        try:
            return bytes(decode[c] for c in piece)
        except KeyError:
            return None
    match = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)  # SentencePiece byte fallback
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace("\u2581", " ").encode()


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable stand-in character of each byte, reversed."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_ins = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in stand_ins:
            stand_ins[b] = chr(256 + extra)
            extra += 1
    return {char: b for b, char in stand_ins.items()}

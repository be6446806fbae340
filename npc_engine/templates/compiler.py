"""Template + tokenizer -> canvas plan: clamped skeleton ids, slot spans, allowed-token masks.

A template longer than the model's canvas is laid out over consecutive canvases (blocks), which
the engine denoises one after another, each with the finished ones in context. A free-text slot
may run on into the next block; a slot that cannot be split (choice, integer, boolean, pattern)
starts, with the skeleton before it, at the next block when it would cross the boundary: the
rest of the block is clamped padding, as after a short line.
"""

from __future__ import annotations

import dataclasses
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, Field, create_model

from ..bounds import MAX_TEMPLATE_BLOCKS
from ..diffusion.constants import MASKED_LOGIT
from ..errors import TemplateError, TemplateTooLargeError
from .pattern import PatternCompiler
from .placeholders import fill_placeholders, placeholders_of
from .spec import ChoiceSlot, IntegerSlot, Template, TextSlot

if TYPE_CHECKING:  # the plan is numpy; only the PyTorch runner asks for torch tensors
    from ..diffusion.automaton import TokenAutomaton
    from ..diffusion.constraint import CanvasConstraint

__all__ = ["CanvasPlan", "SlotPlan", "TemplateCompiler", "FORBIDDEN_TEXT_CHARS"]

# Characters a free-text slot may never produce: the skeleton's delimiters and backslash. Control
# characters and U+FFFD (a token holding part of a UTF-8 sequence) are refused as well, so a
# line never shows garbage in a game's speech bubble.
FORBIDDEN_TEXT_CHARS = frozenset('"{}\\\ufffd')


def _is_text_piece(piece: str) -> bool:
    return bool(piece) and not (FORBIDDEN_TEXT_CHARS & set(piece)) and not any(
        unicodedata.category(ch) == "Cc" for ch in piece)


@dataclass(frozen=True)
class SlotPlan:
    """Where one slot lives in the canvas and how to read it back."""

    name: str
    kind: str
    start: int
    length: int
    min_tokens: int = 0
    values: tuple[Any, ...] = ()           # choice/integer/boolean: the Python value of each option
    option_ids: np.ndarray | None = None  # int64 (num_options, length), padded with the pad id
    pattern: str | None = None             # text: the regular expression the line matches (unfilled)


@dataclass
class CanvasPlan:
    """A compiled template for one tokenizer and canvas length, over `num_blocks` canvases: every
    array and slot position counts from the start of the first block (N = num_blocks x L)."""

    template: Template
    canvas_length: int
    vocab_size: int
    pad_token_id: int
    clamp_ids: np.ndarray          # int64 (N,) skeleton id at clamped positions, -1 in slots
    allowed_tokens: np.ndarray     # bool (N, V)
    slots: tuple[SlotPlan, ...]
    output_model: type[BaseModel]
    num_skeleton_tokens: int
    num_blocks: int = 1
    key: str = ""                  # the template's cache_key(), what the compiler's cache holds it by
    _constraints: dict[str, "CanvasConstraint"] = field(default_factory=dict, repr=False)

    @property
    def num_slot_tokens(self) -> int:
        return sum(slot.length for slot in self.slots)

    @property
    def num_tokens(self) -> int:
        """Positions the plan takes after the prompt: all its blocks."""
        return self.num_blocks * self.canvas_length

    def block(self, index: int) -> slice:
        """Block `index`'s positions in the plan's arrays."""
        return slice(index * self.canvas_length, (index + 1) * self.canvas_length)

    @property
    def num_bytes(self) -> int:
        """What the plan holds now: its masks, and the bias and device copies made so far."""
        total = self.allowed_tokens.nbytes + self.clamp_ids.nbytes
        for held in self._constraints.values():
            if isinstance(held, np.ndarray):
                total += held.nbytes
            else:
                total += sum(t.element_size() * t.nelement() for t in
                             (held.disallowed_tokens, held.clamp_ids, held.logit_bias) if t is not None)
        return total

    @property
    def logit_bias(self) -> np.ndarray:
        """float32 (N, V): 0 where a token is allowed, MASKED_LOGIT where not; a step adds it to
        the logits (cached)."""
        if "host" not in self._constraints:
            self._constraints["host"] = np.where(self.allowed_tokens, 0.0, MASKED_LOGIT).astype(np.float32)
        return self._constraints["host"]

    def constraint(self, device: Any) -> "CanvasConstraint":
        """The plan's masks as torch tensors on `device` (copied once per device, then reused)."""
        key = str(device)
        if key not in self._constraints:
            import torch

            from ..diffusion.constraint import CanvasConstraint
            self._constraints[key] = CanvasConstraint(torch.from_numpy(~self.allowed_tokens).to(device),
                                                      torch.from_numpy(self.clamp_ids).to(device),
                                                      torch.from_numpy(self.logit_bias).to(device))
        return self._constraints[key]


def _output_model(template: Template) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for slot in template.slots:
        if isinstance(slot, TextSlot):
            fields[slot.name] = (str, ...)
        elif isinstance(slot, ChoiceSlot):
            fields[slot.name] = (Literal[tuple(slot.options)], ...)
        elif isinstance(slot, IntegerSlot):
            fields[slot.name] = (int, Field(ge=slot.min, le=slot.max))
        else:
            fields[slot.name] = (bool, ...)
    return create_model(f"{template.name.replace('.', '_').replace('-', '_')}_output", **fields)


class TemplateCompiler:
    """Compiles templates against one tokenizer; plans are cached per template, the most recently
    used ones, at most `max_cached_plans` of them and `max_cached_bytes` in all (a plan holds
    canvas-by-vocabulary masks: about 2 MB each for a 262k vocabulary and a 64-token canvas, so
    neither training on generated variants nor clients checking templates may keep every one)."""

    def __init__(self, tokenizer: Any, vocab_size: int, canvas_length: int, pad_token_id: int,
                 eos_token_ids: list[int], *, max_cached_plans: int = 512,
                 max_cached_bytes: int = 256 << 20, max_blocks: int = MAX_TEMPLATE_BLOCKS) -> None:
        """`max_blocks`: canvases a template may span (training takes one)."""
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.canvas_length = canvas_length
        self.max_blocks = max_blocks
        self.pad_token_id = pad_token_id
        self.eos_token_ids = eos_token_ids
        self._plans: OrderedDict[str, CanvasPlan] = OrderedDict()
        self.max_cached_plans = max_cached_plans
        self.max_cached_bytes = max_cached_bytes
        self._lock = threading.Lock()
        self._text_vocab: np.ndarray | None = None
        self._patterns: PatternCompiler | None = None

    @classmethod
    def for_backend(cls, backend: Any, *, max_blocks: int = MAX_TEMPLATE_BLOCKS) -> "TemplateCompiler":
        """A compiler for a loaded model backend's tokenizer, vocabulary and canvas; a template
        may span `max_blocks` canvases, fewer where the model's positions would leave no room for
        a prompt after them."""
        room = (int(backend.max_position_embeddings) - 1) // backend.canvas_length
        return cls(backend.tokenizer, backend.vocab_size, backend.canvas_length,
                   backend.pad_token_id, backend.eos_token_ids, max_blocks=max(1, min(max_blocks, room)))

    def text_vocabulary(self) -> np.ndarray:
        """Bool (V,): tokens a text slot may hold (no specials, no delimiters, not empty)."""
        if self._text_vocab is None:
            num_tokens = min(self.vocab_size, len(self.tokenizer))
            special = set(self.tokenizer.all_special_ids)
            special.update(getattr(self.tokenizer, "added_tokens_decoder", {}).keys())
            pieces = self.tokenizer.batch_decode([[i] for i in range(num_tokens)])
            allowed = np.zeros(self.vocab_size, dtype=np.bool_)
            for token_id, piece in enumerate(pieces):
                allowed[token_id] = token_id not in special and _is_text_piece(piece)
            self._text_vocab = allowed
        return self._text_vocab

    def compile(self, template: Template, *, key: str | None = None) -> CanvasPlan:
        """The plan of `template`, from the cache when it holds one. `key`: the template's
        `cache_key()` when the caller kept it (a registered template's), so a lookup serializes
        nothing; the plan's own is `plan.key`."""
        key = template.cache_key() if key is None else key
        with self._lock:  # the server's IO thread and the engine thread both compile
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        plan = self._compile(template)
        plan.key = key
        with self._lock:
            self._plans[key] = plan
            self._plans.move_to_end(key)
            num_bytes = sum(p.num_bytes for p in self._plans.values())  # device copies grow after insertion
            while len(self._plans) > 1 and (len(self._plans) > self.max_cached_plans
                                            or num_bytes > self.max_cached_bytes):
                num_bytes -= self._plans.popitem(last=False)[1].num_bytes
        return plan

    @property
    def num_cached_bytes(self) -> int:
        with self._lock:
            return sum(plan.num_bytes for plan in self._plans.values())

    @property
    def patterns(self) -> PatternCompiler:
        """Compiles text-slot patterns to token automata over this tokenizer's text tokens."""
        if self._patterns is None:
            eos = self.eos_token_ids[0] if self.eos_token_ids else self.pad_token_id
            self._patterns = PatternCompiler(self.tokenizer, self.text_vocabulary(), eos)
        return self._patterns

    def slot_automata(self, plan: CanvasPlan, values: Mapping[str, str]) -> dict[str, TokenAutomaton]:
        """The automaton of each pattern slot of `plan`, its placeholders filled from `values`
        (TemplateError, naming template, slot and placeholder, before anything is queued)."""
        return {slot.name: self._automaton(plan.template.name, slot, values)
                for slot in plan.slots if slot.pattern is not None}

    def _automaton(self, template: str, slot: SlotPlan, values: Mapping[str, str]) -> TokenAutomaton:
        regex = fill_placeholders(slot.pattern or "", values, template=template, slot=slot.name)
        automaton = self.patterns.compile(regex, template=template, slot=slot.name)
        fewest = automaton.min_tokens_to_accept
        if fewest is not None and fewest > slot.length:
            raise TemplateError(f"template {template!r} slot {slot.name!r}: the shortest line its pattern "
                                f"allows takes {fewest} tokens; max_tokens is {slot.length}",
                                template=template, slot=slot.name)
        return automaton

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _choice_options(self, slot: Any) -> tuple[tuple[Any, ...], list[str]]:
        if isinstance(slot, ChoiceSlot):
            return tuple(slot.options), list(slot.options)
        if isinstance(slot, IntegerSlot):
            values = tuple(range(slot.min, slot.max + 1))
            return values, [str(v) for v in values]
        return (True, False), ["true", "false"]

    def _plan_options(self, template: Template, slot: Any, start: int) -> SlotPlan:
        values, texts = self._choice_options(slot)
        encoded = [self._encode(t) for t in texts]
        special = set(self.tokenizer.all_special_ids) | {self.pad_token_id}
        for text, ids in zip(texts, encoded):
            if not ids or special.intersection(ids) or max(ids) >= self.vocab_size:
                raise TemplateError(
                    f"template {template.name!r} slot {slot.name!r}: option {text!r} cannot be "
                    "represented by this tokenizer", template=template.name, slot=slot.name)
        length = max(len(ids) for ids in encoded)
        padded = [ids + [self.pad_token_id] * (length - len(ids)) for ids in encoded]
        seen: dict[tuple[int, ...], str] = {}
        for text, ids in zip(texts, padded):
            if tuple(ids) in seen:
                raise TemplateError(
                    f"template {template.name!r} slot {slot.name!r}: options {seen[tuple(ids)]!r} "
                    f"and {text!r} tokenize identically", template=template.name, slot=slot.name)
            seen[tuple(ids)] = text
        return SlotPlan(slot.name, slot.kind, start, length, values=values,
                        option_ids=np.array(padded, dtype=np.int64))

    def _compile(self, template: Template) -> CanvasPlan:
        pieces: list[list[int] | Any] = []  # skeleton id lists and slots, in canvas order
        text = "{"
        for index, slot in enumerate(template.slots):
            is_quoted = isinstance(slot, (TextSlot, ChoiceSlot))
            text += ("" if index == 0 else ", ") + f'"{slot.name}": ' + ('"' if is_quoted else "")
            pieces.append(self._encode(text))
            pieces.append(slot)
            text = '"' if is_quoted else ""
        pieces.append(self._encode(text + "}"))

        clamp, slot_plans = self._layout(template, pieces)
        num_skeleton = sum(1 for token in clamp if token >= 0)
        length = self.canvas_length
        num_blocks = max(1, -(-len(clamp) // length))
        if num_blocks > self.max_blocks:
            spans = ", ".join(f"{s.name}={s.length}" for s in slot_plans)
            limit = self.max_blocks * length
            what = "the model's canvas holds" if self.max_blocks == 1 else \
                f"a template may span {self.max_blocks} canvases of {length}:"
            raise TemplateTooLargeError(
                f"template {template.name!r} needs {len(clamp)} canvas tokens ({num_skeleton} skeleton "
                f"+ slots {spans}) but {what} {limit}",
                template=template.name, num_required_tokens=len(clamp), canvas_length=length,
                max_blocks=self.max_blocks)
        # After the closing brace: EOS (if the model has one and it fits), then padding.
        tail = ([self.eos_token_ids[0]] if self.eos_token_ids else []) + [self.pad_token_id] * length * num_blocks
        clamp.extend(tail[: num_blocks * length - len(clamp)])

        clamp_ids = np.array(clamp, dtype=np.int64)
        allowed = np.zeros((len(clamp_ids), self.vocab_size), dtype=np.bool_)
        is_clamped = clamp_ids >= 0
        allowed[np.flatnonzero(is_clamped), clamp_ids[is_clamped]] = True
        for plan in slot_plans:
            span = slice(plan.start, plan.start + plan.length)
            if plan.kind == "text":
                allowed[span] = self.text_vocabulary()
                first_pad = plan.start if plan.pattern is not None else plan.start + plan.min_tokens
                allowed[first_pad: span.stop, self.pad_token_id] = True
            else:
                positions = np.broadcast_to(np.arange(plan.start, span.stop), plan.option_ids.shape)
                allowed[positions.reshape(-1), plan.option_ids.reshape(-1)] = True
        return CanvasPlan(
            template=template, canvas_length=self.canvas_length, vocab_size=self.vocab_size,
            pad_token_id=self.pad_token_id, clamp_ids=clamp_ids, allowed_tokens=allowed,
            slots=tuple(slot_plans), output_model=_output_model(template),
            num_skeleton_tokens=num_skeleton, num_blocks=num_blocks,
        )

    def _layout(self, template: Template, pieces: list[Any]) -> tuple[list[int], list[SlotPlan]]:
        """Skeleton ids (-1 in slots) and slot plans, in canvas order over as many blocks as it
        takes. A slot that cannot be split and would cross a block boundary moves, with the
        skeleton before it, to the next block; the rest of the block is clamped padding."""
        length = self.canvas_length
        clamp: list[int] = []
        slot_plans: list[SlotPlan] = []
        for index, piece in enumerate(pieces):
            if isinstance(piece, list):
                clamp.extend(piece)
                continue
            skeleton = pieces[index - 1]  # pieces alternate: skeleton ids, slot, ..., skeleton ids
            plan = self._slot_plan(template, piece, len(clamp))
            is_splittable = plan.kind == "text" and plan.pattern is None
            if not is_splittable and (plan.start % length) + plan.length > length:
                if len(skeleton) + plan.length > length:
                    raise TemplateTooLargeError(
                        f"template {template.name!r} slot {piece.name!r}: {plan.length} tokens with the "
                        f"{len(skeleton)} before it do not fit one canvas of {length}, and a {plan.kind} "
                        f"slot{' with a pattern' if plan.pattern else ''} cannot be split over two",
                        template=template.name, num_required_tokens=len(skeleton) + plan.length,
                        canvas_length=length, max_blocks=self.max_blocks)
                del clamp[len(clamp) - len(skeleton):]
                clamp.extend([self.pad_token_id] * (-len(clamp) % length))
                clamp.extend(skeleton)
                plan = dataclasses.replace(plan, start=len(clamp))
            slot_plans.append(plan)
            clamp.extend([-1] * plan.length)
        return clamp, slot_plans

    def _slot_plan(self, template: Template, slot: Any, start: int) -> SlotPlan:
        if not isinstance(slot, TextSlot):
            return self._plan_options(template, slot, start)
        if not bool(self.text_vocabulary().any()):
            raise TemplateError(f"template {template.name!r} slot {slot.name!r}: this tokenizer has no token "
                                "a text slot may use", template=template.name, slot=slot.name)
        plan = SlotPlan(slot.name, "text", start, slot.max_tokens, min_tokens=slot.min_tokens, pattern=slot.pattern)
        if slot.pattern is not None and not placeholders_of(slot.pattern):
            self._automaton(template.name, plan, {})  # refused now, not at the first say
        return plan

"""Template specs: a named list of typed slots, declared in Python or JSON.

A template renders as a JSON-like skeleton with holes, e.g.
`{"say": "<text>", "emotion": "<choice>", "trust_delta": <integer>, "leaves": <boolean>}`.
The skeleton is clamped into the canvas; only the holes are denoised.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import TemplateError
from .effects import EFFECT_SLOT_KINDS, MAX_FLAG_STRING_CHARS, MAX_MOOD_CHARS, Effect
from .placeholders import fill_text, pattern_syntax_error

__all__ = [
    "TextSlot",
    "ChoiceSlot",
    "IntegerSlot",
    "BooleanSlot",
    "Slot",
    "Template",
    "load_template",
    "MAX_INTEGER_RANGE",
    "MAX_PATTERN_CHARS",
]

# Integers are resolved jointly like choices (one option per value), so the range is bounded.
MAX_INTEGER_RANGE = 10_001
MAX_PATTERN_CHARS = 32_768
_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class _SlotBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=_NAME_PATTERN, description="Field name in the output; snake_case.")


class TextSlot(_SlotBase):
    """Free text of 1..`max_tokens` tokens; never contains quotes, braces, newlines or special tokens.

    With `pattern`, the line always matches that regular expression in full (alternatives,
    optional groups, character classes, bounded repeats); `{name}` placeholders in it are filled
    per say with escaped values (templates/placeholders.py)."""

    kind: Literal["text"] = "text"
    max_tokens: int = Field(default=32, ge=1, le=1024)
    min_tokens: int = Field(default=1, ge=0)
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN_CHARS, description=(
        "a regular expression the whole line matches; {name} placeholders take the say's values"))

    @model_validator(mode="after")
    def _check_bounds(self) -> "TextSlot":
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) > max_tokens ({self.max_tokens})")
        problem = pattern_syntax_error(self.pattern) if self.pattern is not None else None
        if problem:
            raise ValueError(problem)
        return self


class ChoiceSlot(_SlotBase):
    """Exactly one of `options`; multi-token options are resolved jointly."""

    kind: Literal["choice"] = "choice"
    options: list[str] = Field(min_length=1, max_length=MAX_INTEGER_RANGE)

    @field_validator("options")
    @classmethod
    def _check_options(cls, options: list[str]) -> list[str]:
        if any(not option.strip() for option in options):
            raise ValueError("options must be non-empty strings")
        duplicates = sorted(o for o, n in Counter(options).items() if n > 1)  # linear: 10,001 options
        if duplicates:
            raise ValueError(f"duplicate options: {duplicates}")
        return options


class IntegerSlot(_SlotBase):
    """An integer in [min, max]."""

    kind: Literal["integer"] = "integer"
    min: int
    max: int

    @model_validator(mode="after")
    def _check_range(self) -> "IntegerSlot":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) > max ({self.max})")
        if self.max - self.min + 1 > MAX_INTEGER_RANGE:
            raise ValueError(
                f"range {self.min}..{self.max} has {self.max - self.min + 1} values; "
                f"at most {MAX_INTEGER_RANGE} are supported"
            )
        return self


class BooleanSlot(_SlotBase):
    """true or false."""

    kind: Literal["boolean"] = "boolean"


Slot = Annotated[Union[TextSlot, ChoiceSlot, IntegerSlot, BooleanSlot], Field(discriminator="kind")]


class Template(BaseModel):
    """A named dialogue template. Load from JSON with `load_template` or `Template.from_file`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    slots: list[Slot] = Field(min_length=1, max_length=64)
    effects: list[Effect] = Field(default_factory=list, max_length=32,
                                  description="What the fields do to the character's state (see effects.py).")
    line_slot: str | None = Field(default=None, description=(
        "The slot recorded as the character's line in its conversation memory; "
        "default: the first text slot."))

    @field_validator("slots")
    @classmethod
    def _check_unique_names(cls, slots: list[Any]) -> list[Any]:
        names = [slot.name for slot in slots]
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate slot names: {duplicates}")
        return slots

    @model_validator(mode="after")
    def _check_effects(self) -> "Template":
        slots = {slot.name: slot for slot in self.slots}
        if self.line_slot is not None and getattr(slots.get(self.line_slot), "kind", None) not in ("text", "choice"):
            raise ValueError(f"line_slot {self.line_slot!r} must name a text or choice slot")
        for index, effect in enumerate(self.effects):
            where = f"effects.{index} ({effect.kind})"
            slot = slots.get(effect.slot)
            if slot is None:
                raise ValueError(f"{where}: no slot is named {effect.slot!r}")
            if slot.kind not in EFFECT_SLOT_KINDS[effect.kind]:
                raise ValueError(f"{where}: slot {effect.slot!r} is {slot.kind}; this effect needs a "
                                 f"{' or '.join(EFFECT_SLOT_KINDS[effect.kind])} slot")
            limit = {"set_mood": MAX_MOOD_CHARS, "set_flag": MAX_FLAG_STRING_CHARS}.get(effect.kind)
            too_long = [o for o in getattr(slot, "options", []) if limit is not None and len(o) > limit]
            if too_long:
                raise ValueError(f"{where}: option {too_long[0]!r} is longer than {limit} characters")
            if effect.kind == "set_mood" and any(not o.isprintable() for o in slot.options):
                raise ValueError(f"{where}: mood options must be printable text on one line")
        return self

    @property
    def line_slot_name(self) -> str | None:
        """The slot recorded as the character's line (explicit, else the first text slot)."""
        if self.line_slot is not None:
            return self.line_slot
        return next((slot.name for slot in self.slots if slot.kind == "text"), None)

    @classmethod
    def from_file(cls, path: str | Path) -> "Template":
        return load_template(path)

    def with_choice_options(self, options: Mapping[str, Sequence[str]]) -> "Template":
        """This template with the options of some choice slots replaced (a say's own options: the
        items an NPC has now). TemplateError naming the slot for an unknown or non-choice slot or
        options that are not valid choice options (empty, duplicated, too long for an effect)."""
        slots = {slot.name: slot for slot in self.slots}
        for name in options:
            if name not in slots or slots[name].kind != "choice":
                raise TemplateError(f"options given for {name!r}, which is not a choice slot of this template",
                                    template=self.name, slot=name)
        data = self.model_dump()
        for slot in data["slots"]:
            if slot["name"] in options:
                slot["options"] = list(options[slot["name"]])
        return load_template(data)

    def with_effect_values(self, values: Mapping[str, str]) -> "Template":
        """This template with the say's `values` in its `remember` effects' texts (their `{slot}`
        placeholders stay, for the reply's fields); itself when no effect has a text. TemplateError
        naming the slot and placeholder for one neither a slot nor in `values`."""
        if not any(getattr(effect, "text", None) for effect in self.effects):
            return self
        slots = [slot.name for slot in self.slots]
        effects = [effect.model_copy(update={"text": fill_text(effect.text, values, keep=slots, template=self.name,
                                                                slot=effect.slot)})
                   if getattr(effect, "text", None) else effect for effect in self.effects]
        return self.model_copy(update={"effects": effects})

    def cache_key(self) -> str:
        """What the compiled canvas plan depends on (effects and descriptions do not change it)."""
        return self.model_dump_json(include={"name", "slots"})


def _describe(error: ValidationError, raw: Any) -> tuple[str, str | None]:
    """One readable line per pydantic error, naming the slot when the error is inside one."""
    slot_name = None
    lines = []
    for item in error.errors():
        location = list(item.get("loc", ()))
        if len(location) >= 2 and location[0] == "slots" and isinstance(location[1], int):
            index = location[1]
            slots = raw.get("slots") if isinstance(raw, dict) else None
            if isinstance(slots, list) and index < len(slots) and isinstance(slots[index], dict):
                slot_name = str(slots[index].get("name", f"#{index}"))
            where = f"slot {slot_name!r}" if slot_name else f"slot #{index}"
            rest = ".".join(str(p) for p in location[2:] if not (isinstance(p, str) and p in
                                                                   ("text", "choice", "integer", "boolean")))
            where += f" field {rest!r}" if rest else ""
        else:
            where = ".".join(str(p) for p in location) or "template"
        message = item.get("msg", "invalid")
        if item.get("type") == "union_tag_invalid":
            is_effect = bool(location) and location[0] == "effects"
            expected = EFFECT_SLOT_KINDS if is_effect else ("text", "choice", "integer", "boolean")
            message = (f"unknown {'effect' if is_effect else 'slot'} kind {item.get('input', {}).get('kind')!r}; "
                       f"expected one of {', '.join(repr(k) for k in expected)}")
        lines.append(f"{where}: {message}")
    return "; ".join(lines), slot_name


def load_template(source: str | Path | dict[str, Any]) -> Template:
    """Validate a template from a dict or a JSON file. Raises `TemplateError` with a clear message."""
    origin = "template"
    if isinstance(source, (str, Path)):
        path = Path(source)
        origin = str(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TemplateError(f"cannot read template file {origin!r}: {exc}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TemplateError(f"template file {origin!r} is not valid JSON: {exc}") from exc
    else:
        raw = source
    if not isinstance(raw, dict):
        raise TemplateError(f"{origin}: a template must be a JSON object, got {type(raw).__name__}")
    name = raw.get("name") if isinstance(raw.get("name"), str) else None
    try:
        return Template.model_validate(raw)
    except ValidationError as exc:
        detail, slot_name = _describe(exc, raw)
        label = f"template {name!r}" if name else origin
        if origin != "template" and name:
            label += f" ({origin})"
        raise TemplateError(f"{label}: {detail}", template=name, slot=slot_name) from None

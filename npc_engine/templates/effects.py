"""What a template's fields do to the speaking character's state (applied by `npc_engine.characters`).

Declared in the template next to its slots, e.g.

    "effects": [
      {"kind": "set_mood", "slot": "emotion"},
      {"kind": "add_to_relationship", "slot": "trust_delta", "dimension": "trust"},
      {"kind": "remember", "slot": "say", "salience": 0.3},
      {"kind": "set_flag", "slot": "ends_conversation", "flag": "conversation_over"}
    ]

Each effect names a slot; the slot's kind must suit the effect (checked when the template is
loaded, so applying effects after a generation cannot fail on the template's account).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SetMood",
    "AddToRelationship",
    "Remember",
    "SetFlag",
    "Effect",
    "EFFECT_SLOT_KINDS",
    "RELATIONSHIP_DIMENSIONS",
    "MAX_MOOD_CHARS",
    "MAX_FLAG_STRING_CHARS",
    "MAX_MEMORY_CHARS",
]

RELATIONSHIP_DIMENSIONS = ("trust", "affinity", "familiarity")
MAX_MOOD_CHARS = 32
MAX_FLAG_STRING_CHARS = 256
MAX_MEMORY_CHARS = 500
_FLAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class _EffectBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    slot: str = Field(description="The template slot whose value drives this effect.")


class SetMood(_EffectBase):
    """The character's mood becomes the slot's option (a choice slot; options of at most 32 characters)."""

    kind: Literal["set_mood"] = "set_mood"


class AddToRelationship(_EffectBase):
    """Add the slot's integer to the character's relationship with the speaker, clamped to its range."""

    kind: Literal["add_to_relationship"] = "add_to_relationship"
    dimension: Literal["trust", "affinity", "familiarity"] = "trust"


class Remember(_EffectBase):
    """Store the slot's text as a memory (empty text is skipped; longer than 500 characters is cut),
    or, with `text`, that text with its placeholders filled: `{slot}` from the reply's slots,
    any other `{name}` from the say's values (as a pattern's are), e.g. "gave {give_item} to
    {player}"."""

    kind: Literal["remember"] = "remember"
    salience: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    text: str | None = Field(default=None, min_length=1, max_length=MAX_MEMORY_CHARS,
                             pattern=r"^[^\x00-\x1f\x7f]*$", description=(
                                 "The memory to store in place of the slot's value: {slot} placeholders "
                                 "take the reply's slots, others the say's values."))


class SetFlag(_EffectBase):
    """Set a game flag to the slot's value (boolean, integer or choice slot)."""

    kind: Literal["set_flag"] = "set_flag"
    flag: str = Field(pattern=_FLAG_PATTERN)


Effect = Annotated[Union[SetMood, AddToRelationship, Remember, SetFlag], Field(discriminator="kind")]

# Which slot kinds each effect accepts.
EFFECT_SLOT_KINDS: dict[str, tuple[str, ...]] = {
    "set_mood": ("choice",),
    "add_to_relationship": ("integer",),
    "remember": ("text", "choice"),
    "set_flag": ("boolean", "integer", "choice"),
}

"""Character state as pydantic models: what an NPC is, feels, thinks of others and remembers.

Every model validates on construction (pydantic's `ValidationError`); the store and the engine
take plain mappings too and turn validation failures into `StateError` (see `parse`).
Ranges are fixed so templates, prompts and the wire agree on them. This module is a leaf (it
imports only pydantic and `errors`): the wire types and the client use it without loading the
store, the engine or numpy.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from ..errors import StateError

__all__ = [
    "Character",
    "SnapshotInfo",
    "StateChange",
    "Relationship",
    "Memory",
    "Turn",
    "Speaker",
    "WorldFact",
    "FlagValue",
    "RELATIONSHIP_RANGES",
    "MAX_PERSONA_CHARS",
    "MAX_UTTERANCE_CHARS",
    "MAX_EVENT_CHARS",
    "parse",
    "now_ms",
]

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_PERSONA_CHARS = 4000
MAX_STYLE_CHARS = 500
MAX_FACT_CHARS = 500
MAX_UTTERANCE_CHARS = 2000
MAX_EVENT_CHARS = 500
MAX_FLAG_STRING_CHARS = 256
MAX_KNOWLEDGE_FACTS = 64
MAX_FLAGS = 256
MAX_MEMORIES = 1000
MAX_TURNS = 256
MAX_RELATIONSHIPS = 1024
_INT64 = 2**63

# (low, high) per relationship dimension; deltas are clamped into these.
RELATIONSHIP_RANGES: dict[str, tuple[int, int]] = {
    "trust": (-100, 100),
    "affinity": (-100, 100),
    "familiarity": (0, 100),
}


def now_ms() -> int:
    return int(time.time() * 1000)


def _clean_text(*, is_multiline: bool):
    def check(value: str) -> str:
        allowed = "\n\t" if is_multiline else ""
        bad = [c for c in value if (ord(c) < 32 and c not in allowed) or ord(c) == 127]
        if bad:
            raise ValueError(f"contains control character {bad[0]!r}")
        if not value.strip() and value:
            raise ValueError("is only whitespace")
        return value
    return AfterValidator(check)


Id = Annotated[StrictStr, Field(pattern=ID_PATTERN)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=64), _clean_text(is_multiline=False)]
Line = Annotated[StrictStr, Field(min_length=1, max_length=MAX_FACT_CHARS), _clean_text(is_multiline=False)]
Salience = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
FlagValue = Union[StrictBool, StrictInt, StrictFloat, StrictStr]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Relationship(_Model):
    """How a character sees one other entity. Ranges: see `RELATIONSHIP_RANGES`."""

    trust: int = Field(default=0, ge=-100, le=100)
    affinity: int = Field(default=0, ge=-100, le=100)
    familiarity: int = Field(default=0, ge=0, le=100)


class Memory(_Model):
    """A salient fact the character remembers; low-salience ones are dropped from prompts first."""

    text: Line
    salience: Salience = 0.5
    created_ms: int = Field(default_factory=now_ms, ge=0)


class Turn(_Model):
    """One entry of past conversation: who said it, and what (`kind` "line"), or a game event the
    character witnessed (`kind` "event": `speaker_id` is who caused it, or the character itself)."""

    speaker_id: Id
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_UTTERANCE_CHARS),
                    _clean_text(is_multiline=True)]
    created_ms: int = Field(default_factory=now_ms, ge=0)
    kind: Literal["line", "event"] = "line"


class Speaker(_Model):
    """Someone who talks to characters without being one (the player, a narrator)."""

    id: Id
    name: Name
    description: Annotated[StrictStr, Field(max_length=MAX_FACT_CHARS), _clean_text(is_multiline=True)] = ""


class WorldFact(_Model):
    """A fact every character may know (weather, news, the state of a quest)."""

    key: Id
    text: Line
    salience: Salience = 0.5


class Character(_Model):
    """One NPC: the stable persona (cached prompt prefix) and the state that changes as it talks."""

    id: Id
    name: Name
    persona: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PERSONA_CHARS),
                       _clean_text(is_multiline=True)]
    speaking_style: Annotated[StrictStr, Field(max_length=MAX_STYLE_CHARS),
                              _clean_text(is_multiline=True)] = ""
    knowledge: list[Line] = Field(default_factory=list, max_length=MAX_KNOWLEDGE_FACTS)
    mood: Annotated[StrictStr, Field(min_length=1, max_length=32), _clean_text(is_multiline=False)] = "neutral"
    relationships: dict[Id, Relationship] = Field(default_factory=dict, max_length=MAX_RELATIONSHIPS)
    memories: list[Memory] = Field(default_factory=list, max_length=MAX_MEMORIES)
    recent_turns: list[Turn] = Field(default_factory=list, max_length=MAX_TURNS)
    flags: dict[Annotated[StrictStr, Field(pattern=ID_PATTERN)], FlagValue] = Field(
        default_factory=dict, max_length=MAX_FLAGS)

    @field_validator("flags")
    @classmethod
    def _check_flags(cls, flags: dict[str, Any]) -> dict[str, Any]:
        for name, value in flags.items():
            check_flag_value(name, value)
        return flags

    def relationship(self, other_id: str) -> Relationship:
        """The relationship with `other_id` (neutral defaults when they have never met)."""
        return self.relationships.get(other_id) or Relationship()


class StateChange(BaseModel):
    """One change a reply made. `path` is where, e.g. "mood", "relationships.player.trust",
    "flags.conversation_over", "memories"; `old`/`new` are the values before and after
    (`delta` is the requested change of a relationship, before clamping)."""

    kind: Literal["mood", "relationship", "memory", "flag"]
    slot: str
    path: str
    old: FlagValue | None = None
    new: FlagValue | None = None
    delta: int | None = None


class SnapshotInfo(BaseModel):
    """What a save slot holds, without its contents."""

    name: str
    scope: Literal["world", "character"]
    character_id: str | None
    created_ms: int
    schema_version: int
    num_bytes: int


def check_flag_value(name: str, value: Any) -> Any:
    """Flags hold one scalar: bool, int (64-bit), finite float, or a short string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"flag {name!r}: integer {value} does not fit 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"flag {name!r}: {value} is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_FLAG_STRING_CHARS:
            raise ValueError(f"flag {name!r}: string of {len(value)} characters; at most "
                             f"{MAX_FLAG_STRING_CHARS}")
        return value
    raise ValueError(f"flag {name!r}: {type(value).__name__} is not a flag value "
                     "(bool, int, float or string)")


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse(model: type[ModelT], data: Any, *, character_id: str | None = None) -> ModelT:
    """Validate `data` (a model instance or a mapping) as `model`, raising `StateError`."""
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or model.__name__
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or model.__name__}: {e.get('msg')}"
                            for e in exc.errors()[:5])
        raise StateError(f"invalid {model.__name__}: {message}", field=where,
                         character_id=character_id) from None

"""A world file: everything the procedural generator draws from, as data.

One JSON object per world (`npc_engine/worlds/tavern.json` is the built-in model's; the schema is
`schemas/world.json`, the guide `docs/worlds.md`): who lives there (archetypes), how players talk
(intents with phrasing patterns) and what happens (events), how characters answer in each mood
(openers, lines with fillers, emotion rules), and the reply template it trains. `load_world`
validates it and raises `DataError` naming the file, the JSON path and the reason.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..errors import NpcEngineError
from ..templates import Template

__all__ = ["World", "Archetype", "Intent", "Event", "DataError", "load_world", "world_at", "tavern_world", "TAVERN_PATH",
           "LINE_FILLERS", "PHRASING_FILLERS", "EVENT_FILLERS", "world_schema"]

TAVERN_PATH = Path(__file__).resolve().parent.parent / "worlds" / "tavern.json"
LINE_FILLERS = ("item", "place", "town", "player", "name", "signature", "role")
PHRASING_FILLERS = ("item", "place", "town", "name")
EVENT_FILLERS = ("player", "item", "place", "town")
TEMPLATE_SLOTS = ("say", "emotion", "action", "trust_delta", "ends_conversation")
# A line, phrasing or name never holds these: a text slot cannot write them.
_FORBIDDEN = re.compile(r"[\"\\\x00-\x1f\x7f]")
_FILLER = re.compile(r"\{([^{}]*)\}")


class DataError(NpcEngineError, ValueError):
    """Training data cannot be used: a world file, a paraphrase file or a JSONL that is malformed."""


def _check_text(text: str, fillers: tuple[str, ...], *, groups: bool = False) -> str:
    """`text` holds no quote, backslash or control character, and braces only around `fillers`;
    with `groups`, `[a|b]` alternatives balance."""
    if not text.strip():
        raise ValueError("must not be empty")
    if _FORBIDDEN.search(text):
        raise ValueError(f"{text!r} holds a quote, backslash or control character")
    unknown = [name for name in _FILLER.findall(text) if name not in fillers]
    if unknown or _FILLER.sub("", text).count("{") or _FILLER.sub("", text).count("}"):
        raise ValueError(f"{text!r}: unknown filler {{{unknown[0] if unknown else ''}}} or a stray brace; "
                         f"fillers here: {', '.join('{' + f + '}' for f in fillers)}")
    if groups and (text.count("[") != text.count("]") or re.search(r"\[[^\]]*\[", text)):
        raise ValueError(f"{text!r}: unbalanced or nested [a|b] groups")
    if not groups and ("[" in text or "]" in text):
        raise ValueError(f"{text!r}: square brackets are for phrasing patterns only")
    return text


def _texts(values: list[str], fillers: tuple[str, ...] = (), *, groups: bool = False) -> list[str]:
    return [_check_text(value, fillers, groups=groups) for value in values]


_Texts = Field(min_length=1)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Archetype(_Model):
    key: str = Field(pattern=r"^[a-z][a-z _-]{0,31}$", description="What the character is; fills {role}.")
    names: list[str] = _Texts
    persona: str = Field(description="Who they are; may use {town}.")
    style: str = Field(description="How they speak, e.g. 'short and blunt'.")
    goods: list[str] = _Texts
    signature: str = Field(description="A phrase they are known for; fills {signature}.")

    @field_validator("names", "goods")
    @classmethod
    def _plain(cls, values: list[str]) -> list[str]:
        return _texts(values)

    @field_validator("persona")
    @classmethod
    def _persona(cls, value: str) -> str:
        return _check_text(value, ("town",))

    @field_validator("style", "signature")
    @classmethod
    def _one(cls, value: str) -> str:
        return _check_text(value, ())


class _Turn(_Model):
    actions: list[str] = _Texts
    trust: Literal[-1, 0, 1] = Field(description="The sign of the trust change a reply carries.")
    ends: bool = Field(description="Whether the reply ends the conversation.")
    lines: list[str] = Field(min_length=1, description="What a character answers, after its mood's opener.")
    topic: str = Field(pattern=r"^[a-z_]{1,32}$")
    emotions: dict[str, str] = Field(default_factory=dict, description=(
        "The emotion shown per mood ('*': any other), overriding the mood; empty: the mood itself."))

    @field_validator("lines")
    @classmethod
    def _lines(cls, values: list[str]) -> list[str]:
        return _texts(values, LINE_FILLERS)


class Intent(_Turn):
    """What a player says: phrasing patterns (`[a|b|]` alternatives, fillers {item} {place}
    {town} {name}) and the plain utterances earlier turns of a conversation show."""

    phrasings: list[str] = _Texts
    utterances: list[str] = _Texts

    @field_validator("phrasings")
    @classmethod
    def _phrasings(cls, values: list[str]) -> list[str]:
        return _texts(values, PHRASING_FILLERS, groups=True)

    @field_validator("utterances")
    @classmethod
    def _utterances(cls, values: list[str]) -> list[str]:
        return _texts(values, PHRASING_FILLERS)


class Event(_Turn):
    """What happens to a character (the game describes it), caused by the player or by no one."""

    texts: list[str] = _Texts
    causer: bool = Field(description="Whether the player caused it (the prompt shows the relationship).")

    @field_validator("texts")
    @classmethod
    def _texts_ok(cls, values: list[str]) -> list[str]:
        return _texts(values, EVENT_FILLERS)


class World(_Model):
    _turn_kinds: dict[str, Any] = PrivateAttr()
    _by_key: dict[str, Archetype] = PrivateAttr()
    _topics: list[str] = PrivateAttr()

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    description: str = ""
    towns: list[str] = _Texts
    places: list[str] = _Texts
    items: list[str] = _Texts
    player_names: list[str] = _Texts
    common_goods: list[str] = Field(default_factory=list, description="Items any character may be asked about.")
    archetypes: list[Archetype] = _Texts
    moods: list[str] = _Texts
    mood_openers: dict[str, list[str]]
    intents: dict[str, Intent] = _Texts
    events: dict[str, Event] = Field(default_factory=dict)
    history_intents: list[str] = Field(min_length=1, description="Intents earlier turns of a conversation show.")
    world_facts: list[str] = _Texts
    memories: list[str] = _Texts
    casual_openers: list[str] = _Texts
    formal_openers: list[str] = _Texts
    extra_actions: list[str] = Field(default_factory=list, description="Never-true actions template variants add.")
    template: Template

    @field_validator("towns", "places", "items", "player_names", "common_goods", "world_facts", "memories",
                     "casual_openers", "formal_openers", "extra_actions", "moods")
    @classmethod
    def _plain(cls, values: list[str]) -> list[str]:
        return _texts(values)

    @model_validator(mode="after")
    def _consistent(self) -> "World":
        if set(self.mood_openers) != set(self.moods):
            raise ValueError(f"mood_openers must have exactly the moods {self.moods}")
        for mood, openers in self.mood_openers.items():
            _texts(openers)
            if not openers:
                raise ValueError(f"mood_openers.{mood}: at least one opener")
        for key, turn in {**self.intents, **self.events}.items():
            unknown = [m for m in [*turn.emotions, *turn.emotions.values()] if m != "*" and m not in self.moods]
            if unknown:
                raise ValueError(f"{key}.emotions: unknown mood {unknown[0]!r}; moods: {self.moods}")
            if turn.emotions and "*" not in turn.emotions:
                raise ValueError(f"{key}.emotions: needs a '*' rule for the other moods")
        overlap = set(self.intents) & set(self.events)
        if overlap:
            raise ValueError(f"{sorted(overlap)[0]!r} is both an intent and an event")
        missing = [i for i in self.history_intents if i not in self.intents]
        if missing:
            raise ValueError(f"history_intents: unknown intent {missing[0]!r}")
        slots = {slot.name: slot for slot in self.template.slots}
        if tuple(slots) != TEMPLATE_SLOTS:
            raise ValueError(f"template: its slots must be {list(TEMPLATE_SLOTS)}, in that order")
        if set(slots["emotion"].options) != set(self.moods):
            raise ValueError("template: the emotion slot's options must be the world's moods")
        used = {a for turn in {**self.intents, **self.events}.values() for a in turn.actions}
        unknown_actions = sorted(used - set(slots["action"].options))
        if unknown_actions:
            raise ValueError(f"template: the action slot lacks {unknown_actions[0]!r}, which a turn uses")
        return self

    def model_post_init(self, context: Any) -> None:
        # Derived once: the generator reads these for every sample it draws.
        self._turn_kinds = {**self.intents, **self.events}
        self._by_key = {archetype.key: archetype for archetype in self.archetypes}
        self._topics = sorted({turn.topic for turn in self._turn_kinds.values()})

    @property
    def turn_kinds(self) -> dict[str, Intent | Event]:
        """Intents and events by key: what a sample's reply answers."""
        return self._turn_kinds

    @property
    def actions(self) -> list[str]:
        """The template's action options, in its order."""
        return list(self.template.slots[2].options)

    def archetype(self, key: str) -> Archetype:
        return self._by_key[key]

    def expected_emotion(self, kind: str, mood: str) -> str:
        rules = self._turn_kinds[kind].emotions
        return rules.get(mood, rules["*"]) if rules else mood

    @property
    def topics(self) -> list[str]:
        """The options of a variant's topic slot: every turn's topic, sorted."""
        return list(self._topics)


def world_schema() -> str:
    """The JSON Schema of a world file (schemas/world.json), as `npc-engine schemas` writes it."""
    return json.dumps(World.model_json_schema(), indent=1, ensure_ascii=False) + "\n"


def load_world(path: str | Path) -> World:
    """A world file, validated (DataError naming the file, the JSON path and the reason)."""
    path = Path(path)
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the world file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        return World.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "(the file)"
        message = first.get("msg", "invalid").removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DataError(f"{path}: {where}: {message}{more}") from None


@functools.lru_cache(maxsize=8)
def world_at(path: str | Path | None) -> World:
    """The world at `path` (None: the tavern), loaded once per path as given (the generator asks
    for it for every sample it draws)."""
    return load_world(TAVERN_PATH if path is None else path)


def tavern_world() -> World:
    """The built-in model's world."""
    return world_at(None)

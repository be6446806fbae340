"""Character + speaker + history + world + the new utterance -> a prompt within a hard token budget.

Layout (inside one user turn of the model's chat template):

    prefix (stable; its KV cache is reused):   You are {name}. {persona}
                                               Speaking style: ... / What you know: - ...
    the turn (rebuilt every time):             What everyone knows: - {world facts}
                                               What you remember: - {memories}
                                               Your mood: ... / How you feel about {speaker}: ...
                                               Conversation so far: {name}: {line} ...
                                               {speaker} says: {utterance}
    (a game event instead of a line):          Event: {what happened}

An event has no speaker line; its causer (when it has one) is the speaker whose relationship line
is shown, and past events show in the conversation as `Event: {text}` lines.

Drop policy when it does not fit `max_prompt_tokens`:
1. past turns, oldest first;
2. then facts (memories and world facts together), lowest score first: relevance to the turn
   (FTS5 bm25 over the player's words), salience and recency, weighed as relevance.py says; on
   equal scores memories go before world facts, and older memories before newer ones;
3. never the persona prefix, the mood and relationship lines, or the new utterance: when those
   alone do not fit, `PromptError` says how many tokens they take.
Kept items stay in their natural order (turns and memories by time, world facts by key).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from typing import TYPE_CHECKING

from ..models.prompt import EncodedPrompt, PromptEncoder
from ..errors import PromptError
from .model import MAX_EVENT_CHARS, MAX_UTTERANCE_CHARS, Character, WorldFact
from .relevance import FactRelevance, fact_score

if TYPE_CHECKING:
    from .inputs import PromptInputs

__all__ = ["PromptBuilder", "BuiltPrompt", "PromptItem", "normalize_utterance"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_CACHED_COUNTS = 100_000


def normalize_utterance(text: object, *, character_id: str | None = None, is_event: bool = False) -> str:
    """Player text (or a game event's text) as stored and shown to the model: control characters
    removed, every run of whitespace (newlines too, so no one can forge a line of the layout) one
    space. At most MAX_UTTERANCE_CHARS (an event: MAX_EVENT_CHARS)."""
    what, limit = ("the event", MAX_EVENT_CHARS) if is_event else ("the utterance", MAX_UTTERANCE_CHARS)
    if not isinstance(text, str):
        raise PromptError(f"{what} must be a string, got {type(text).__name__}", character_id=character_id)
    cleaned = " ".join(_CONTROL.sub("", text).split())
    if not cleaned:
        raise PromptError(f"{what} is empty", character_id=character_id)
    if len(cleaned) > limit:
        raise PromptError(f"{what} is {len(cleaned)} characters; at most {limit}", character_id=character_id)
    return cleaned


@dataclass(frozen=True)
class PromptItem:
    """One droppable line of a built prompt, for inspection (the studio, `observe`): its section
    ("world", "memories" or "turns"), its text, its drop score (facts only: relevance, salience
    and recency weighed; None for turns, which go oldest first) and whether it was kept."""

    section: str
    text: str
    score: float | None
    is_kept: bool


@dataclass(frozen=True)
class BuiltPrompt:
    """The prompt's texts, its token ids (tokenized once, here; the engine takes them as they
    are) and what the drop policy kept."""

    prefix: str
    prompt: str
    num_tokens: int
    num_turns: int
    num_turns_dropped: int
    num_facts: int
    num_facts_dropped: int
    encoded: EncodedPrompt | None = None
    items: tuple[PromptItem, ...] = ()  # every droppable line, kept or not, in drop order


@dataclass(frozen=True)
class _Item:
    section: str  # "world", "memories" or "turns"
    order: int    # position within its section
    line: str
    score: float | None = None  # facts: the drop score (lowest dropped first)


class PromptBuilder:
    """Builds prompts for one model (its tokenizer and chat template) under `max_prompt_tokens`
    (default: all the model takes besides its canvas)."""

    _HEADERS = {"world": "What everyone knows:", "memories": "What you remember:", "turns": "Conversation so far:"}

    def __init__(self, encoder: PromptEncoder, *, max_prompt_tokens: int | None = None) -> None:
        limit = encoder.max_prompt_tokens
        if max_prompt_tokens is None:
            max_prompt_tokens = limit
        if isinstance(max_prompt_tokens, bool) or not isinstance(max_prompt_tokens, int) \
                or not 1 <= max_prompt_tokens <= limit:
            raise PromptError(f"max_prompt_tokens must be an integer in 1..{limit} for this model, "
                              f"got {max_prompt_tokens!r}")
        self.encoder = encoder
        self.max_prompt_tokens = max_prompt_tokens
        self._counts: dict[str, int] = {}

    @staticmethod
    def persona_prefix(character: Character) -> str:
        """The stable part: changes only when the persona, style or knowledge is edited."""
        lines = [f"You are {character.name}. {character.persona.strip()}"]
        if character.speaking_style.strip():
            lines.append(f"Speaking style: {character.speaking_style.strip()}")
        if character.knowledge:
            lines.append("What you know:")
            lines += [f"- {fact}" for fact in character.knowledge]
        return "\n".join(lines)

    @classmethod
    def layout(cls, character: Character, *, speaker_id: str | None, speaker_name: str | None, utterance: str,
               world_facts: Sequence[WorldFact] = (),
               name_of: Callable[[str], str | None] | None = None, is_event: bool = False) -> tuple[str, str]:
        """(prefix, prompt) with nothing dropped: what `build` gives when everything fits. Training
        data is laid out with this, so a model learns exactly the engine's prompts."""
        required, ending, turns, facts = cls._items(character, speaker_id, speaker_name, utterance, world_facts,
                                                    name_of, FactRelevance(), is_event)
        return cls.persona_prefix(character), cls._render(set(turns + facts), required, ending)

    @staticmethod
    def _items(character: Character, speaker_id: str | None, speaker_name: str | None, utterance: str,
               world_facts: Sequence[WorldFact], name_of: Callable[[str], str | None] | None,
               relevance: FactRelevance, is_event: bool) -> tuple[list[str], str, list[_Item], list[_Item]]:
        def display(other: str) -> str:
            name = name_of(other) if name_of is not None else None
            return name or (character.name if other == character.id else other)

        required = [f"Your mood: {character.mood}."]
        if speaker_id is not None:  # an event nobody caused has no one to feel about
            relationship = character.relationship(speaker_id)
            required.append(f"How you feel about {speaker_name or speaker_id}: trust {relationship.trust}, affinity "
                            f"{relationship.affinity}, familiarity {relationship.familiarity}.")
        ending = f"Event: {utterance}" if is_event else f"{speaker_name} says: {utterance}"
        turns = [_Item("turns", i, f"Event: {' '.join(t.text.split())}" if t.kind == "event"
                       else f"{display(t.speaker_id)}: {' '.join(t.text.split())}")
                 for i, t in enumerate(character.recent_turns)]
        num_memories = len(character.memories)
        # Empty when the turn had no searchable word; else one per memory (read in the same snapshot).
        memory_relevance = relevance.memories or (0.0,) * num_memories
        memories = [(score, 0, i, _Item("memories", i, f"- {m.text}", score))
                    for i, m in enumerate(character.memories)
                    for score in (fact_score(memory_relevance[i], m.salience, (i + 1) / num_memories),)]
        world = [(score, 1, i, _Item("world", i, f"- {f.text}", score))
                 for i, f in enumerate(sorted(world_facts, key=lambda f: f.key))
                 for score in (fact_score(relevance.world.get(f.key, 0.0), f.salience, 1.0),)]
        facts = [item for *_, item in sorted(memories + world, key=lambda entry: entry[:3])]
        return required, ending, turns, facts

    def build(self, character: Character, *, speaker_id: str | None, speaker_name: str | None, utterance: str,
              world_facts: Sequence[WorldFact] = (),
              name_of: Callable[[str], str | None] | None = None,
              relevance: FactRelevance | None = None, is_event: bool = False,
              num_canvas_tokens: int | None = None) -> BuiltPrompt:
        """The prompt for `speaker_name` saying `utterance` (already normalized) to `character`, or
        with `is_event` for the event `utterance` (caused by `speaker_id`, or by no one: None);
        `relevance` (from `read_prompt_inputs`) ranks the facts against the turn.
        `num_canvas_tokens`: positions the reply's template takes after the prompt (a template
        over several canvases leaves the prompt less room); default one canvas."""
        required, ending, turns, facts = self._items(character, speaker_id, speaker_name, utterance, world_facts,
                                                     name_of, relevance or FactRelevance(), is_event)
        drop_order = turns + facts

        prefix = self.persona_prefix(character)
        kept = set(drop_order)
        budget = self.max_prompt_tokens
        if num_canvas_tokens is not None:
            budget = min(budget, self.encoder.max_position_embeddings - num_canvas_tokens)
        # Estimate from per-line counts (cached: persona, mood and fact lines repeat from turn to
        # turn), then encode the chosen prompt once; merges across lines can shift the real count
        # by a token, so drop one more item at a time until the real encoding fits.
        num_in_section = Counter(item.section for item in kept)
        estimate = (self.encoder.framing_tokens(has_prefix=bool(prefix)) + self._count(prefix)
                    + sum(self._count(line + "\n") for line in required) + self.encoder.count_tokens(ending)
                    + sum(self._count(item.line + "\n") for item in kept)
                    + sum(self._count(self._HEADERS[section] + "\n") for section in num_in_section))
        next_drop = 0
        while estimate > budget and next_drop < len(drop_order):
            item = drop_order[next_drop]
            kept.discard(item)
            estimate -= self._count(item.line + "\n")
            num_in_section[item.section] -= 1
            if num_in_section[item.section] == 0:
                estimate -= self._count(self._HEADERS[item.section] + "\n")
            next_drop += 1
        while True:
            prompt = self._render(kept, required, ending)
            encoded = self._encode(prefix, prompt)
            num_tokens = budget + 1 if encoded is None else encoded.num_tokens
            if num_tokens <= budget:
                break
            if next_drop >= len(drop_order):  # only the parts never dropped are left
                raise PromptError(self._too_large(num_tokens, budget), character_id=character.id)
            kept.discard(drop_order[next_drop])
            next_drop += 1
        num_turns = sum(1 for item in kept if item.section == "turns")
        return BuiltPrompt(prefix=prefix, prompt=prompt, num_tokens=num_tokens, num_turns=num_turns,
                           num_turns_dropped=len(turns) - num_turns, num_facts=len(kept) - num_turns,
                           num_facts_dropped=len(facts) - (len(kept) - num_turns), encoded=encoded,
                           items=tuple(PromptItem(item.section, item.line.removeprefix("- "), item.score,
                                                  item in kept) for item in drop_order))

    def build_from(self, inputs: "PromptInputs", speaker_id: str | None, utterance: str, *,
                   is_event: bool = False, num_canvas_tokens: int | None = None) -> BuiltPrompt:
        """`build` over what `read_prompt_inputs` read."""
        return self.build(inputs.character, speaker_id=speaker_id, speaker_name=inputs.speaker_name,
                          utterance=utterance, world_facts=inputs.world_facts, name_of=inputs.names.get,
                          relevance=inputs.relevance, is_event=is_event, num_canvas_tokens=num_canvas_tokens)

    @classmethod
    def _render(cls, kept: set[_Item], required: list[str], ending: str) -> str:
        lines: list[str] = []
        for section in ("world", "memories"):
            items = sorted((i for i in kept if i.section == section), key=lambda i: i.order)
            if items:
                lines += [cls._HEADERS[section], *(i.line for i in items)]
        lines += required
        turns = sorted((i for i in kept if i.section == "turns"), key=lambda i: i.order)
        if turns:
            lines += [cls._HEADERS["turns"], *(i.line for i in turns)]
        lines.append(ending)
        return "\n".join(lines)

    def _encode(self, prefix: str, prompt: str) -> EncodedPrompt | None:
        """The encoding, or None when it is over the model's own limit (so over any budget)."""
        try:
            return self.encoder.encode(prompt, prefix)
        except PromptError:
            return None

    def _count(self, text: str) -> int:
        count = self._counts.get(text)
        if count is None:
            if len(self._counts) >= _MAX_CACHED_COUNTS:
                self._counts.clear()
            count = self._counts[text] = self.encoder.count_tokens(text)
        return count

    @staticmethod
    def _too_large(num_tokens: int, budget: int) -> str:
        return (f"the persona prefix, mood and relationship lines and the new utterance alone take "
                f"{num_tokens} tokens; the prompt budget is {budget} (shorten the persona or the utterance, "
                "or raise max_prompt_tokens)")

"""The soak's ledger: what one character must look like after each operation (pure policy).

One soak client owns each character and runs one operation on it at a time, reading the
character back after each one. So the state before an operation is known, and every outcome
allows exactly one state after it, or (when the answer was lost to a kill or a disconnect) one
of two: the operation applied whole, or not at all. Anything else is a violation:

- lost: an acknowledged write is not in the state (its turns, trust, mood or flag are missing);
- contradicted: the state holds another line than the reply the game was given, or a reply said
  "cancelled" (or was refused) and its turn is there anyway;
- half-applied: a part of a write is there and another part is not (a turn without its trust
  change), or a write landed twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["Outcome", "Seen", "Violation", "check_after", "check_load", "expected_after_reply", "seen_of"]

MAX_TURNS = 64            # the server's Store default: only the newest turns are kept
TRUST_RANGE = (-100, 100)
MAX_LINE_CHARS = 500      # MAX_UTTERANCE_CHARS: a stored line is cut there


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the soak checks of one character."""

    trust: int
    mood: str
    flags: tuple[tuple[str, Any], ...]
    turns: tuple[tuple[str, str, str], ...]  # (speaker_id, text, kind), oldest first


@dataclasses.dataclass(frozen=True)
class Violation:
    kind: str  # "lost", "contradicted", "half_applied", "applied_twice"
    character_id: str
    detail: str


class Outcome:
    """How an operation ended, as the game saw it."""

    APPLIED = "applied"      # a reply with fields came back: it must be in the state, exactly
    UNCHANGED = "unchanged"  # cancelled, refused (busy, rate_limited, state_changed, ...): nothing changed
    UNKNOWN = "unknown"      # no answer (the server was killed, the client disconnected): all or nothing


def seen_of(character: Any) -> Seen:
    """A `Character` (from `get_character`) as the ledger compares it."""
    relationship = character.relationships.get("player")
    return Seen(trust=relationship.trust if relationship is not None else 0, mood=character.mood,
                flags=tuple(sorted(character.flags.items())),
                turns=tuple((t.speaker_id, t.text, t.kind) for t in character.recent_turns))


def expected_after_reply(before: Seen, character_id: str, text: str, fields: Mapping[str, Any], *,
                         is_event: bool) -> Seen:
    """The state after a reply to `text` (a player line, or an event the player caused) applied
    with `fields` (shopkeeper_reply's)."""
    turns = [*before.turns, ("player", " ".join(text.split()), "event" if is_event else "line")]
    line = str(fields["say"]).strip()[:MAX_LINE_CHARS]
    if line:
        turns.append((character_id, line, "line"))
    low, high = TRUST_RANGE
    flags = dict(before.flags)
    flags["conversation_over"] = fields["ends_conversation"]
    return Seen(trust=min(high, max(low, before.trust + int(fields["trust_delta"]))), mood=str(fields["emotion"]),
                flags=tuple(sorted(flags.items())), turns=tuple(turns[-MAX_TURNS:]))


def check_after(character_id: str, before: Seen, after: Seen, outcome: str, *, text: str,
                fields: Mapping[str, Any] | None = None, is_event: bool = False) -> list[Violation]:
    """Violations of one say (or react) of `text`: `fields` when it came back applied."""
    if outcome == Outcome.APPLIED:
        if fields is None:
            raise ValueError("an applied outcome needs its fields")
        expected = expected_after_reply(before, character_id, text, fields, is_event=is_event)
        return [] if after == expected else [_explain(character_id, text, expected, after, outcome)]
    if outcome == Outcome.UNCHANGED:
        return [] if after == before else [_explain(character_id, text, before, after, outcome)]
    if after == before:
        return []
    # Unknown: applied whole (its turn, maybe a reply line, and the matching trust, mood and flag), or not at all.
    said = ("player", " ".join(text.split()), "event" if is_event else "line")
    if sum(1 for turn in after.turns if turn == said) > 1:
        return [Violation("applied_twice", character_id, f"{text!r} is in the history twice")]
    if after.turns and after.turns[-1] == said:
        line = ""
    elif len(after.turns) >= 2 and after.turns[-2] == said and after.turns[-1][0] == character_id:
        line = after.turns[-1][1]
    else:
        return [_explain(character_id, text, before, after, outcome)]
    reply = {"say": line, "emotion": after.mood, "trust_delta": after.trust - before.trust,
             "ends_conversation": dict(after.flags).get("conversation_over")}
    expected = expected_after_reply(before, character_id, text, reply, is_event=is_event)
    if after != expected or abs(after.trust - before.trust) > 3:
        return [Violation("half_applied", character_id, f"{text!r} landed in part: {_diff(expected, after)}")]
    return []


def check_load(character_id: str, before: Seen, after: Seen, slot: Seen | None, outcome: str) -> list[Violation]:
    """A `snapshot.load` of the character's own slot (saved as `slot`)."""
    allowed = {Outcome.APPLIED: [slot], Outcome.UNCHANGED: [before], Outcome.UNKNOWN: [before, slot]}[outcome]
    if any(after == option for option in allowed if option is not None):
        return []
    return [Violation("lost" if outcome == Outcome.APPLIED else "contradicted", character_id,
                      f"after a {outcome} load: {_diff(allowed[0] or before, after)}")]


def _explain(character_id: str, text: str, expected: Seen, after: Seen, outcome: str) -> Violation:
    missing = [t for t in expected.turns if t not in after.turns]
    extra = [t for t in after.turns if t not in expected.turns]
    if outcome == Outcome.APPLIED and missing and not extra:
        kind = "lost"
    elif outcome == Outcome.APPLIED and extra:
        kind = "contradicted"
    elif outcome == Outcome.UNCHANGED and extra:
        kind = "contradicted"
    else:
        kind = "half_applied"
    return Violation(kind, character_id, f"{outcome} {text!r}: {_diff(expected, after)}")


def _diff(expected: Seen, after: Seen) -> str:
    parts = []
    for name in ("trust", "mood", "flags"):
        if getattr(expected, name) != getattr(after, name):
            parts.append(f"{name} {getattr(expected, name)!r} != {getattr(after, name)!r}")
    if expected.turns != after.turns:
        parts.append(f"turns ...{list(expected.turns[-2:])} != ...{list(after.turns[-2:])}")
    return "; ".join(parts) or "equal"

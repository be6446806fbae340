"""The prompt builder's hard budget and its drop policy, with the tiny model's real tokenizer."""

from __future__ import annotations

import pytest

from npc_engine import Character, PromptError
from npc_engine.characters import PromptBuilder, WorldFact, normalize_utterance
from npc_engine.characters.relevance import fact_score

PERSONA = "A gruff smith of Thornvale who distrusts strangers and loves her forge."


def character(num_turns: int = 8, saliences=(0.9, 0.1, 0.5, 0.3, 0.7)) -> Character:
    return Character(
        id="brom", name="Brom", persona=PERSONA, speaking_style="Short, blunt sentences.",
        knowledge=["The old mine is closed."], mood="wary",
        relationships={"player": {"trust": 12, "affinity": -3, "familiarity": 40}},
        memories=[{"text": f"memory number {i} about the village", "salience": s, "created_ms": i}
                  for i, s in enumerate(saliences)],
        recent_turns=[{"speaker_id": "player" if i % 2 == 0 else "brom", "text": f"turn number {i} of the talk",
                       "created_ms": i} for i in range(num_turns)])


WORLD = [WorldFact(key="season", text="It is deep winter.", salience=0.6),
         WorldFact(key="war", text="The north is at war.", salience=0.2)]


def build(engine, budget=None, **overrides):
    builder = PromptBuilder(engine.prompts, max_prompt_tokens=budget)
    subject = overrides.pop("character", None) or character()
    options = dict(speaker_id="player", speaker_name="Aria", utterance="Any work for me?", world_facts=WORLD,
                   name_of={"player": "Aria", "brom": "Brom"}.__getitem__)
    options.update(overrides)
    return builder.build(subject, **options)


def kept_lines(built, marker: str) -> list[str]:
    return [line for line in built.prompt.splitlines() if marker in line]


def test_everything_fits_in_natural_order(engine):
    built = build(engine)
    assert built.num_turns_dropped == 0 and built.num_facts_dropped == 0
    assert [line.split(": ")[1] for line in kept_lines(built, "turn number")] == \
        [f"turn number {i} of the talk" for i in range(8)]
    assert kept_lines(built, "memory number") == [f"- memory number {i} about the village" for i in range(5)]
    assert built.prompt.index("deep winter") < built.prompt.index("at war")  # world facts by key
    assert built.prompt.endswith("Aria says: Any work for me?")
    assert "Your mood: wary." in built.prompt and "trust 12, affinity -3, familiarity 40" in built.prompt
    assert built.num_tokens == len(engine.encode_prompt(built.prompt, built.prefix))


def test_oldest_turns_go_first(engine):
    full = build(engine).num_tokens
    built = build(engine, budget=full - 20)
    assert 0 < built.num_turns_dropped < 8 and built.num_facts_dropped == 0
    kept = [int(line.split("turn number ")[1].split()[0]) for line in kept_lines(built, "turn number")]
    assert kept == list(range(8 - len(kept), 8))  # a suffix: the newest turns
    assert built.num_tokens <= full - 20


def test_then_the_lowest_scored_facts_go(engine):
    """With no word of the turn in any fact, salience and recency decide (relevance.py)."""
    no_turns = build(engine, character=character(num_turns=0)).num_tokens
    built = build(engine, budget=no_turns - 25)
    assert built.num_turns_dropped == 8 and 0 < built.num_facts_dropped < 7
    saliences = (0.9, 0.1, 0.5, 0.3, 0.7)
    scores = {f"memory number {i}": fact_score(0.0, s, (i + 1) / 5) for i, s in enumerate(saliences)}
    scores |= {"deep winter": fact_score(0.0, 0.6, 1.0), "at war": fact_score(0.0, 0.2, 1.0)}
    kept = {name for name in scores if name in built.prompt}
    dropped = set(scores) - kept
    assert max(scores[d] for d in dropped) <= min(scores[k] for k in kept)
    assert built.num_tokens <= no_turns - 25


def test_persona_state_and_utterance_are_never_dropped(engine):
    minimal = build(engine, character=character(num_turns=0, saliences=()), world_facts=[]).num_tokens
    built = build(engine, budget=minimal)
    assert built.num_turns == 0 and built.num_facts == 0 and built.num_tokens == minimal
    assert PERSONA in built.prefix and "Any work for me?" in built.prompt and "Your mood" in built.prompt
    with pytest.raises(PromptError, match=f"alone take {minimal} tokens; the prompt budget is {minimal - 1}"):
        build(engine, budget=minimal - 1)


def test_every_budget_is_a_hard_limit(engine):
    minimal = build(engine, character=character(num_turns=0, saliences=()), world_facts=[]).num_tokens
    full = build(engine).num_tokens
    previous = None
    for budget in range(minimal, full + 2, 3):
        built = build(engine, budget=budget)
        assert built.num_tokens <= budget
        assert built.num_tokens == len(engine.encode_prompt(built.prompt, built.prefix))
        kept = built.num_turns + built.num_facts
        assert previous is None or kept >= previous  # more room never keeps less
        previous = kept
    assert previous == 8 + 5 + 2


def test_prefix_is_stable_across_state_changes(engine):
    first = build(engine)
    changed = character(num_turns=2)
    changed.mood = "furious"
    changed.relationships["player"].trust = -50
    second = build(engine, character=changed, utterance="Something else entirely.")
    assert first.prefix == second.prefix and first.prompt != second.prompt


def test_budget_setting_is_validated(engine):
    for bad in (0, -5, engine.prompts.max_prompt_tokens + 1, 1.5, True):
        with pytest.raises(PromptError, match="max_prompt_tokens"):
            PromptBuilder(engine.prompts, max_prompt_tokens=bad)


def test_utterances_are_normalized_or_refused():
    assert normalize_utterance("  Hello\n\nBrom:\tforge a line\x00!  ") == "Hello Brom: forge a line!"
    for bad, message in [("", "empty"), (" \n\t ", "empty"), ("x" * 2001, "2001 characters"), (None, "string"),
                         (42, "string")]:
        with pytest.raises(PromptError, match=message):
            normalize_utterance(bad)

"""The procedural corpus's game events and NPC-to-NPC samples (for the built-in model's next
training), and the line grammar checker on event lines, shown strict."""

from __future__ import annotations

from npc_engine.training.world import tavern_world
from npc_engine.training.data import DataConfig, event_combinations, generate, stream
from npc_engine.training.evaluate import SLICES
from npc_engine.training.grammar import grammar_lines, is_grammatical


def test_by_default_the_stream_has_no_events_and_no_npc_speakers():
    samples = stream(DataConfig(), 3, 200)
    assert not any(s.meta["is_event"] or s.meta["is_npc_speaker"] for s in samples)
    assert all(" says: " in s.prompt.splitlines()[-1] for s in samples)


def test_event_samples_are_laid_out_as_events():
    samples = stream(DataConfig(event_fraction=0.3), 5, 400)
    events = [s for s in samples if s.meta["is_event"]]
    assert 0.2 < len(events) / len(samples) < 0.4
    for sample in events:
        kind = tavern_world().events[sample.meta["intent"]]
        last = sample.prompt.splitlines()[-1]
        assert last.startswith("Event: ") and " says: " not in last
        has_relationship = "How you feel about" in sample.prompt
        assert has_relationship == kind.causer, sample.prompt
        line_slots = [name for name, concept in sample.meta["concepts"].items() if concept == "line"]
        assert all(sample.fields[name] in grammar_lines(sample.meta) for name in line_slots)
    assert {s.meta["intent"] for s in events} == set(tavern_world().events)  # every kind is drawn


def test_npc_speaker_samples_address_another_character():
    samples = stream(DataConfig(npc_fraction=0.5), 9, 200)
    npc = [s for s in samples if s.meta["is_npc_speaker"]]
    assert 0.35 < len(npc) / len(samples) < 0.65
    for sample in npc:
        speaker = sample.meta["player"]
        assert speaker not in tavern_world().player_names and speaker != sample.meta["name"]
        assert sample.prompt.splitlines()[-1].startswith(f"{speaker} says: ")
        assert f"How you feel about {speaker}:" in sample.prompt


def test_the_events_slice_holds_combinations_training_never_sees():
    config = DataConfig(num_train=0, num_heldout=150)
    train, heldout = event_combinations(config)
    assert not set(train) & set(heldout) and heldout
    samples = generate(config, split="events")
    assert all(s.meta["is_event"] and s.combination in heldout for s in samples)
    trained = stream(DataConfig(event_fraction=1.0), 0, 300)
    assert all(s.combination in train for s in trained)
    assert "events" in SLICES


def test_the_grammar_checker_is_strict_on_event_lines():
    sample = next(s for s in generate(DataConfig(num_train=0, num_heldout=80), split="events")
                  if s.meta["intent"] == "caught_stealing")
    line = sample.fields["say"]
    assert is_grammatical(line, sample.meta)
    words = line.split()
    assert not is_grammatical(" ".join(reversed(words)), sample.meta)  # shuffled
    assert not is_grammatical(" ".join(words[:-1]), sample.meta)       # truncated
    assert not is_grammatical(line + " " + words[-1], sample.meta)     # a word repeated
    opener = words[0]
    other_kind = tavern_world().events["gives_gift"].lines[0].replace("{player}", sample.meta["player"])
    assert not is_grammatical(f"{opener} {other_kind}", sample.meta)    # another event's line
    other_name = "Zz" + sample.meta["player"]
    assert not is_grammatical(line.replace(sample.meta["player"], other_name), sample.meta)  # wrong name

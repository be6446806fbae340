"""The line-quality checker is strict: every reference line passes, damaged or foreign lines fail."""

from __future__ import annotations

import random

import pytest

from npc_engine.training import DataConfig, generate
from npc_engine.training.world import tavern_world

INTENTS = tavern_world().intents
MOOD_OPENERS = tavern_world().mood_openers
from npc_engine.training.grammar import grammar_lines, is_grammatical

CONFIG = DataConfig(num_train=600, num_heldout=200, seed=5)


@pytest.fixture(scope="module")
def samples():
    return [s for split in ("train", "heldout", "paraphrase") for s in generate(CONFIG, split=split)
            if "line" in s.meta["concepts"].values()]


def _line(sample):
    return next(sample.fields[name] for name, concept in sample.meta["concepts"].items() if concept == "line")


def test_every_reference_line_passes(samples):
    assert len(samples) > 500
    for sample in samples:
        assert is_grammatical(_line(sample), sample.meta), (_line(sample), sample.meta)


def test_shuffled_repeated_and_truncated_lines_fail(samples):
    rng = random.Random(0)
    num_checked = 0
    for sample in samples:
        words = _line(sample).split()
        if len(set(words)) < 3:
            continue
        shuffled = words[:]
        while shuffled == words:
            rng.shuffle(shuffled)
        index = rng.randrange(len(words))
        repeated = words[: index + 1] + [words[index]] + words[index + 1:]
        for bad in (" ".join(shuffled), " ".join(repeated), " ".join(words[:-1]), " ".join(words[1:]),
                    " ".join(words) + " " + words[-1]):
            assert not is_grammatical(bad, sample.meta), bad
        num_checked += 1
    assert num_checked > 400


def test_lines_of_another_intent_mood_or_world_fail(samples):
    by_intent = {}
    for sample in samples:
        by_intent.setdefault(sample.meta["intent"], []).append(sample)
    assert len(by_intent) == len(INTENTS)
    for sample in samples[:200]:
        meta = sample.meta
        for other_intent in INTENTS:
            if other_intent == meta["intent"]:
                continue
            other = dict(meta, intent=other_intent)
            assert not grammar_lines(other) & grammar_lines(meta), (meta["intent"], other_intent)
        other_mood = next(m for m in MOOD_OPENERS if not set(MOOD_OPENERS[m]) & set(MOOD_OPENERS[meta["mood"]]))
        assert not grammar_lines(dict(meta, mood=other_mood)) & grammar_lines(meta)
        line = _line(sample)
        wrong_player = "Zebulon"
        if meta["player"] in line:
            assert not is_grammatical(line.replace(meta["player"], wrong_player), meta)
        if meta["name"] in line:
            assert not is_grammatical(line.replace(meta["name"], wrong_player), meta)


def test_garbled_model_output_fails(samples):
    sample = samples[0]
    for bad in ("", "Oh,... saw the the the the the the", "Oha..etet t,,..", "Ha! Ha! Ha!"):
        assert not is_grammatical(bad, sample.meta)

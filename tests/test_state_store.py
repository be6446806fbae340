"""The character store on real SQLite: persistence, migrations, transactions, bad input, threads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

from npc_engine import (
    Character,
    StateError,
    Store,
    StoreError,
    UnknownCharacterError,
    UnknownSpeakerError,
)
from npc_engine.characters import SCHEMA_VERSION, default_database_path
from npc_engine.characters.schema import migrate, read_version

BROM = {"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale.", "speaking_style": "Short.",
        "knowledge": ["The mine is closed."]}


def make_store(path=":memory:", **options) -> Store:
    store = Store(path, **options)
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character(BROM)
    return store


def test_state_survives_a_process_restart(tmp_path):
    path = tmp_path / "game.db"
    writer = f"""
from npc_engine import Store
store = Store({str(path)!r})
store.upsert_speaker({{"id": "player", "name": "Aria"}})
store.upsert_character({BROM!r})
store.set_mood("brom", "angry")
store.adjust_relationship("brom", "player", trust=7, familiarity=2)
store.add_memory("brom", "Aria paid her debt.", 0.8)
store.add_turn("brom", "player", "Good morning.")
store.set_flag("brom", "quest_stage", 3)
store.set_world_fact("weather", "It is raining.", 0.2)
store.snapshots.save("slot_1")
"""
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)
    store = Store(path)
    brom = store.get_character("brom")
    assert brom.mood == "angry" and brom.flags == {"quest_stage": 3}
    assert brom.relationship("player").trust == 7 and brom.relationship("player").familiarity == 2
    assert [m.text for m in brom.memories] == ["Aria paid her debt."]
    assert [(t.speaker_id, t.text) for t in brom.recent_turns] == [("player", "Good morning.")]
    assert store.get_world_fact("weather").salience == 0.2
    assert [s.name for s in store.snapshots.list()] == ["slot_1"]
    assert store.speaker_name("player") == "Aria"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == SCHEMA_VERSION and store.integrity_check() == "ok"


def test_default_path_is_under_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("NPC_ENGINE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert default_database_path() == tmp_path / "data" / "npc-engine" / "state.db"
    monkeypatch.setenv("NPC_ENGINE_DATA_DIR", str(tmp_path / "mine"))
    store = Store()
    assert store.path == str(tmp_path / "mine" / "state.db")
    assert (tmp_path / "mine" / "state.db").exists()


def test_migrations_upgrade_in_place_and_refuse_newer_databases(tmp_path):
    v1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"
    v2 = "ALTER TABLE notes ADD COLUMN salience REAL NOT NULL DEFAULT 0.5;"
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert migrate(conn, [v1]) == (0, 1)
    conn.execute("INSERT INTO notes (text) VALUES ('kept')")
    assert migrate(conn, [v1, v2]) == (1, 2)
    assert conn.execute("SELECT text, salience FROM notes").fetchall() == [("kept", 0.5)]
    assert migrate(conn, [v1, v2]) == (2, 2)
    with pytest.raises(ValueError, match="schema version 2"):
        migrate(conn, [v1])
    # A failing migration leaves the last good version.
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, [v1, v2, "CREATE TABLE broken (;"])
    assert read_version(conn) == 2

    path = tmp_path / "state.db"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)


def test_unusable_database_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.db"):
        Store(junk)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store(blocker / "sub" / "state.db")


def test_upsert_keeps_what_it_is_not_given():
    store = make_store()
    store.add_memory("brom", "The player fixed the bellows.", 0.9)
    store.adjust_relationship("brom", "player", trust=5)
    store.upsert_character(Character(id="brom", name="Brom the Elder", persona="An old smith."))
    brom = store.get_character("brom")
    assert brom.name == "Brom the Elder" and brom.persona == "An old smith."
    assert brom.speaking_style == "Short." and brom.knowledge == ["The mine is closed."]
    assert [m.text for m in brom.memories] == ["The player fixed the bellows."]
    assert brom.relationship("player").trust == 5
    store.upsert_character({"id": "brom", "memories": []})  # given explicitly: replaced
    assert store.get_character("brom").memories == []


def test_crud_and_unknown_ids():
    store = make_store()
    store.upsert_character({"id": "mara", "name": "Mara", "persona": "A baker."})
    assert store.list_characters() == ["brom", "mara"]
    store.add_memory("mara", "Flour is scarce.")
    store.delete_character("mara")
    assert store.list_characters() == ["brom"] and not store.has_character("mara")
    with store.reading() as conn:  # children went with it
        assert conn.execute("SELECT COUNT(*) FROM memories WHERE character_id = 'mara'").fetchone()[0] == 0
    for call in (lambda: store.get_character("mara"), lambda: store.delete_character("mara"),
                 lambda: store.set_mood("mara", "sad"), lambda: store.add_memory("mara", "x"),
                 lambda: store.set_flag("mara", "f", 1)):
        with pytest.raises(UnknownCharacterError, match="'mara'"):
            call()
    with pytest.raises(UnknownSpeakerError, match="'ghost'"):
        store.add_turn("brom", "ghost", "Boo.")
    with pytest.raises(UnknownSpeakerError):
        store.adjust_relationship("brom", "ghost", trust=1)
    store.set_world_fact("war", "The north is at war.", 0.9)
    assert [f.key for f in store.list_world_facts()] == ["war"]
    assert store.delete_world_fact("war") and store.get_world_fact("war") is None


@pytest.mark.parametrize("bad, field", [
    ({"id": "x", "name": "X", "persona": "p" * 4001}, "persona"),
    ({"id": "bad id!", "name": "X", "persona": "p"}, "id"),
    ({"id": "x", "name": "", "persona": "p"}, "name"),
    ({"id": "x", "name": "X\n", "persona": "p"}, "name"),
    ({"id": "x", "name": "X", "persona": "p", "relationships": {"player": {"trust": 101}}}, "relationships"),
    ({"id": "x", "name": "X", "persona": "p", "flags": {"f": [1]}}, "flags"),
    ({"id": "x", "name": "X", "persona": "p", "flags": {"f": None}}, "flags"),
    ({"id": "x", "name": "X", "persona": "p", "memories": [{"text": "m", "salience": 1.5}]}, "memories"),
    ({"id": "x", "name": "X", "persona": "p", "unknown_field": 1}, "unknown_field"),
])
def test_invalid_characters_are_refused_and_change_nothing(bad, field):
    store = make_store()
    with pytest.raises(StateError) as info:
        store.upsert_character(bad)
    assert field in str(info.value)
    assert store.list_characters() == ["brom"]


@pytest.mark.parametrize("value", [[1], {"a": 1}, None, float("nan"), float("inf"), 2**70, "s" * 257, b"raw"])
def test_flags_of_the_wrong_type_are_refused(value):
    store = make_store()
    store.set_flag("brom", "quest", 1)
    with pytest.raises(StateError, match="quest"):
        store.set_flag("brom", "quest", value)
    assert store.get_character("brom").flags == {"quest": 1}


def test_relationships_clamp_and_validate():
    store = make_store()
    before, after = store.adjust_relationship("brom", "player", trust=250, familiarity=-9)
    assert (before.trust, after.trust, after.familiarity) == (0, 100, 0)
    _, after = store.adjust_relationship("brom", "player", trust=-500, affinity=-3)
    assert (after.trust, after.affinity) == (-100, -3)
    with pytest.raises(StateError, match="dimension"):
        store.adjust_relationship("brom", "player", respect=1)
    with pytest.raises(StateError, match="integer"):
        store.adjust_relationship("brom", "player", trust=1.5)
    with pytest.raises(StateError, match="trust"):
        store.set_relationship("brom", "player", {"trust": 101})
    assert store.get_character("brom").relationship("player").trust == -100


def test_retention_keeps_newest_turns_and_most_salient_memories():
    store = make_store(max_turns_per_character=3, max_memories_per_character=3)
    for i in range(6):
        store.add_turn("brom", "player", f"line {i}")
    for text, salience in [("a", 0.9), ("b", 0.1), ("c", 0.5), ("d", 0.5), ("e", 0.7)]:
        store.add_memory("brom", text, salience)
    brom = store.get_character("brom")
    assert [t.text for t in brom.recent_turns] == ["line 3", "line 4", "line 5"]
    assert [m.text for m in brom.memories] == ["a", "d", "e"]  # b (0.1) then c (0.5, older) forgotten


def test_a_failed_transaction_changes_nothing():
    store = make_store()
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set_mood("brom", "furious")
            store.add_memory("brom", "Something happened.")
            raise RuntimeError("boom")
    brom = store.get_character("brom")
    assert brom.mood == "neutral" and brom.memories == []
    with store.transaction():  # a failed inner group rolls back to its savepoint only
        store.set_mood("brom", "calm")
        with pytest.raises(StateError):
            with store.transaction():
                store.add_memory("brom", "kept? no")
                store.set_flag("brom", "bad", [1])
    brom = store.get_character("brom")
    assert brom.mood == "calm" and brom.memories == [] and brom.flags == {}


def test_threads_writing_different_characters_lose_nothing(tmp_path):
    path = tmp_path / "threads.db"
    shared = make_store(path)
    ids = [f"npc_{i}" for i in range(6)]
    for character_id in ids:
        shared.upsert_character({"id": character_id, "name": character_id, "persona": "A villager."})
    num_writes = 40
    errors = []

    def write(character_id: str, store: Store) -> None:
        try:
            for n in range(num_writes):
                store.add_memory(character_id, f"memory {n}", 0.5)
                store.adjust_relationship(character_id, "player", trust=1)
                store.add_turn(character_id, "player", f"turn {n}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # Half share one Store (one connection), half open their own (separate connections, WAL locking).
    own = [Store(path) for _ in ids[3:]]
    threads = [threading.Thread(target=write, args=(c, shared)) for c in ids[:3]]
    threads += [threading.Thread(target=write, args=(c, s)) for c, s in zip(ids[3:], own)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reopened = Store(path)
    for character_id in ids:
        character = reopened.get_character(character_id)
        assert [m.text for m in character.memories] == [f"memory {n}" for n in range(num_writes)]
        assert character.relationship("player").trust == num_writes
        assert len(character.recent_turns) == num_writes
    assert reopened.integrity_check() == "ok"


def test_a_closed_store_says_so(tmp_path):
    store = make_store(tmp_path / "closed.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_character("brom")
    with pytest.raises(StoreError, match="closed"):
        store.set_mood("brom", "calm")
    assert Store(tmp_path / "closed.db").get_character("brom").name == "Brom"

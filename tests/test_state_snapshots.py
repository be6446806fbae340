"""Save slots: round trips, exported files, damaged or newer files, and the SIGKILL crash test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zlib

import msgpack
import pytest

from npc_engine import SnapshotError, SnapshotVersionError, Store, UnknownSnapshotError
from npc_engine.characters import SCHEMA_VERSION


def world(store: Store) -> dict:
    return {"characters": [store.get_character(c).model_dump(exclude={"recent_turns"}) | {
                "turns": [(t.speaker_id, t.text) for t in store.get_character(c).recent_turns]}
            for c in store.list_characters()],
            "speakers": store.list_speakers(), "world_facts": store.list_world_facts()}


def populated() -> Store:
    store = Store(":memory:")
    store.upsert_speaker({"id": "player", "name": "Aria", "description": "The hero."})
    for character_id, persona in [("brom", "A smith."), ("mara", "A baker.")]:
        store.upsert_character({"id": character_id, "name": character_id.title(), "persona": persona,
                                "knowledge": ["Thornvale is small."], "flags": {"met": True, "gold": 2.5}})
        store.add_memory(character_id, f"{character_id} remembers the flood.", 0.7)
        store.add_turn(character_id, "player", "Hello!")
        store.adjust_relationship(character_id, "player", trust=4, affinity=-2)
    store.set_world_fact("season", "It is winter.", 0.4)
    return store


def test_world_snapshot_round_trips():
    store = populated()
    before = world(store)
    info = store.snapshots.save("slot_1")
    assert info.scope == "world" and info.schema_version == SCHEMA_VERSION and info.num_bytes > 0
    store.set_mood("brom", "furious")
    store.delete_character("mara")
    store.upsert_character({"id": "newcomer", "name": "Newcomer", "persona": "Arrived later."})
    store.set_world_fact("season", "It is spring.")
    store.delete_speaker("player")
    store.snapshots.load("slot_1")
    assert world(store) == before


def test_character_snapshot_restores_only_that_character():
    store = populated()
    brom_before = world(store)["characters"][0]
    store.snapshots.save("brom_only", character_id="brom")
    store.set_mood("brom", "sad")
    store.add_memory("brom", "A new memory.")
    store.set_mood("mara", "happy")
    info = store.snapshots.load("brom_only")
    assert info.scope == "character" and info.character_id == "brom"
    assert world(store)["characters"][0] == brom_before
    assert store.get_character("mara").mood == "happy"


def test_list_delete_and_unknown_slots():
    store = populated()
    store.snapshots.save("b")
    store.snapshots.save("a", character_id="mara")
    store.snapshots.save("b")  # saving to a used slot replaces it
    assert [(s.name, s.scope) for s in store.snapshots.list()] == [("a", "character"), ("b", "world")]
    store.snapshots.delete("a")
    assert [s.name for s in store.snapshots.list()] == ["b"]
    for call in (lambda: store.snapshots.load("a"), lambda: store.snapshots.delete("a")):
        with pytest.raises(UnknownSnapshotError, match="'a'"):
            call()
    with pytest.raises(SnapshotError, match="name"):
        store.snapshots.save("../escape")


def test_export_import_into_another_database(tmp_path):
    store = populated()
    store.snapshots.save("slot_1")
    path = tmp_path / "save.npcsnap"
    store.snapshots.export("slot_1", path)
    other = Store(tmp_path / "other.db")
    info = other.snapshots.import_file(path, name="imported")
    assert info.name == "imported" and other.list_characters() == []  # nothing applied yet
    other.snapshots.load("imported")
    assert world(other) == world(store)


def damaged_files(blob: bytes) -> dict[str, bytes]:
    envelope = msgpack.unpackb(blob, raw=False)
    newer = dict(envelope, schema_version=SCHEMA_VERSION + 1)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    bad_body = msgpack.packb({"characters": [{"id": "x", "name": "X", "persona": "p" * 5000}]})
    invalid = dict(envelope, body=bad_body, crc32=zlib.crc32(bad_body))
    return {"truncated": blob[: len(blob) - 7], "half": blob[: len(blob) // 2], "empty": b"",
            "flipped": bytes(flipped), "not_msgpack": b"\xc1\xc1\xc1", "other_map": msgpack.packb({"a": 1}),
            "newer": msgpack.packb(newer), "invalid_state": msgpack.packb(invalid)}


@pytest.mark.parametrize("kind", ["truncated", "half", "empty", "flipped", "not_msgpack", "other_map",
                                  "newer", "invalid_state"])
def test_damaged_or_newer_snapshot_files_change_nothing(tmp_path, kind):
    store = populated()
    store.snapshots.save("good")
    good = tmp_path / "good.npcsnap"
    store.snapshots.export("good", good)
    path = tmp_path / f"{kind}.npcsnap"
    path.write_bytes(damaged_files(good.read_bytes())[kind])
    before = (world(store), store.snapshots.list())
    expected = SnapshotVersionError if kind == "newer" else SnapshotError
    with pytest.raises(expected) as info:
        store.snapshots.import_file(path, name="good")
    assert str(path) in str(info.value)
    if kind == "newer":
        assert info.value.snapshot_version == SCHEMA_VERSION + 1
    assert (world(store), store.snapshots.list()) == before
    with pytest.raises(SnapshotError, match="cannot read"):
        store.snapshots.import_file(tmp_path / "missing.npcsnap")


_WRITER = """
import sys
from npc_engine import Store
store = Store(sys.argv[1])
store.upsert_speaker({"id": "player", "name": "Aria"})
for i in range(4):
    store.upsert_character({"id": f"npc_{i}", "name": f"Npc {i}", "persona": "A villager."})
print("ready", flush=True)
n = 0
while True:
    character_id = f"npc_{n % 4}"
    with store.transaction():
        store.add_memory(character_id, f"memory {n}", 0.5)
        store.adjust_relationship(character_id, "player", trust=1)
        store.set_flag(character_id, "last", n)
    print(n, flush=True)  # acknowledged: the transaction has committed
    n += 1
"""


def test_sigkill_mid_stream_loses_no_acknowledged_write(tmp_path):
    path = tmp_path / "crash.db"
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        acknowledged = [int(process.stdout.readline()) for _ in range(300)]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        acknowledged += [int(line) for line in process.stdout.read().split()]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    store = Store(path)
    assert store.integrity_check() == "ok"
    memories = {m.text for c in store.list_characters() for m in store.get_character(c).memories}
    assert {f"memory {n}" for n in acknowledged} <= memories
    for i in range(4):  # each transaction landed whole: memory count == trust == last flag's turn
        character = store.get_character(f"npc_{i}")
        assert len(character.memories) == character.relationship("player").trust
        assert character.flags["last"] % 4 == i
        assert f"memory {character.flags['last']}" in {m.text for m in character.memories}

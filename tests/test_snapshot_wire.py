"""Save slots in the game's own save file: `snapshot.export` / `snapshot.import` over a real
socket (protocol 1.1), with the file import's checks and its "nothing changes on a bad payload"."""

from __future__ import annotations

import base64

import msgpack
import pytest

from npc_engine.client import Client
from npc_engine.errors import ServerError
from npc_engine.protocol.chunks import CHUNK_BYTES, from_chunks, to_chunks

from .server_helpers import Raw, make_server, running


@pytest.fixture
def server(backend):
    server = make_server(backend)
    with running(server):
        yield server


def test_a_slot_goes_out_and_comes_back(server):
    store = server.store
    store.upsert_character({"id": "sage", "name": "Sage", "persona": "An old sage.",
                            "memories": [{"text": f"Memory {i}: " + "x" * 300, "salience": 0.5} for i in range(300)]})
    with Client(server.endpoint, timeout_s=60) as client:
        info = client.save_snapshot("slot1")
        data = client.export_snapshot("slot1")
        assert data == store.snapshots.export_bytes("slot1")[1] and len(data) > 2 * CHUNK_BYTES  # several chunks
        client.delete_character("sage")
        client.delete_snapshot("slot1")
        imported = client.import_snapshot(data, name="from_save_file")
        assert imported.name == "from_save_file" and imported.num_bytes == info.num_bytes
        client.load_snapshot("from_save_file")
        assert len(client.get_character("sage").memories) == 300
        assert client.import_snapshot(data).name == "slot1"  # its own name by default


def test_chunks_round_trip_at_every_size():
    for size in (0, 1, 2, 3, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 7):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        chunks = to_chunks(data)
        assert from_chunks(chunks) == data and all(len(c) <= 4 * CHUNK_BYTES // 3 for c in chunks)


def good_bytes(server) -> bytes:
    server.store.snapshots.save("good")
    return server.store.snapshots.export_bytes("good")[1]


def newer_schema(data: bytes) -> bytes:
    envelope = msgpack.unpackb(data, raw=False)
    envelope["schema_version"] = 99
    return msgpack.packb(envelope, use_bin_type=True)


def damaged(data: bytes) -> bytes:
    envelope = msgpack.unpackb(data, raw=False)
    body = bytearray(envelope["body"])
    body[len(body) // 2] ^= 0xFF
    envelope["body"] = bytes(body)
    return msgpack.packb(envelope, use_bin_type=True)


@pytest.mark.parametrize("make_chunks, message", [
    (lambda data: ["not base64!"], "chunk 0 of the snapshot is not base64"),
    (lambda data: to_chunks(data[: len(data) // 2]), "truncated"),
    (lambda data: to_chunks(damaged(data)), "damaged"),
    (lambda data: to_chunks(msgpack.packb({"format": "somebody-else", "body": b""})), "not an npc-engine snapshot"),
    (lambda data: to_chunks(b"\x00\x01garbage"), "snapshot"),
    (lambda data: to_chunks(newer_schema(data)), "schema version 99"),
])
def test_a_bad_payload_changes_nothing(server, make_chunks, message):
    data = good_bytes(server)
    before_slots = server.store.snapshots.list()
    before = server.store.get_character("brom")
    raw = Raw(server.endpoint)
    try:
        raw.request("snapshot.import", "i1", chunks=make_chunks(data), name="incoming")
        [reply] = raw.replies(1)
    finally:
        raw.close()
    assert not reply["ok"] and reply["error"]["code"] == "snapshot_error", reply
    assert message in reply["error"]["message"]
    if "99" in message:
        assert reply["error"]["details"]["snapshot_version"] == 99
    assert server.store.snapshots.list() == before_slots and server.store.get_character("brom") == before


def test_import_requests_are_validated(server):
    with Client(server.endpoint, timeout_s=30) as client:
        with pytest.raises(ServerError) as unknown:
            client.export_snapshot("no_such_slot")
        assert unknown.value.code == "unknown_snapshot"
    raw = Raw(server.endpoint)
    try:
        raw.request("snapshot.import", "i2", chunks=[])
        raw.request("snapshot.import", "i3", chunks=[base64.b64encode(b"x").decode()], name="bad name!")
        replies = {r["request_id"]: r for r in raw.replies(2)}
    finally:
        raw.close()
    assert replies["i2"]["error"]["code"] == "invalid_request" and replies["i3"]["error"]["code"] == "invalid_request"

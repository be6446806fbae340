"""The real server on loopback with the tiny model: every op through the Python client, bad input
over raw sockets, cancel, disconnects, backpressure, CURVE."""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest
import zmq

from npc_engine import BusyError, ClientTimeoutError, ConfigError, ServerError, VersionMismatchError
from npc_engine.client import AsyncClient, Client
from npc_engine.client import client as client_module
from npc_engine.protocol import PROTOCOL_VERSION, Limits
from npc_engine.server import write_curve_keys

from .server_helpers import Raw, make_server, running

GREETING = {"name": "greeting", "slots": [{"name": "line", "kind": "text", "max_tokens": 6},
                                          {"name": "mood", "kind": "choice", "options": ["calm", "wary"]}],
            "effects": [{"kind": "set_mood", "slot": "mood"}]}


@pytest.fixture(scope="module")
def server(backend):
    with running(make_server(backend, limits=Limits(max_outstanding_per_client=8))) as server:
        yield server


@pytest.fixture()
def client(server):
    with Client(server.endpoint, timeout_s=30) as client:
        yield client


@pytest.fixture()
def raw(server):
    socket = Raw(server.endpoint)
    yield socket
    socket.close()


def test_every_op_through_the_client(client):
    hello = client.hello()
    assert hello.protocol_version == PROTOCOL_VERSION and hello.warnings == []
    assert "say" in hello.ops and "drafts" in hello.capabilities and hello.model.num_parameters > 0
    assert client.ping().server_time_ms > 0

    assert client.upsert_speaker("guard", "The Guard").name == "The Guard"
    assert {s.id for s in client.list_speakers()} >= {"player", "guard"}
    assert client.delete_speaker("guard") is True and client.delete_speaker("guard") is False

    mara = client.upsert_character({"id": "mara", "name": "Mara", "persona": "A baker.", "flags": {"met": True}})
    assert mara.name == "Mara" and mara.flags == {"met": True}
    assert client.get_character("mara").persona == "A baker."
    assert "mara" in client.list_characters()

    assert client.set_world_fact("season", "It is winter.", 0.7).salience == 0.7
    assert [f.key for f in client.get_world_facts()] == ["season"]
    assert client.get_world_facts("nope") == []
    assert client.delete_world_fact("season") is True

    assert client.register_template(GREETING) == "greeting"
    assert {t.name for t in client.list_templates()} >= {"greeting", "shopkeeper_reply"}

    reply = client.say("mara", "player", "Fresh bread today?", template="greeting", seed=3)
    assert reply.finish_reason == "complete" and reply.fields["mood"] in ("calm", "wary")
    assert [c.path for c in reply.changes] == ["mood"]
    stored = client.get_character("mara")
    assert stored.mood == reply.fields["mood"] and len(stored.recent_turns) == 2

    stream = client.say_stream("mara", "player", "And cakes?", template="greeting", seed=4)
    drafts = list(stream)
    final = stream.result()
    assert drafts and all(set(d.fields) == {"line", "mood"} for d in drafts)
    assert [d.num_steps for d in drafts] == sorted(d.num_steps for d in drafts)
    assert final.finish_reason == "complete" and final.num_steps >= drafts[-1].num_steps

    stored = client.get_character("mara")  # the state the snapshot holds (the stream changed the mood)
    info = client.save_snapshot("slot_1")
    assert info.scope == "world" and [s.name for s in client.list_snapshots()] == ["slot_1"]
    client.delete_character("mara")
    assert client.load_snapshot("slot_1").name == "slot_1"
    assert client.get_character("mara").mood == stored.mood
    client.delete_snapshot("slot_1")
    client.delete_character("mara")

    stats = client.stats()
    assert stats.engine["num_finished"].get("complete", 0) >= 2 and stats.server["num_requests"] > 10


def test_server_errors_are_typed(client):
    with pytest.raises(ServerError) as info:
        client.get_character("nobody")
    assert info.value.code == "unknown_character"
    with pytest.raises(ServerError) as info:
        client.say("brom", "ghost", "Hi", template="shopkeeper_reply")
    assert info.value.code == "unknown_speaker"
    with pytest.raises(ServerError) as info:
        client.say("brom", "player", "Hi", template="missing")
    assert info.value.code == "unknown_template"
    with pytest.raises(ServerError) as info:
        client.upsert_character({"id": "x", "name": "X", "persona": "p" * 5000})
    assert info.value.code == "invalid_state"
    with pytest.raises(ServerError) as info:
        client.register_template({"name": "bad", "slots": []})
    assert info.value.code == "invalid_template"
    with pytest.raises(ServerError) as info:
        client.say("brom", "player", "   ", template="shopkeeper_reply")
    assert info.value.code == "invalid_prompt"
    with pytest.raises(ServerError) as info:
        client.cancel("never-sent")
    assert info.value.code == "unknown_request"
    with pytest.raises(ServerError) as info:
        client.load_snapshot("missing")
    assert info.value.code == "unknown_snapshot"
    assert client.ping()  # still serving


def test_cancel_a_say_in_flight(backend):
    with running(make_server(backend, max_steps=400)) as server, Client(server.endpoint, timeout_s=60) as client:
        before = client.get_character("brom")
        stream = client.say_stream("brom", "player", "Tell me everything.", template="shopkeeper_reply", seed=1)
        first = next(iter(stream))
        assert first.num_steps >= 1
        stream.cancel()
        result = stream.result()
        assert result.finish_reason == "cancelled" and result.fields is None and result.changes == []
        assert client.get_character("brom") == before
        assert client.stats().engine["num_active"] == 0


@pytest.mark.parametrize("is_streaming", [True, False])
def test_a_vanished_client_has_its_work_cancelled(backend, is_streaming):
    with running(make_server(backend, max_steps=2000)) as server:
        raw = Raw(server.endpoint)
        raw.request("say", "r1", character_id="brom", speaker_id="player", text="Talk a long time.",
                    template="shopkeeper_reply", stream=is_streaming)
        if is_streaming:
            assert raw.recv()["event"] == "draft"
        else:
            time.sleep(0.3)
        assert server.engine.stats().num_active == 1
        raw.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.engine.stats().num_active:
            time.sleep(0.05)
        stats = server.engine.stats()
        assert stats.num_active == 0 and stats.num_finished.get("cancelled") == 1
        assert server.counters["num_dropped_clients"] == 1
        assert server.store.get_character("brom").recent_turns == []
        with Client(server.endpoint, timeout_s=10) as other:
            assert other.ping()


DEEP = {"a": 1}
for _ in range(40):
    DEEP = {"a": DEEP}


@pytest.mark.parametrize("frames, code", [
    ([b"\x00\xffgarbage"], "bad_message"),
    ([msgpack.packb([1, 2, 3])], "bad_message"),
    ([msgpack.packb({"a": msgpack.ExtType(3, b"x")})], "bad_message"),
    ([msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": "m"}), b"second"],
     "bad_message"),
    ([msgpack.packb({"op": "ping", "request_id": "r9"})], "invalid_request"),
    ([msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "character.get", "request_id": "r9",
                     "character_id": 12})], "invalid_request"),
    ([msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "fly", "request_id": "r9"})], "unknown_op"),
    ([msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": "r9",
                     **{f"pad{i}": "x" * 60_000 for i in range(20)}})], "too_large"),
    ([msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": "r9", "s": "x" * 70_000})],
     "too_large"),
    ([msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": "r9", "deep": DEEP})],
     "too_deep"),
    ([msgpack.packb({"protocol_version": "2.0", "op": "hello", "request_id": "r9"})], "unsupported_version"),
])
def test_bad_input_gets_an_error_reply(raw, client, frames, code):
    raw.send(*frames)
    (reply,) = raw.replies(1)
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    if code in ("invalid_request", "unknown_op", "too_deep", "unsupported_version") and b"r9" in frames[0]:
        assert reply["request_id"] == "r9"
    if code == "unsupported_version":
        assert PROTOCOL_VERSION in reply["error"]["message"] and "2.0" in reply["error"]["message"]
    assert client.ping()


def test_minor_mismatch_warns_and_major_mismatch_refuses(raw):
    major, minor = PROTOCOL_VERSION.split(".")
    raw.send(msgpack.packb({"protocol_version": f"{major}.{int(minor) + 1}", "op": "hello", "request_id": "h"}))
    (reply,) = raw.replies(1)
    assert reply["ok"] and "minor" in reply["result"]["warnings"][0]
    raw.send(msgpack.packb({"protocol_version": f"{int(major) + 1}.0", "op": "ping", "request_id": "p"}))
    (reply,) = raw.replies(1)
    assert reply["request_id"] == "p" and reply["error"]["code"] == "unsupported_version"
    with pytest.raises(VersionMismatchError):  # what the typed client raises for that reply
        client_module._result("ping", reply)


def test_oversized_past_the_hard_cap_drops_only_that_connection(raw, client, server):
    raw.send(b"\x00" * (server.limits.hard_message_bytes + 10))
    assert raw.recv(timeout_s=1.0) is None
    assert client.ping()


def test_duplicate_ids_and_backpressure(backend):
    limits = Limits(max_outstanding_per_client=3)
    with running(make_server(backend, max_steps=300, limits=limits)) as server:
        raw = Raw(server.endpoint)
        for n in range(6):
            raw.request("say", f"s{n}", character_id="brom", speaker_id="player", text="Hi", stream=False,
                        template="shopkeeper_reply")
        raw.request("say", "s0", character_id="brom", speaker_id="player", text="Hi", template="shopkeeper_reply")
        early = raw.replies(4, timeout_s=5)
        codes = sorted(r["error"]["code"] for r in early if not r["ok"])
        assert codes == ["busy", "busy", "busy", "duplicate_request"], early
        assert all(r["error"]["details"]["limit"] == "max_outstanding_per_client" for r in early
                   if r["error"]["code"] == "busy")
        for n in range(3):
            raw.request("cancel", f"c{n}", target_request_id=f"s{n}")
        rest = raw.replies(6, timeout_s=30)
        finished = {r["request_id"]: r for r in rest if r["op"] == "say"}
        assert {finished[f"s{n}"]["result"]["finish_reason"] for n in range(3)} == {"cancelled"}
        raw.close()
        with pytest.raises(BusyError):  # what the typed client raises for a busy reply
            client_module._result("say", early[0] if early[0]["error"]["code"] == "busy" else early[-1])
        with Client(server.endpoint) as client:
            assert client.ping()


def test_async_client(server):
    async def talk() -> tuple:
        async with AsyncClient(server.endpoint, timeout_s=30) as client:
            hello = await client.hello()
            character = await client.get_character("brom")
            items = [item async for item in client.say_stream("brom", "player", "Async hello?",
                                                               template="shopkeeper_reply", seed=2)]
            plain = await client.say("brom", "player", "Again?", template="shopkeeper_reply", seed=3)
            return hello, character, items, plain

    hello, character, items, plain = asyncio.run(talk())
    assert hello.protocol_version == PROTOCOL_VERSION and character.name == "Brom"
    assert items[-1].finish_reason == "complete" and len(items) >= 2
    assert plain.finish_reason == "complete"


def test_client_timeout_cancels_on_the_server(backend):
    with running(make_server(backend, max_steps=3000)) as server, Client(server.endpoint, timeout_s=0.5) as client:
        with pytest.raises(ClientTimeoutError):
            client.say("brom", "player", "Long one.", template="shopkeeper_reply")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.engine.stats().num_active:
            time.sleep(0.05)
        assert server.engine.stats().num_finished.get("cancelled") == 1


def test_non_loopback_needs_curve_or_insecure(backend):
    with pytest.raises(ConfigError, match="--curve-keys"):
        make_server(backend, bind="tcp://0.0.0.0:0")
    server = make_server(backend, bind="tcp://0.0.0.0:0", is_insecure=True)
    assert server.bind == "tcp://0.0.0.0:0"


def test_curve_admits_only_known_clients(backend, tmp_path):
    keys = write_curve_keys(tmp_path / "keys")
    stranger = write_curve_keys(tmp_path / "stranger")  # valid keys the server does not know
    (stranger / "server.key").write_bytes((keys / "server.key").read_bytes())
    with running(make_server(backend, curve_keys=keys)) as server:
        with Client(server.endpoint, timeout_s=10, curve_keys=keys) as allowed:
            assert "curve" in allowed.hello().capabilities
        with Client(server.endpoint, timeout_s=1.0) as plain:
            with pytest.raises(ClientTimeoutError):
                plain.ping()
        with Client(server.endpoint, timeout_s=1.0, curve_keys=stranger) as unknown:
            with pytest.raises(ClientTimeoutError):
                unknown.ping()
        with Client(server.endpoint, timeout_s=10, curve_keys=keys) as allowed:
            assert allowed.ping()


def test_a_client_that_stops_reading_does_not_stall_the_others(server):
    slow = Raw(server.endpoint)
    slow.socket.setsockopt(zmq.RCVHWM, 1)
    hello = msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "hello", "request_id": "h"})
    try:
        for _ in range(10_000):  # ~7 MB of replies it never reads
            slow.send(hello)
        with Client(server.endpoint, timeout_s=10) as other:
            started = time.monotonic()
            for _ in range(50):
                assert other.ping()
            assert time.monotonic() - started < 10
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(c.backlog for c in server.clients.all()) \
                and not server.counters["num_dropped_clients"]:
            time.sleep(0.05)
        assert any(c.backlog for c in server.clients.all()) or server.counters["num_dropped_clients"]
    finally:
        slow.close()


def test_client_reconnects_to_a_restarted_server(backend):
    from .test_serve_cli import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Client(endpoint, timeout_s=20) as client:
        with running(make_server(backend, bind=endpoint)):
            assert client.ping()
        with running(make_server(backend, bind=endpoint)):  # a new server process would look the same
            assert client.ping()  # ZeroMQ reconnected underneath, same client object
            client.reconnect()    # or start over explicitly, with a fresh identity
            assert client.hello().protocol_version == PROTOCOL_VERSION


def test_reconnect_fails_requests_in_flight(backend):
    from npc_engine import ClientClosedError

    with running(make_server(backend, max_steps=2000)) as server, Client(server.endpoint, timeout_s=20) as client:
        request_id, future = client.connection.submit("say", {
            "character_id": "brom", "speaker_id": "player", "text": "Long.", "template": "shopkeeper_reply"})
        client.reconnect()
        with pytest.raises(ClientClosedError):
            future.result(5)
        assert client.ping()

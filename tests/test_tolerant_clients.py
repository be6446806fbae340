"""A client against a newer minor server (1.4), which may add fields and event kinds: the
protocol's promise is that a minor version only adds, so the client must read what it knows and
ignore the rest. And one request's bad event fails that request only."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from npc_engine import ProtocolError
from npc_engine.client import AsyncClient, Client
from npc_engine.protocol import encode
from npc_engine.server import Server

from .server_helpers import make_server, running

# Maps whose keys are data (slot names, flag names, people), not fields: a newer server adds no
# keys there (an added "flag" would be a flag), but the objects inside may grow.
_DATA_MAPS = {"fields", "flags", "relationships", "details", "limits", "engine", "server", "step_cost_ms"}
ADDED = {"added_in_1_1": {"note": "a field this client has never heard of", "count": 3}}


def grow(value, key: str | None = None):
    """`value` as a newer server could send it: every object one field larger, at every depth."""
    if isinstance(value, dict):
        grown = {k: grow(v, k) for k, v in value.items()}
        return grown if key in _DATA_MAPS else {**grown, **ADDED}
    if isinstance(value, list):
        return [grow(item) for item in value]
    return value


class NewerServer(Server):
    """The real server, speaking "1.4": extra fields everywhere, and a new event kind before each draft."""

    def _send(self, identity, payload, *, finishes=None, draft_of=None):
        message = msgpack.unpackb(payload, raw=False)
        if message.get("type") == "event" and message.get("event") == "draft":
            thought = {"type": "event", "event": "thought", "request_id": message["request_id"],
                       "protocol_version": "1.4", "thought": {"text": "hmm", "weight": 0.5}}
            super()._send(identity, encode(thought))
        message = grow(message)
        message["protocol_version"] = "1.4"
        if message.get("type") == "reply" and message.get("op") == "hello" and message.get("ok"):
            message["result"]["protocol_version"] = "1.4"
        super()._send(identity, encode(message), finishes=finishes, draft_of=draft_of)


class BrokenDraftServer(Server):
    """Sends each say's first draft with a body that is not a draft at all."""

    def _send(self, identity, payload, *, finishes=None, draft_of=None):
        message = msgpack.unpackb(payload, raw=False)
        if message.get("type") == "event" and message.get("event") == "draft":
            message["draft"] = "not a draft"
            payload = encode(message)
        super()._send(identity, payload, finishes=finishes, draft_of=draft_of)


def test_the_shim_really_adds_fields_a_strict_reader_rejects():
    from npc_engine.protocol import RESULTS
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="added_in_1_1"):
        RESULTS["ping"].model_validate(grow({"server_time_ms": 1}))


def newer(backend, cls=NewerServer):
    plain = make_server(backend)
    return cls(plain.engine, plain.store, bind="tcp://127.0.0.1:0")


def test_a_1_0_client_reads_a_1_1_server(backend):
    with running(newer(backend)) as server, Client(server.endpoint, timeout_s=60) as client:
        hello = client.hello()
        assert hello.protocol_version == "1.4" and hello.model.num_parameters > 0
        character = client.upsert_character({"id": "mira", "name": "Mira", "persona": "A herbalist.",
                                             "flags": {"met": True}})
        assert character.name == "Mira" and character.flags == {"met": True}
        assert client.get_character("brom").name == "Brom"
        assert [s.id for s in client.list_speakers()] == ["player"]
        reply = client.say("brom", "player", "Any work?", template="shopkeeper_reply", seed=1)
        assert reply.finish_reason in ("complete", "deadline") and reply.fields and reply.changes
        assert "added_in_1_1" not in reply.fields  # data maps are left as they are
        stream = client.say_stream("brom", "player", "And pay?", template="shopkeeper_reply", seed=2)
        drafts = list(stream)
        assert drafts and all(d.num_steps >= 1 for d in drafts)  # the "thought" events were skipped
        assert stream.result().fields
        assert client.stats().engine["num_steps"] > 0
        assert client.ping().server_time_ms > 0


def test_an_async_1_0_client_reads_a_1_1_server(backend):
    async def talk(endpoint):
        async with AsyncClient(endpoint, timeout_s=60) as client:
            assert (await client.hello()).protocol_version == "1.4"
            assert (await client.get_character("brom")).name == "Brom"
            items = [item async for item in client.say_stream("brom", "player", "Hi", template="shopkeeper_reply",
                                                              seed=3)]
            await client.reconnect()  # a real method now, not an attribute looked up by name
            assert (await client.ping()).server_time_ms > 0
            return items

    with running(newer(backend)) as server:
        items = asyncio.run(talk(server.endpoint))
    assert len(items) >= 2 and items[-1].fields and all(hasattr(i, "num_steps") for i in items)


def test_a_bad_event_fails_only_its_request(backend):
    with running(newer(backend, BrokenDraftServer)) as server, Client(server.endpoint, timeout_s=60) as client:
        stream = client.say_stream("brom", "player", "Hi", template="shopkeeper_reply", seed=4)
        with pytest.raises(ProtocolError, match="could not be read") as caught:
            list(stream)
            stream.result()
        assert caught.value.request_id == stream.request_id
        # The client's IO thread lives on: later calls are answered.
        assert client.ping().server_time_ms > 0
        assert client.say("brom", "player", "Still there?", template="shopkeeper_reply", seed=5).fields

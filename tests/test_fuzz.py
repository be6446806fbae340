"""Fuzz a live server: thousands of random and mutated frames. No crash, one reply per frame, and a
normal client is served correctly afterwards."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npc_engine.client import Client
from npc_engine.protocol import OPS, PROTOCOL_VERSION

from .conftest import SHOPKEEPER_TEMPLATE
from .server_helpers import Raw, make_server, running

VALID = [
    {"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": "p"},
    {"protocol_version": PROTOCOL_VERSION, "op": "hello", "request_id": "h", "client_name": "fuzz"},
    {"protocol_version": PROTOCOL_VERSION, "op": "character.get", "request_id": "g", "character_id": "brom"},
    {"protocol_version": PROTOCOL_VERSION, "op": "world.set", "request_id": "w", "key": "k", "text": "t"},
    {"protocol_version": PROTOCOL_VERSION, "op": "say", "request_id": "s", "character_id": "brom",
     "speaker_id": "player", "text": "hi", "template": "shopkeeper_reply", "seed": 1},
    {"protocol_version": PROTOCOL_VERSION, "op": "cancel", "request_id": "c", "target_request_id": "s"},
    {"protocol_version": PROTOCOL_VERSION, "op": "snapshot.list", "request_id": "l"},
]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=20))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=12)


@st.composite
def frames(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "value", "mutated_bytes", "mutated_fields"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "value":
        return msgpack.packb(draw(values), use_bin_type=True)
    base = dict(draw(st.sampled_from(VALID)))
    if kind == "mutated_fields":
        for _ in range(draw(st.integers(1, 3))):
            action = draw(st.sampled_from(["drop", "set", "op"]))
            if action == "drop" and base:
                base.pop(draw(st.sampled_from(sorted(base))))
            elif action == "op":
                base["op"] = draw(st.sampled_from(sorted(OPS) + ["", "x" * 200]))
            else:
                base[draw(st.sampled_from(sorted(base) + ["extra"]))] = draw(values)
        return msgpack.packb(base, use_bin_type=True)
    data = bytearray(msgpack.packb(base))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_server(backend):
    with running(make_server(backend, max_steps=2)) as server:
        yield server


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(batch=st.lists(frames(), min_size=5, max_size=12))
def test_every_frame_gets_exactly_one_reply(fuzz_server, batch):
    raw = Raw(fuzz_server.endpoint)
    try:
        for frame in batch:
            raw.send(frame)
        replies = raw.replies(len(batch), timeout_s=30)
        assert len(replies) == len(batch)
        assert all(isinstance(r.get("ok"), bool) for r in replies)
        assert all(r["ok"] or r["error"]["code"] != "internal" for r in replies), replies
        extra = raw.replies(1, timeout_s=0.05)  # no second reply to any frame
        assert extra == [], extra
    finally:
        raw.close()


def test_served_normally_after_fuzzing(fuzz_server):
    with Client(fuzz_server.endpoint, timeout_s=30) as client:
        assert client.hello().protocol_version == PROTOCOL_VERSION
        # The fuzzer may legitimately have deleted or changed state (a mutated op can be a valid
        # character.delete or speaker.delete); a normal client sets up what it needs.
        client.upsert_speaker("player", "Aria")
        client.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."})
        client.register_template(SHOPKEEPER_TEMPLATE)
        reply = client.say("brom", "player", "Still there?", template="shopkeeper_reply", seed=5)
        assert reply.finish_reason == "complete" and set(reply.fields) >= {"say", "emotion"}
    stats = fuzz_server.engine.stats()
    assert stats.num_active == 0

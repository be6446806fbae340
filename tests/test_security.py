"""The server refuses what a hostile web page or local program sends: cross-protocol POSTs,
endless multipart messages; a real client keeps being served (real sockets, real server)."""

from __future__ import annotations

import resource
import socket
import time

import pytest

from npc_engine.client import Client
from npc_engine.server.gate import MessageGate, Refused, _Reader

from .attack_helpers import RawZmtp3, send_cross_protocol_posts, zmtp10_post
from .server_helpers import make_server, running


@pytest.fixture(scope="module")
def server(backend):
    with running(make_server(backend)) as server:
        yield server


def test_a_web_pages_cross_protocol_posts_run_nothing(server):
    send_cross_protocol_posts(server.endpoint, "world.set", lambda i: {"key": f"web-{i}", "text": "pwned"})
    send_cross_protocol_posts(server.endpoint, "character.delete", lambda i: {"character_id": "brom"}, 4)
    time.sleep(0.5)
    assert [f.key for f in server.store.list_world_facts() if f.key.startswith("web-")] == []
    assert "brom" in server.store.list_characters()
    with Client(server.endpoint, timeout_s=20) as client:  # a real client, right after
        assert client.hello().protocol_version
        assert client.say("brom", "player", "Still open?", template="shopkeeper_reply").fields


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def test_a_client_streaming_more_frames_is_dropped_at_the_message_limit(server):
    limit = server.limits.hard_message_bytes
    frame = b"x" * (1 << 20)
    before = _rss_bytes()
    attacker = RawZmtp3(server.endpoint)
    num_sent = 0
    try:
        for _ in range(200):  # 200 MiB if nothing stopped it
            attacker.send_frame(frame, has_more=True)
            num_sent += 1
    except OSError:
        pass
    assert attacker.is_closed_by_peer()
    attacker.close()
    # What was sent before the close was noticed sits in socket buffers; nothing near 200 MiB.
    assert num_sent * len(frame) < limit + (64 << 20), num_sent
    assert _rss_bytes() - before < 64 << 20  # generous: buffers, not a growing message
    with Client(server.endpoint, timeout_s=20) as client:
        assert client.ping()


def test_a_message_just_under_the_limit_across_frames_passes_the_gate():
    reader = _Reader(max_message_bytes=10_000)
    greeting = b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 1]) + b"NULL".ljust(20, b"\0") + b"\0" * 32
    reader.feed(memoryview(greeting))
    frame = bytes([0x03]) + (4000).to_bytes(8, "big") + b"a" * 4000  # MORE, long
    reader.feed(memoryview(frame + frame))
    assert reader.message_bytes == 2 * (4000 + 64)
    reader.feed(memoryview(bytes([0x00, 3]) + b"end"))  # the last frame: the message is complete
    assert reader.message_bytes == 0
    reader.feed(memoryview(frame + frame))  # a new message starts from zero
    with pytest.raises(Refused, match="across its frames"):
        reader.feed(memoryview(frame))


@pytest.mark.parametrize("opening, why", [
    (b"POST / HTTP/1.1\r\n", "not a ZMTP 3 greeting"),
    (b"\x01\x00", "not a ZMTP 3 greeting"),                          # ZMTP 1.0: a length byte
    (b"\xff" + b"\0" * 8 + b"\x7f\x01", "major version 1"),          # ZMTP 2.0
    (b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" + b"PLAIN".ljust(20, b"\0") + b"\0" * 32, "mechanism"),
])
def test_the_gate_refuses_anything_but_a_zmtp3_null_greeting(opening, why):
    with pytest.raises(Refused, match=why):
        _Reader(max_message_bytes=1 << 20).feed(memoryview(opening))


def test_the_gate_closes_connections_over_its_limits():
    gate = MessageGate("127.0.0.1", 0, "tcp://127.0.0.1:9", max_message_bytes=1 << 20, max_connections=0).start()
    try:
        host, port = gate.endpoint.removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            connection.settimeout(5)
            assert connection.recv(10) == b""  # accepted, then closed: no room
        assert gate.num_refused == 1
    finally:
        gate.stop()


def test_zmtp10_post_is_what_the_attack_needs():
    """The helper's bytes really are an HTTP POST (so the tests above are the real attack)."""
    post = zmtp10_post("127.0.0.1", 5555, {"op": "ping"})
    head, _, body = post.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api HTTP/1.1") and b"text/plain" in head
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(body)


def test_the_security_sections_state_every_limit_with_the_codes_value():
    """PROTOCOL.md section 9 and studio.md "Security" carry the values the code enforces."""
    import inspect
    from pathlib import Path

    from npc_engine.bounds import MAX_PRIORITY, MAX_TEMPLATES, MAX_WORLD_FACTS, MIN_PRIORITY
    from npc_engine.characters.model import MAX_MEMORIES
    from npc_engine.dialogue.events import _SWEEP_AT
    from npc_engine.protocol import Limits
    from npc_engine.server.observe import DEFAULT_CAPACITY, DEFAULT_MAX_BYTES
    from npc_engine.studio.guard import MAX_BODY_BYTES
    from npc_engine.templates import TemplateCompiler
    from npc_engine.templates.spec import MAX_INTEGER_RANGE

    root = Path(__file__).resolve().parent.parent
    protocol = (root / "schemas" / "PROTOCOL.md").read_text().split("## 9. Security")[1]
    gate = inspect.signature(MessageGate).parameters
    compiler = inspect.signature(TemplateCompiler).parameters
    expected = [
        f"{Limits().hard_message_bytes >> 20} MiB **across its frames**",
        f"over {gate['max_pending_bytes'].default >> 20} MiB",
        f"at most {gate['max_connections'].default} open",
        f"{MIN_PRIORITY:g}..{MAX_PRIORITY:g}",
        f"| world facts | {MAX_WORLD_FACTS:,}",
        f"| memories per character | {MAX_MEMORIES:,}",
        f"| templates | {MAX_TEMPLATES} registered",
        f"{MAX_INTEGER_RANGE:,} options",
        f"{DEFAULT_CAPACITY:,} events and {DEFAULT_MAX_BYTES >> 20} MiB",
        f"{compiler['max_cached_plans'].default} plans and {compiler['max_cached_bytes'].default >> 20} MiB",
        f"more than {_SWEEP_AT:,} are held",
    ]
    assert [text for text in expected if text not in protocol] == []
    studio = (root / "docs" / "studio.md").read_text().split("## Security")[1]
    assert f"over {MAX_BODY_BYTES >> 10} KiB" in studio
    deployment = (root / "docs" / "deployment.md").read_text()
    assert "## Security" in deployment and "Never ship a server secret key" in deployment


def test_secret_key_files_are_for_their_owner_only(tmp_path, caplog):
    import os
    import stat

    from npc_engine.server import write_curve_keys
    from npc_engine.server.security import _load_server_keys

    keys = write_curve_keys(tmp_path / "keys")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in keys.iterdir() if path.is_file()}
    assert modes == {"server.key_secret": 0o600, "client.key_secret": 0o600, "server.key": 0o644,
                     "client.key": 0o644}
    assert [p.name for p in keys.iterdir() if p.name.startswith(".keys-")] == []  # no staging folder left
    _load_server_keys(keys)
    assert "readable by other users" not in caplog.text
    os.chmod(keys / "server.key_secret", 0o644)  # keys made by an older version, or copied carelessly
    _load_server_keys(keys)
    assert "readable by other users" in caplog.text


def test_the_gate_bounds_unfinished_messages_across_connections(tmp_path):
    """Each connection under its own limit, but together over the gate's: the one that crosses it
    is closed, the first keeps its connection."""
    import zmq

    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(f"ipc://{tmp_path}/router")
    gate = MessageGate("127.0.0.1", 0, f"ipc://{tmp_path}/router", max_message_bytes=3 << 20,
                       max_pending_bytes=4 << 20).start()
    first, second = RawZmtp3(gate.endpoint), RawZmtp3(gate.endpoint)
    try:
        for _ in range(2):  # 2 MiB unfinished on the first connection
            first.send_frame(b"x" * (1 << 20), has_more=True)
        time.sleep(0.5)
        try:
            for _ in range(2):  # 2 MiB more on the second (under its own 3 MiB): 4 MiB and frames, over 4 MiB
                second.send_frame(b"y" * (1 << 20), has_more=True)
        except OSError:
            pass
        assert second.is_closed_by_peer()
        assert not first.is_closed_by_peer(timeout_s=0.5)  # still open: nothing came back, no EOF
        assert gate.num_refused == 1
    finally:
        first.close()
        second.close()
        gate.stop()
        router.close(0)
        context.term()

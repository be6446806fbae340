"""Helpers for the server tests: a real server on loopback with the tiny model, raw DEALER sockets."""

from __future__ import annotations

import time
from contextlib import contextmanager

import msgpack
import zmq

from npc_engine import Engine, Store
from npc_engine.diffusion import DiffusionSettings
from npc_engine.protocol import PROTOCOL_VERSION, Limits
from npc_engine.server import Server

from .conftest import SHOPKEEPER_TEMPLATE


def make_server(backend, *, max_steps: int = 4, limits: Limits | None = None, **options) -> Server:
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    engine = Engine(backend, settings.with_overrides(max_denoising_steps=max_steps))
    engine.register_template(SHOPKEEPER_TEMPLATE)
    store = Store(":memory:")
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."})
    return Server(engine, store, bind=options.pop("bind", "tcp://127.0.0.1:0"), limits=limits, **options)


@contextmanager
def running(server: Server):
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.engine.close()


class Raw:
    """A bare DEALER socket: sends any frames, reads whatever comes back."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.socket.send_multipart(list(frames))

    def request(self, op: str, request_id: str = "r1", **fields) -> None:
        message = {"protocol_version": PROTOCOL_VERSION, "op": op, "request_id": request_id, **fields}
        self.send(msgpack.packb(message))

    def recv(self, timeout_s: float = 10.0) -> dict | None:
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        return msgpack.unpackb(self.socket.recv(), raw=False)

    def replies(self, count: int, timeout_s: float = 20.0) -> list[dict]:
        """The next `count` replies (events are skipped)."""
        found, deadline = [], time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            if message is not None and message.get("type") == "reply":
                found.append(message)
        return found

    def close(self) -> None:
        self.socket.close(0)

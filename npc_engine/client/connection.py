"""The client's connection: a DEALER socket owned by one background IO thread.

Callers from any thread queue requests and get a `Future` back; the IO thread sends them, reads
continuously (so ZMTP heartbeats are answered while the game does other work), and resolves
futures by request id. Draft events go to the request's event callback.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import zmq
import zmq.auth

from ..errors import ClientClosedError, ConfigError, NpcEngineError, ProtocolError
from ..protocol import PROTOCOL_VERSION, Limits, decode, encode
from ..protocol.wake import WakePipe

__all__ = ["Connection", "Pending"]

log = logging.getLogger("npc_engine.client")

# What the client accepts from the server: generous, but still bounded.
_RECONNECT = object()  # an outbox marker: switch to a new socket here
_CLIENT_LIMITS = Limits(max_message_bytes=64 << 20, hard_message_bytes=64 << 20, max_depth=64,
                        max_string_bytes=16 << 20, max_array_length=1_000_000, max_map_length=100_000)


@dataclass
class Pending:
    op: str
    future: Future
    on_event: Callable[[dict[str, Any]], None] | None = None


class Connection:
    def __init__(self, endpoint: str, *, curve_keys: str | Path | None = None) -> None:
        self.endpoint = endpoint
        self._curve = _load_curve(Path(curve_keys)) if curve_keys else None
        self._context = zmq.Context()
        _check_endpoint(self._context, endpoint)
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()  # payload bytes, _RECONNECT, None (close)
        self._wake_pipe = WakePipe()
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)
        self._is_closed = False
        self._thread = threading.Thread(target=self._io_loop, name="npc-client-io", daemon=True)
        self._thread.start()

    def next_request_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def submit(self, op: str, fields: dict[str, Any], *, request_id: str | None = None,
               on_event: Callable[[dict[str, Any]], None] | None = None) -> tuple[str, Future]:
        """Queue a request; its Future resolves with the reply map (ok or not)."""
        request_id = request_id or self.next_request_id()
        message = {"protocol_version": PROTOCOL_VERSION, "op": op, "request_id": request_id, **fields}
        payload = encode(message)
        future: Future = Future()
        with self._lock:
            if self._is_closed:
                raise ClientClosedError("the client is closed")
            self._pending[request_id] = Pending(op, future, on_event)
        self._outbox.put(payload)
        self._wake()
        return request_id, future

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def reconnect(self) -> None:
        """Drop the socket and open a new one (a new identity); requests in flight fail."""
        self._fail_pending(ClientClosedError("the connection was reset by reconnect()"))
        self._outbox.put(_RECONNECT)  # in order: requests queued after this use the new socket
        self._wake()

    def close(self) -> None:
        with self._lock:
            if self._is_closed:
                return
            self._is_closed = True
        self._outbox.put(None)
        self._wake()
        self._thread.join(timeout=5)
        self._fail_pending(ClientClosedError("the client was closed"))
        self._wake_pipe.close()
        self._context.term()

    # -- the IO thread -------------------------------------------------------------------------

    def _make_socket(self) -> zmq.Socket:
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.ROUTING_ID, b"npc-" + secrets.token_bytes(12))
        socket.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        if self._curve is not None:
            socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = self._curve
        socket.connect(self.endpoint)
        return socket

    def _io_loop(self) -> None:
        socket = self._make_socket()
        poller = self._poller(socket)
        unsent: list[bytes] = []
        try:
            while True:
                events = dict(poller.poll(10 if unsent else None))
                if self._wake_pipe.read_fd in events:
                    self._wake_pipe.drain()
                while True:
                    try:
                        payload = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    if payload is None:
                        return
                    if payload is _RECONNECT:
                        socket.close(0)
                        socket, unsent, events = self._make_socket(), [], {}
                        poller = self._poller(socket)
                        continue
                    unsent.append(payload)
                while unsent:
                    try:
                        socket.send(unsent[0], zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    unsent.pop(0)
                if socket in events:
                    while True:
                        try:
                            frame = socket.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._dispatch(frame)
        finally:
            socket.close(0)

    def _poller(self, socket: zmq.Socket) -> zmq.Poller:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_pipe.read_fd, zmq.POLLIN)
        return poller

    def _dispatch(self, frame: bytes) -> None:
        try:
            message = decode(frame, _CLIENT_LIMITS)
        except ProtocolError:
            return  # not from a conforming server; nothing to resolve
        request_id = message.get("request_id")
        with self._lock:
            pending = self._pending.get(request_id) if isinstance(request_id, str) else None
            if pending is not None and message.get("type") == "reply":
                del self._pending[request_id]
        if pending is None:
            return
        if message.get("type") == "event":
            if pending.on_event is not None:
                try:
                    pending.on_event(message)
                except Exception as exc:  # fails this request only; the IO thread serves the rest
                    self._fail_request(request_id, pending, exc)
        elif message.get("type") == "reply" and not pending.future.done():
            pending.future.set_result(message)

    def _fail_request(self, request_id: str, pending: Pending, exc: Exception) -> None:
        """An event of `request_id` could not be handled: its caller gets the error (a
        ProtocolError unless it already is one of ours), and the server stops the work."""
        log.warning("an event of request %s could not be handled: %s", request_id, exc)
        with self._lock:
            self._pending.pop(request_id, None)
        if not isinstance(exc, NpcEngineError):
            error = ProtocolError(f"an event of request {request_id} could not be read: {exc}", code="bad_message",
                                  request_id=request_id)
            error.__cause__ = exc
            exc = error
        if not pending.future.done():
            pending.future.set_exception(exc)
        try:  # events come only for says: cancel it on the server
            self.submit("cancel", {"target_request_id": request_id})
        except ClientClosedError:
            pass

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(error)

    def _wake(self) -> None:
        self._wake_pipe.wake()


def _check_endpoint(context: zmq.Context, endpoint: str) -> None:
    """ConfigError now for an endpoint ZeroMQ cannot connect to ("tcp://host:port", "ipc://path"),
    rather than an IO thread that dies on it later. Connecting needs no server yet."""
    probe = context.socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    try:
        probe.connect(endpoint)
    except (zmq.ZMQError, TypeError) as exc:
        probe.close(0)
        context.term()
        raise ConfigError(f"cannot connect to endpoint {endpoint!r}: {exc} (expected e.g. tcp://127.0.0.1:5555)") \
            from None
    probe.close(0)


def _load_curve(keys_dir: Path) -> tuple[bytes, bytes, bytes]:
    """(server public, client public, client secret) from a folder made by `npc-engine curve-keys`."""
    try:
        server_public, _ = zmq.auth.load_certificate(keys_dir / "server.key")
        client_public, client_secret = zmq.auth.load_certificate(keys_dir / "client.key_secret")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CURVE keys from {keys_dir}: {exc}") from exc
    if client_secret is None:
        raise ConfigError(f"{keys_dir / 'client.key_secret'} holds no secret key")
    return server_public, client_public, client_secret

"""`MessageGate`: the TCP front of a NULL-mechanism server, bounding whole messages.

libzmq bounds each frame (`MAXMSGSIZE`), never a message: a peer that sends frames with MORE set
and never a last one makes the ROUTER buffer all of them (about 100 MB per 100 1 MiB frames,
measured), and nothing reaches the application until the last frame, so the server cannot see it
coming. The gate listens on the public TCP endpoint, relays bytes to the ROUTER bound on a private
endpoint (an `ipc://` path in a 0700 folder where the platform has it), and reads the ZMTP 3 framing
of what clients send: a connection whose message would exceed `max_message_bytes` across its
frames, that does not open with a ZMTP 3 greeting, or that pushes the gate's total of unfinished
messages past `max_pending_bytes`, is closed. What flows back to clients is copied untouched.

CURVE servers do not use the gate (the flags are inside the encryption there; only holders of an
allowed key connect).
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field

import zmq

from ..errors import BindError

__all__ = ["MessageGate", "private_endpoint", "remove_private_folder", "FRAME_OVERHEAD_BYTES"]

log = logging.getLogger("npc_engine.server")

FRAME_OVERHEAD_BYTES = 64  # what libzmq holds per frame besides its bytes (a msg_t): empty frames cost too
_GREETING_BYTES = 64
_CHUNK_BYTES = 64 << 10
_MAX_BUFFERED_BYTES = 256 << 10  # per direction per connection, before the gate stops reading that side
_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04


class Refused(Exception):
    """A client's bytes break the gate's rules; its connection is closed."""


@dataclass
class _Reader:
    """Incremental ZMTP 3 reader of one client's stream: checks the greeting, sums each message."""

    max_message_bytes: int
    offset: int = 0                    # bytes consumed in the greeting, then unused
    header: bytearray = field(default_factory=bytearray)
    body_left: int = 0
    flags: int = 0
    message_bytes: int = 0             # the unfinished message so far (bytes + per-frame overhead)

    def feed(self, data: memoryview) -> None:
        """Consume `data`, or raise Refused."""
        position = 0
        while position < len(data):
            if self.offset < _GREETING_BYTES:
                position = self._greeting(data, position)
            elif self.body_left:
                step = min(self.body_left, len(data) - position)
                self.body_left -= step
                position += step
                if not self.body_left:
                    self._frame_done()
            else:
                position = self._header(data, position)

    def _greeting(self, data: memoryview, position: int) -> int:
        while position < len(data) and self.offset < _GREETING_BYTES:
            byte = data[position]
            if self.offset == 0 and byte != 0xFF:
                raise Refused("not a ZMTP 3 greeting (an old-protocol peer, or another protocol such as HTTP)")
            if self.offset == 9 and byte != 0x7F:
                raise Refused("not a ZMTP 3 greeting (bad signature)")
            if self.offset == 10 and byte < 3:
                raise Refused(f"ZMTP major version {byte}; this server speaks 3")
            if 12 <= self.offset < 32:  # the mechanism's name
                self.header.append(byte)
            self.offset += 1
            position += 1
        if self.offset == _GREETING_BYTES:
            mechanism = bytes(self.header).rstrip(b"\0")
            self.header.clear()
            if mechanism != b"NULL":
                raise Refused(f"mechanism {mechanism!r}; this server takes NULL here")
        return position

    def _header(self, data: memoryview, position: int) -> int:
        self.header.append(data[position])
        position += 1
        flags = self.header[0]
        size_length = 8 if flags & _LONG else 1
        if len(self.header) < 1 + size_length:
            return position
        size = int.from_bytes(self.header[1:], "big")
        self.header.clear()
        self.flags = flags
        if flags & _COMMAND:
            if size > self.max_message_bytes:
                raise Refused(f"a {size}-byte command frame")
        else:
            self.message_bytes += size + FRAME_OVERHEAD_BYTES
            if self.message_bytes > self.max_message_bytes:
                raise Refused(f"a message of over {self.max_message_bytes} bytes across its frames")
        self.body_left = size
        if not size:
            self._frame_done()
        return position

    def _frame_done(self) -> None:
        if not self.flags & _COMMAND and not self.flags & _MORE:
            self.message_bytes = 0  # the message is complete: libzmq hands it to the server


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    inner: socket.socket
    reader: _Reader
    to_inner: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    is_closing: bool = False           # one side ended: flush what is buffered, then close both
    is_closed: bool = False


def private_endpoint() -> tuple[str, str | None]:
    """Where the ROUTER binds behind a gate, and the folder to remove afterwards (None for TCP)."""
    if zmq.has("ipc") and os.name != "nt":
        folder = tempfile.mkdtemp(prefix="npc-engine-")  # 0700: only this user can connect
        return f"ipc://{folder}/router", folder
    return "tcp://127.0.0.1:*", None  # no ipc: loopback, still behind ZAP


class MessageGate:
    """Listen on `host:port`, relay each connection to the ROUTER at `inner` (ipc:// or tcp://)."""

    def __init__(self, host: str, port: int, inner: str, *, max_message_bytes: int,
                 max_pending_bytes: int = 64 << 20, max_connections: int = 128) -> None:
        self.inner = inner
        self.max_message_bytes = max_message_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_connections = max_connections
        self.num_refused = 0
        self._pending_bytes = 0
        self._pairs: dict[socket.socket, _Pair] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._is_stopping = False
        self._thread: threading.Thread | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        if os.name != "nt":  # as libzmq does: a restarted server can take its port back at once
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
            self._listener.listen(128)
        except OSError as exc:
            self._listener.close()
            self._wake_read.close()
            self._wake_write.close()
            raise BindError(f"cannot bind tcp://{host}:{port}: {exc}", endpoint=f"tcp://{host}:{port}") from exc
        self._listener.setblocking(False)
        bound_host, bound_port = self._listener.getsockname()[:2]
        self.endpoint = f"tcp://[{bound_host}]:{bound_port}" if family == socket.AF_INET6 else \
            f"tcp://{bound_host}:{bound_port}"

    def start(self) -> "MessageGate":
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name="npc-server-gate", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._is_stopping = True
        try:
            self._wake_write.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join()
        for pair in list(self._pairs.values()):
            self._close(pair)
        self._selector.close()
        for closable in (self._listener, self._wake_read, self._wake_write):
            closable.close()

    # -- the gate's thread -------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._is_stopping:
            for key, events in self._selector.select(timeout=1.0):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj is not self._wake_read:
                    pair = self._pairs.get(key.fileobj)  # type: ignore[arg-type]
                    if pair is not None:
                        try:
                            self._on_ready(pair, key.fileobj, events)  # type: ignore[arg-type]
                        except (BlockingIOError, InterruptedError):  # a spurious wake-up: try again later
                            self._arm(pair)
                        except Refused as exc:
                            self.num_refused += 1
                            log.info("closing a client connection: %s", exc)
                            self._close(pair)
                        except OSError:
                            self._close(pair)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if len(self._pairs) // 2 >= self.max_connections:
            self.num_refused += 1
            log.info("refusing a connection: %d are open (the limit)", self.max_connections)
            client.close()
            return
        scheme, _, address = self.inner.partition("://")
        try:
            if scheme == "ipc":
                inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                inner.connect(address)
            else:
                host, port = address.rsplit(":", 1)
                inner = socket.create_connection((host.strip("[]"), int(port)))
        except OSError as exc:
            log.warning("the gate cannot reach the server's socket: %s", exc)
            client.close()
            return
        for end in (client, inner):
            end.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme != "ipc":
            inner.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, inner, _Reader(self.max_message_bytes))
        self._pairs[client] = self._pairs[inner] = pair
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(inner, selectors.EVENT_READ)

    def _on_ready(self, pair: _Pair, end: socket.socket, events: int) -> None:
        is_client = end is pair.client
        outgoing = pair.to_client if is_client else pair.to_inner
        if events & selectors.EVENT_WRITE and outgoing:
            sent = end.send(outgoing)
            del outgoing[:sent]
        if events & selectors.EVENT_READ:
            data = end.recv(_CHUNK_BYTES)
            if not data:
                pair.is_closing = True
            elif is_client:
                before = pair.reader.message_bytes
                try:
                    pair.reader.feed(memoryview(data))
                finally:  # counted even when refused: _close takes the connection's share back off
                    self._pending_bytes += pair.reader.message_bytes - before
                if self._pending_bytes > self.max_pending_bytes:
                    raise Refused(f"unfinished messages hold over {self.max_pending_bytes} bytes in all")
                pair.to_inner += data
            else:
                pair.to_client += data
        if pair.is_closing and not pair.to_inner and not pair.to_client:
            self._close(pair)
            return
        self._arm(pair)

    def _arm(self, pair: _Pair) -> None:
        """Each end: write while something waits for it; read while the other end's buffer has room."""
        registered = self._selector.get_map()
        for end, outgoing, incoming in ((pair.client, pair.to_client, pair.to_inner),
                                        (pair.inner, pair.to_inner, pair.to_client)):
            events = selectors.EVENT_WRITE if outgoing else 0
            if not pair.is_closing and len(incoming) < _MAX_BUFFERED_BYTES:
                events |= selectors.EVENT_READ
            is_registered = end in registered
            if events and is_registered:
                self._selector.modify(end, events)
            elif events:
                self._selector.register(end, events)
            elif is_registered:
                self._selector.unregister(end)

    def _close(self, pair: _Pair) -> None:
        if pair.is_closed:
            return
        pair.is_closed = True
        self._pending_bytes -= pair.reader.message_bytes
        pair.reader.message_bytes = 0
        for end in (pair.client, pair.inner):
            self._pairs.pop(end, None)
            if end in self._selector.get_map():
                self._selector.unregister(end)
            end.close()


def remove_private_folder(folder: str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)

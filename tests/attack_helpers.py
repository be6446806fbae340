"""What a hostile web page or a hostile local program sends to a server: built here once, used by
the security tests against `serve`, a cluster gateway and the studio."""

from __future__ import annotations

import socket
import time

import msgpack

from npc_engine.protocol import PROTOCOL_VERSION


def zmtp10_post(host: str, port: int, message: dict, *, header_pad: int = 0) -> bytes:
    """An HTTP POST with a `text/plain` body (what a page's fetch() sends without a preflight) whose
    bytes also parse as ZMTP 1.0 frames: the request line is taken as the peer's identity frame,
    the headers as frames of whatever length each byte says, a run of 0x02 absorbs wherever they
    end (every phase of it is a 3-byte frame), `01 03 02 00 00` re-aligns, then one frame holds
    `message` in msgpack."""
    frame = msgpack.packb(message)
    if len(frame) + 1 >= 0xFF:
        raise ValueError("the message must fit a ZMTP 1.0 short frame")
    body = b"\x02" * 256 + b"\x01\x03\x02\x00\x00" + bytes([len(frame) + 1, 0]) + frame
    headers = (f"POST /api HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://evil.example\r\n"
               f"Content-Type: text/plain;charset=UTF-8\r\nX-Pad: {'a' * header_pad}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode()
    return headers + body


def send_cross_protocol_posts(endpoint: str, op: str, fields_of, num_posts: int = 24) -> None:
    """Send `num_posts` such POSTs (each with a different header length) to a tcp:// endpoint;
    `fields_of(i)` gives the i-th request's fields."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    for i in range(num_posts):
        message = {"protocol_version": PROTOCOL_VERSION, "op": op, "request_id": f"web-{i}", **fields_of(i)}
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as connection:
            try:
                connection.sendall(zmtp10_post(host, int(port), message, header_pad=i))
                time.sleep(0.05)  # as a browser would, keep the connection while the request is read
            except OSError:  # refused mid-send: what a guarded server does
                pass


class RawZmtp3:
    """A hand-rolled ZMTP 3.0 NULL DEALER over a plain TCP socket: sends frames libzmq's own
    clients never would (MORE set forever)."""

    def __init__(self, endpoint: str) -> None:
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        self.socket = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        greeting = b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" * 32
        self.socket.sendall(greeting)
        ready = b"\x05READY" + b"\x0bSocket-Type" + (6).to_bytes(4, "big") + b"DEALER"
        self.socket.sendall(bytes([0x04, len(ready)]) + ready)

    def send_frame(self, body: bytes, *, has_more: bool) -> None:
        flags = (0x01 if has_more else 0) | (0x02 if len(body) > 255 else 0)
        size = len(body).to_bytes(8 if len(body) > 255 else 1, "big")
        self.socket.sendall(bytes([flags]) + size + body)

    def is_closed_by_peer(self, timeout_s: float = 10.0) -> bool:
        """True once the server closed the connection (EOF or reset), after draining its bytes."""
        self.socket.settimeout(timeout_s)
        try:
            while self.socket.recv(65536):
                pass
            return True
        except ConnectionError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.socket.close()

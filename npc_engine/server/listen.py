"""`Listener`: the server's ROUTER socket, bound behind everything that guards it.

ZAP always (libzmq then refuses old-protocol peers), CURVE when given keys, and for a NULL server
on TCP a `MessageGate` in front (whole-message bounds) with the ROUTER bound privately behind it.
The IO thread owns and closes the socket; `close()` takes down the guards.
"""

from __future__ import annotations

from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ..errors import BindError
from ..protocol import Limits
from .gate import MessageGate, private_endpoint, remove_private_folder
from .security import enable_zap, tcp_host_port

__all__ = ["Listener"]


class Listener:
    def __init__(self, context: zmq.Context, bind: str, limits: Limits, *, curve_keys: Path | None,
                 is_zap_enabled: bool, is_gated: bool = True) -> None:
        self.context = context
        self.bind = bind
        self.limits = limits
        self.curve_keys = curve_keys
        self.is_zap_enabled = is_zap_enabled
        self.is_gated = is_gated
        self.endpoint: str | None = None
        self.gate: MessageGate | None = None
        self._authenticator: ThreadAuthenticator | None = None
        self._private_folder: str | None = None

    def open(self) -> zmq.Socket:
        """The bound ROUTER socket (BindError, ConfigError); `endpoint` says where clients connect."""
        socket = self.context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished peer fails instead of vanishing
        socket.setsockopt(zmq.ROUTER_HANDOVER, 1)   # a client reconnecting with its id takes over
        socket.setsockopt(zmq.MAXMSGSIZE, self.limits.hard_message_bytes)  # per frame; the gate bounds messages
        socket.setsockopt(zmq.LINGER, 500)
        socket.setsockopt(zmq.HEARTBEAT_IVL, 1000)      # ZMTP PINGs find dead peers ...
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)  # ... and close their connection
        try:
            if self.is_zap_enabled:
                self._authenticator = enable_zap(socket, self.context, self.curve_keys)
            self.endpoint = self._bind(socket)
        except BaseException:
            socket.close(0)
            self.close()
            raise
        return socket

    def _bind(self, socket: zmq.Socket) -> str:
        gate_address = _gate_address(self.bind) if self.curve_keys is None and self.is_gated else None
        target = self.bind
        if gate_address is not None:
            target, self._private_folder = private_endpoint()
        try:
            socket.bind(target)
        except zmq.ZMQError as exc:
            raise BindError(f"cannot bind {self.bind}: {exc}", endpoint=self.bind) from exc
        if gate_address is None:
            return socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.gate = MessageGate(*gate_address, socket.getsockopt_string(zmq.LAST_ENDPOINT),
                                max_message_bytes=self.limits.hard_message_bytes).start()
        return self.gate.endpoint

    def close(self) -> None:
        """Stop the gate and the authenticator, remove the private folder (the socket is the IO thread's)."""
        if self.gate is not None:
            self.gate.stop()
            self.gate = None
        remove_private_folder(self._private_folder)
        self._private_folder = None
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None


def _gate_address(endpoint: str) -> tuple[str, int] | None:
    """(host, port) a gate listens on for a tcp:// bind; None for ipc:// and inproc://."""
    address = tcp_host_port(endpoint)
    if address is None:
        return None
    host, port = address
    host = {"*": "0.0.0.0", "localhost": "127.0.0.1"}.get(host, host)
    if port == "*":
        return host, 0
    try:
        return host, int(port)
    except ValueError:
        raise BindError(f"cannot bind {endpoint}: the port must be a number or *", endpoint=endpoint) from None

"""Per-client bookkeeping for the server: outstanding requests and messages waiting to be sent.

Shared by the IO thread, the worker threads and the engine's threads, behind one lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outstanding", "Client", "ClientTable"]


@dataclass
class Outstanding:
    request_id: str
    op: str
    say_handle: Any = None            # SayHandle once a say is queued in the engine
    is_cancel_requested: bool = False


@dataclass
class Client:
    identity: bytes
    outstanding: dict[str, Outstanding] = field(default_factory=dict)
    backlog: deque = field(default_factory=deque)  # (payload, draft_request_id | None) not yet sent
    last_sent_s: float = field(default_factory=time.monotonic)
    is_gone: bool = False


class ClientTable:
    def __init__(self, *, max_outstanding_per_client: int, max_backlog_per_client: int = 2048) -> None:
        self.max_outstanding_per_client = max_outstanding_per_client
        self.max_backlog_per_client = max_backlog_per_client
        self.lock = threading.Lock()
        self._clients: dict[bytes, Client] = {}

    def get(self, identity: bytes) -> Client:
        with self.lock:
            client = self._clients.get(identity)
            if client is None:
                client = self._clients[identity] = Client(identity)
            return client

    def all(self) -> list[Client]:
        with self.lock:
            return list(self._clients.values())

    def num_outstanding(self) -> int:
        with self.lock:
            return self.num_outstanding_locked()

    def num_outstanding_locked(self) -> int:
        return sum(len(c.outstanding) for c in self._clients.values())

    def forget_if_idle(self, client: Client) -> None:
        with self.lock:
            if not client.outstanding and not client.backlog:
                self._clients.pop(client.identity, None)

    def forget(self, client: Client) -> None:
        with self.lock:
            if self._clients.get(client.identity) is client:
                del self._clients[client.identity]

    def finish(self, identity: bytes, request_id: str | None) -> None:
        with self.lock:
            client = self._clients.get(identity)
            if client is not None and request_id is not None:
                client.outstanding.pop(request_id, None)

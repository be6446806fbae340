"""`FairPool`: the server's worker threads, shared fairly between clients.

Jobs queue per client, and workers take them round-robin across the clients that have some, so
one client's burst of slow ops (snapshots, imports) delays another client's say by at most one job
per busy worker, never by the whole burst. A client also never holds more than
`max_running_per_client` workers at once: with several workers, one always stays free for others.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Hashable

__all__ = ["FairPool"]

log = logging.getLogger("npc_engine.server")


class FairPool:
    def __init__(self, num_workers: int, *, max_running_per_client: int | None = None,
                 name: str = "npc-server-worker") -> None:
        self.max_running_per_client = max_running_per_client or max(1, num_workers - 1)
        self._condition = threading.Condition()
        self._jobs: dict[Hashable, deque[tuple[Callable[..., Any], tuple[Any, ...]]]] = {}
        self._running: dict[Hashable, int] = {}
        self._turns: deque[Hashable] = deque()  # clients whose next job may start, in turn order
        self._is_stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(num_workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, client: Hashable, function: Callable[..., Any], *args: Any) -> None:
        """Queue `function(*args)` for `client`; exceptions are the function's to handle."""
        with self._condition:
            jobs = self._jobs.get(client)
            if jobs is None:
                jobs = self._jobs[client] = deque()
            jobs.append((function, args))
            self._offer_turn(client)

    def shutdown(self) -> None:
        """Run what is queued, then stop the workers."""
        with self._condition:
            self._is_stopping = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _offer_turn(self, client: Hashable) -> None:
        """Give `client` a turn if it has work, may run more, and is not waiting for one. Locked."""
        if self._jobs.get(client) and client not in self._turns \
                and self._running.get(client, 0) < self.max_running_per_client:
            self._turns.append(client)
            self._condition.notify()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._turns and not (self._is_stopping and not self._jobs):
                    self._condition.wait()
                if not self._turns:
                    return  # stopping, nothing queued
                client = self._turns.popleft()
                jobs = self._jobs[client]
                function, args = jobs.popleft()
                if not jobs:
                    del self._jobs[client]
                self._running[client] = self._running.get(client, 0) + 1
                self._offer_turn(client)  # to the back of the line
            try:
                function(*args)
            except Exception:  # the server's jobs reply their own errors; a bug here must not kill a worker
                log.exception("a worker job failed")
            finally:
                with self._condition:
                    self._running[client] -= 1
                    if not self._running[client]:
                        del self._running[client]
                    self._offer_turn(client)
                    if self._is_stopping:
                        self._condition.notify_all()

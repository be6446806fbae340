"""What `Engine.submit` returns: a thread-safe view of one request's progress and result."""

from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import Callable, Iterator

from ..errors import EngineStateError
from .request import Draft, FillResult

__all__ = ["RequestHandle"]

_DONE = object()


class RequestHandle:
    """Follow one request from any thread: drafts as they come, then the result.

    `result(timeout)` blocks only the thread that calls it; a game's main thread polls `done()`
    or uses callbacks instead.
    """

    def __init__(self, request_id: str, cancel: Callable[[str], None], *, is_streaming: bool) -> None:
        self.request_id = request_id
        self.future: Future[FillResult] = Future()
        self.latest_draft: Draft | None = None
        self._cancel = cancel
        self._drafts: queue.SimpleQueue | None = queue.SimpleQueue() if is_streaming else None

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> FillResult:
        """The final result (its `finish_reason` says complete, deadline, cancelled or error)."""
        return self.future.result(timeout)

    def cancel(self) -> None:
        self._cancel(self.request_id)

    def drafts(self, timeout: float | None = None) -> Iterator[Draft]:
        """Each draft as it is produced, ending when the request finishes (needs `stream=True`)."""
        if self._drafts is None:
            raise EngineStateError("drafts() needs the request to be submitted with stream=True",
                                   request_id=self.request_id)
        while True:
            item = self._drafts.get(timeout=timeout)
            if item is _DONE:
                return
            yield item

    # -- called by the engine thread -------------------------------------------------------

    def _on_draft(self, draft: Draft) -> None:
        self.latest_draft = draft
        if self._drafts is not None:
            self._drafts.put(draft)

    def _on_result(self, result: FillResult) -> None:
        if self._drafts is not None:
            self._drafts.put(_DONE)
        self.future.set_result(result)

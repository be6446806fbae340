"""Game events, a turn a game may fire every frame: per character, one reply at a time and a
minimum interval between replies.

- While a character is answering an event, another event for it (with the same template) does
  not start a second generation: it is **coalesced**, answered with that same reply
  (`SayResult.coalesced` true, no drafts of its own); its text is not recorded, since the reply
  did not hear it.
- Within `min_interval_ms` of the start of a character's last event reply (once that reply is
  done), or while one with another template is running, an event is refused with
  `RateLimitedError` (wire code `rate_limited`, `details.retry_after_ms`); nothing changes.

Says (player lines) are never coalesced or rate limited here; the engine's queue bounds them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError, RateLimitedError

if TYPE_CHECKING:
    from .service import SayHandle, SayResult

__all__ = ["DEFAULT_MIN_EVENT_INTERVAL_MS", "CoalescedEvent", "EventGate"]

DEFAULT_MIN_EVENT_INTERVAL_MS = 1000.0
_SWEEP_AT = 1024  # characters with a slot before idle ones are forgotten


class CoalescedEvent:
    """An event answered by the reply already running for its character (a `SayTicket`)."""

    def __init__(self, shared: "SayHandle", request_id: str, template_name: str) -> None:
        self.shared = shared
        self.request_id = request_id or f"{shared.request_id}.coalesced"
        self.character_id = shared.character_id
        self.speaker_id = shared.speaker_id
        self.template_name = template_name
        self.future: Future[SayResult] = Future()
        self._lock = threading.Lock()  # resolving and cancelling race on different threads
        shared.future.add_done_callback(self._resolve)

    def _resolve(self, shared: Future) -> None:
        error = shared.exception()
        with self._lock:
            if self.future.done():  # cancelled meanwhile
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(dataclasses.replace(shared.result(), request_id=self.request_id,
                                                           coalesced=True))

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> "SayResult":
        return self.future.result(timeout)

    def cancel(self) -> None:
        """Stop waiting for the shared reply (which goes on for the event that started it): this
        event resolves at once as cancelled. Never raises: it has no generation of its own."""
        from .service import SayResult

        with self._lock:
            if not self.future.done():
                self.future.set_result(dataclasses.replace(
                    SayResult.cancelled(self.request_id, self.character_id, self.speaker_id, self.template_name),
                    coalesced=True))


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # one event admission at a time per character
        self.running: SayHandle | None = None
        self.template_name = ""
        self.started_s = float("-inf")
        self.num_users = 0  # admissions holding this slot (under EventGate._lock)


class EventGate:
    """Admits events per character: start a reply, join the running one, or refuse."""

    def __init__(self, min_interval_ms: float = DEFAULT_MIN_EVENT_INTERVAL_MS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(min_interval_ms, bool) or not isinstance(min_interval_ms, (int, float)) or min_interval_ms < 0:
            raise ConfigError(f"min_event_interval_ms must be a number >= 0, got {min_interval_ms!r}")
        self.min_interval_ms = float(min_interval_ms)
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def admit(self, character_id: str, template_name: str, request_id: str,
              start: Callable[[], "SayHandle"]) -> "SayHandle | CoalescedEvent":
        """`start()` a reply for this event, or join the one running, or raise RateLimitedError."""
        with self._lock:
            if character_id not in self._slots and len(self._slots) >= _SWEEP_AT:
                self._sweep()
            slot = self._slots.setdefault(character_id, _Slot())
            slot.num_users += 1
        try:
            return self._admit(slot, character_id, template_name, request_id, start)
        finally:
            with self._lock:
                slot.num_users -= 1
                if slot.running is None and not slot.num_users:  # refused before anything started
                    self._slots.pop(character_id, None)           # (an unknown character): keep nothing

    @property
    def num_slots(self) -> int:
        return len(self._slots)

    def _sweep(self) -> None:
        """Forget characters with no event running and none within the interval: their slot says
        nothing a fresh one would not (deleted characters go this way too). Under `_lock`."""
        now = self._clock()
        for character_id, slot in list(self._slots.items()):
            is_idle = slot.running is None or slot.running.done()
            if is_idle and not slot.num_users and (now - slot.started_s) * 1000.0 >= self.min_interval_ms:
                del self._slots[character_id]

    def _admit(self, slot: "_Slot", character_id: str, template_name: str, request_id: str,
               start: Callable[[], "SayHandle"]) -> "SayHandle | CoalescedEvent":
        with slot.lock:
            running = slot.running
            if running is not None and not running.done():
                if slot.template_name == template_name:
                    return CoalescedEvent(running, request_id, template_name)
                raise RateLimitedError(
                    f"{character_id!r} is answering an event with template {slot.template_name!r}; "
                    f"retry once it is done", retry_after_ms=self.min_interval_ms, character_id=character_id)
            since_ms = (self._clock() - slot.started_s) * 1000.0
            if since_ms < self.min_interval_ms:
                wait_ms = round(self.min_interval_ms - since_ms, 1)
                raise RateLimitedError(
                    f"{character_id!r} answered an event {since_ms:.0f} ms ago; events for one character are "
                    f"at least {self.min_interval_ms:.0f} ms apart (retry in {wait_ms} ms)",
                    retry_after_ms=wait_ms, character_id=character_id)
            handle = start()  # raises what preparing raised: nothing recorded then
            slot.running, slot.template_name, slot.started_s = handle, template_name, self._clock()
            return handle

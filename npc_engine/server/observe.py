"""`ObserveHub`: the server's activity as a bounded ring of numbered events (the `observe` op).

Producers (worker threads, the engine's thread, the state writer) append under a short lock;
observers read by sequence number. The ring never grows past `capacity` events nor `max_bytes`
(their JSON size: a say's reply carries its whole prompt): the oldest events make room for the
newest, so a slow observer loses old events and nothing waits for it.
Nothing is recorded while nobody has polled for `OBSERVED_FOR_S` (the say path stays as it
was without an observer).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from ..characters.prompt import BuiltPrompt
from ..errors import ConfigError
from ..engine import Draft
from ..protocol import observe as o

__all__ = ["ObserveHub", "DEFAULT_CAPACITY", "DEFAULT_MAX_BYTES", "OBSERVED_FOR_S"]

DEFAULT_CAPACITY = 4096
DEFAULT_MAX_BYTES = 16 << 20
OBSERVED_FOR_S = 5.0       # a poll keeps the server observed (and debug tracing on) this long
FRAMES_EVERY_S = 0.25      # cadence of `frames` events while observed
_MAX_FRAMES_PER_EVENT = 120


class ObserveHub:
    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        for name, value in (("capacity", capacity), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"the observe {name} must be a positive integer, got {value!r}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._events: deque[o.ObserveEvent] = deque()
        self._sizes: deque[int] = deque()  # each event's JSON bytes, beside it
        self.num_bytes = 0
        self._next_seq = 1
        self._observed_until_s = 0.0
        self._debug_until_s = 0.0
        self._num_frames_seen: int | None = None
        self._next_frames_s = 0.0

    # -- who is watching -------------------------------------------------------------------

    @property
    def is_observed(self) -> bool:
        return time.monotonic() < self._observed_until_s

    @property
    def is_debug(self) -> bool:
        return time.monotonic() < self._debug_until_s

    # -- producers (any thread) ---------------------------------------------------------------

    def publish(self, kind: str, say_id: str | None = None, **body: Any) -> None:
        event = o.ObserveEvent(seq=0, time_ms=int(time.time() * 1000), kind=kind, say_id=say_id, **body)
        num_bytes = len(event.model_dump_json())
        with self._lock:
            event.seq = self._next_seq
            self._next_seq += 1
            self._events.append(event)
            self._sizes.append(num_bytes)
            self.num_bytes += num_bytes
            while len(self._events) > 1 and (len(self._events) > self.capacity or self.num_bytes > self.max_bytes):
                self._events.popleft()
                self.num_bytes -= self._sizes.popleft()

    def say_started(self, say_id: str, start: o.SayStart) -> None:
        self.publish("say.start", say_id, start=start)

    def say_draft(self, say_id: str, draft: Draft) -> None:
        canvas = [o.CanvasStep(step=t.step, tokens=list(t.tokens), states=t.states) for t in draft.trace]
        self.publish("say.draft", say_id, draft=o.ObservedDraft(num_steps=draft.num_steps, fields=draft.fields,
                                                                canvas=canvas))

    def say_replied(self, say_id: str, reply: dict[str, Any], prompt: BuiltPrompt | None) -> None:
        """`reply`: the say's wire result map (less its ids); `prompt`: what went into it."""
        summary = None
        if prompt is not None:
            summary = o.PromptSummary(
                num_tokens=prompt.num_tokens, num_turns_dropped=prompt.num_turns_dropped,
                num_facts_dropped=prompt.num_facts_dropped,
                lines=[o.PromptLine(section=i.section, text=i.text, score=i.score, is_kept=i.is_kept)
                       for i in prompt.items])
        fields = {k: reply[k] for k in o.ObservedReply.model_fields if k in reply}
        self.publish("say.reply", say_id, reply=o.ObservedReply(**fields, prompt=summary))

    def say_failed(self, say_id: str, code: str, message: str) -> None:
        self.publish("say.error", say_id, error=o.ObservedError(code=code, message=message))

    def maybe_frames(self, engine_stats: dict[str, Any]) -> None:
        """Publish the frames run since the last call (at most every FRAMES_EVERY_S, while
        observed). `engine_stats`: the wire's `stats.engine` map."""
        now = time.monotonic()
        if now < self._next_frames_s or not self.is_observed:
            return
        self._next_frames_s = now + FRAMES_EVERY_S
        num_frames = int(engine_stats.get("num_frames", 0))
        recent = list(engine_stats.get("recent_frame_device_ms", []))
        seen, self._num_frames_seen = self._num_frames_seen, num_frames
        num_new = min(num_frames - seen, len(recent), _MAX_FRAMES_PER_EVENT) if seen is not None else 0
        if num_new <= 0:
            return
        self.publish("frames", frames=o.FrameStats(
            frame_device_ms=[round(ms, 3) for ms in recent[-num_new:]],
            frame_budget_ms=engine_stats.get("frame_budget_ms"),
            frame_device_ms_p50=engine_stats.get("frame_device_ms_p50", 0.0),
            frame_device_ms_p99=engine_stats.get("frame_device_ms_p99", 0.0),
            num_waiting=engine_stats.get("num_waiting", 0), num_active=engine_stats.get("num_active", 0)))

    # -- observers ----------------------------------------------------------------------------

    def read(self, since: int, max_events: int, *, debug: bool = False) -> o.ObserveResult:
        """Events numbered `since` and later, oldest first (a `since` past the newest, as after a
        server restart, reads from now on). Marks the server observed (and tracing, with `debug`)."""
        now = time.monotonic()
        with self._lock:
            self._observed_until_s = now + OBSERVED_FOR_S
            if debug:
                self._debug_until_s = now + OBSERVED_FOR_S
            since = min(since, self._next_seq)
            oldest = self._events[0].seq if self._events else self._next_seq
            num_dropped = max(0, oldest - max(since, 1))
            start = max(since, oldest) - oldest  # index of the first event to return
            events = [self._events[i] for i in range(start, min(start + max_events, len(self._events)))]
            next_seq = events[-1].seq + 1 if events else max(since, oldest)
        return o.ObserveResult(events=events, next_seq=next_seq, num_dropped=num_dropped, capacity=self.capacity)

"""The game's side of the engine, as a frame loop needs it: calls that return at once, and a
queue of what happened, drained once per frame. Each say runs the blocking Python client on a
worker thread; the frame loop only ever does non-blocking queue operations."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

from npc_engine.client import Client
from npc_engine.errors import NpcEngineError


@dataclass
class EngineEvent:
    kind: str  # "ready", "draft", "line", "error"
    npc_id: str = ""
    data: Any = None


class EngineBridge:
    def __init__(self, endpoint: str, characters: list[dict], player: dict, template: str) -> None:
        self.client = Client(endpoint, timeout_s=120)
        self.template = template
        self.player_id = player["id"]
        self._events: queue.SimpleQueue[EngineEvent] = queue.SimpleQueue()
        self._in_flight: set[str] = set()
        threading.Thread(target=self._setup, args=(characters, player), daemon=True).start()

    def _setup(self, characters: list[dict], player: dict) -> None:
        try:
            hello = self.client.hello(client_name="pygame-prototype")
            self.client.upsert_speaker(player["id"], player["name"])
            for character in characters:
                self.client.upsert_character(character)
            self._events.put(EngineEvent("ready", data=hello))
        except NpcEngineError as exc:
            self._events.put(EngineEvent("error", data=str(exc)))

    def is_busy(self, npc_id: str) -> bool:
        return npc_id in self._in_flight

    def say(self, npc_id: str, text: str) -> None:
        """Starts a say and returns at once; drafts and the line arrive through `poll()`."""
        self._in_flight.add(npc_id)
        threading.Thread(target=self._say, args=(npc_id, text), daemon=True).start()

    def _say(self, npc_id: str, text: str) -> None:
        try:
            stream = self.client.say_stream(npc_id, self.player_id, text, template=self.template)
            for draft in stream:
                self._events.put(EngineEvent("draft", npc_id, draft.fields))
            self._events.put(EngineEvent("line", npc_id, stream.result()))
        except NpcEngineError as exc:
            self._events.put(EngineEvent("error", npc_id, str(exc)))

    def poll(self) -> list[EngineEvent]:
        """Everything that arrived since the last frame (never blocks)."""
        events = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return events
            if event.kind in ("line", "error"):
                self._in_flight.discard(event.npc_id)
            events.append(event)

    def close(self) -> None:
        self.client.close()

"""What each op does: plain calls into the store and the engine, returning the op's result model.

`say` and `cancel` are not here: they live with the server's per-client bookkeeping.
These run on worker threads (SQLite may wait on a lock), never on the socket's IO thread.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from pydantic import BaseModel

from .. import __version__
from ..dialogue.seams import EngineSeam
from ..protocol import OPS, PROTOCOL_VERSION, Limits
from ..protocol import messages as m
from ..protocol.chunks import from_chunks, to_chunks

__all__ = ["Handlers", "CAPABILITIES"]

CAPABILITIES = ["drafts", "cancel", "snapshots", "state", "keepalive", "frame_budget", "events", "observe",
                "patterns", "state_epochs"]


class Handlers:
    def __init__(self, engine: EngineSeam, store: Any, limits: Limits, *, curve_enabled: bool) -> None:
        self.engine = engine
        self.store = store
        self.limits = limits
        self.model = engine.model_info()
        self.capabilities = CAPABILITIES + (["curve"] if curve_enabled else [])
        self.table: dict[str, Callable[[Any], BaseModel]] = {
            "ping": lambda r: m.PingResult(server_time_ms=int(time.time() * 1000)),
            "character.upsert": lambda r: m.CharacterResult(character=self.store.upsert_character(r.character)),
            "character.get": lambda r: m.CharacterResult(character=self.store.get_character(r.character_id)),
            "character.list": lambda r: m.CharacterListResult(character_ids=self.store.list_characters()),
            "character.delete": self._delete_character,
            "speaker.upsert": lambda r: m.SpeakerResult(speaker=self.store.upsert_speaker(r.speaker)),
            "speaker.list": lambda r: m.SpeakerListResult(speakers=self.store.list_speakers()),
            "speaker.delete": lambda r: m.DeletedResult(is_deleted=self.store.delete_speaker(r.speaker_id)),
            "world.set": lambda r: m.WorldFactResult(fact=self.store.set_world_fact(r.key, r.text, r.salience)),
            "world.get": self._world_get,
            "world.delete": lambda r: m.DeletedResult(is_deleted=self.store.delete_world_fact(r.key)),
            "template.register": lambda r: m.TemplateRegisterResult(
                name=self.engine.register_template(r.template).name),
            "template.check": lambda r: m.TemplateCheckResult(**self.engine.check_template(r.template)),
            "template.list": lambda r: m.TemplateListResult(
                templates=[t.model_dump(mode="json") for _, t in sorted(self.engine.templates.items())]),
            "snapshot.save": lambda r: m.SnapshotResult(
                snapshot=self.store.snapshots.save(r.name, character_id=r.character_id)),
            "snapshot.load": lambda r: m.SnapshotResult(snapshot=self.store.snapshots.load(r.name)),
            "snapshot.list": lambda r: m.SnapshotListResult(snapshots=self.store.snapshots.list()),
            "snapshot.delete": self._delete_snapshot,
            "snapshot.export": self._export_snapshot,
            "snapshot.import": lambda r: m.SnapshotResult(
                snapshot=self.store.snapshots.import_bytes(from_chunks(r.chunks), name=r.name)),
        }

    def hello(self, request: m.HelloRequest, warning: str | None) -> m.HelloResult:
        config = self.engine.config
        return m.HelloResult(
            server_version=__version__, protocol_version=PROTOCOL_VERSION, capabilities=self.capabilities,
            ops=sorted(OPS), model=self.model, frame_budget_ms=config.frame_budget_ms,
            target_fps=config.target_fps, limits=self.limits.as_dict(), warnings=[warning] if warning else [])

    def stats(self, server: dict[str, Any]) -> m.StatsResult:
        return m.StatsResult(engine=self.engine.stats_dict(), server=server)

    def _delete_character(self, request: m.CharacterDeleteRequest) -> m.EmptyResult:
        self.store.delete_character(request.character_id)
        return m.EmptyResult()

    def _export_snapshot(self, request: m.SnapshotExportRequest) -> m.SnapshotExportResult:
        info, blob = self.store.snapshots.export_bytes(request.name)
        return m.SnapshotExportResult(snapshot=info, chunks=to_chunks(blob))

    def _delete_snapshot(self, request: m.SnapshotDeleteRequest) -> m.EmptyResult:
        self.store.snapshots.delete(request.name)
        return m.EmptyResult()

    def _world_get(self, request: m.WorldGetRequest) -> m.WorldFactsResult:
        if request.key is None:
            return m.WorldFactsResult(facts=self.store.list_world_facts())
        fact = self.store.get_world_fact(request.key)
        return m.WorldFactsResult(facts=[] if fact is None else [fact])

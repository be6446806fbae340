"""The `result` map of each op's ok reply (schemas/protocol/result.<op>.json is generated from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..characters.model import Character, SnapshotInfo, Speaker, StateChange, WorldFact
from ..model_info import ModelInfo
from .base import Version
from .base import Wire as _Wire

ModelSummary = ModelInfo  # the name this type had here before it became the one model type


class HelloResult(_Wire):
    server: Literal["npc-engine"] = "npc-engine"
    server_version: str
    protocol_version: Version
    capabilities: list[str]
    ops: list[str]
    model: ModelInfo
    frame_budget_ms: float | None
    target_fps: float
    limits: dict[str, int]
    warnings: list[str]


class PingResult(_Wire):
    server_time_ms: int


class CharacterResult(_Wire):
    character: Character


class CharacterListResult(_Wire):
    character_ids: list[str]


class EmptyResult(_Wire):
    pass


class DeletedResult(_Wire):
    is_deleted: bool


class SpeakerResult(_Wire):
    speaker: Speaker


class SpeakerListResult(_Wire):
    speakers: list[Speaker]


class WorldFactResult(_Wire):
    fact: WorldFact


class WorldFactsResult(_Wire):
    facts: list[WorldFact]


class TemplateRegisterResult(_Wire):
    name: str


class TemplateListResult(_Wire):
    templates: list[dict[str, Any]]


class TemplateSlot(_Wire):
    name: str
    kind: str
    num_tokens: int = Field(description="canvas positions the slot takes")


class TemplateCheckResult(_Wire):
    name: str
    canvas_length: int
    num_blocks: int = Field(default=1, description="canvases the template spans (one after another)")
    num_skeleton_tokens: int
    num_slot_tokens: int
    slots: list[TemplateSlot]


class SayResult(_Wire):
    character_id: str
    speaker_id: str | None = Field(description="null only for an event nobody caused")
    finish_reason: Literal["complete", "deadline", "cancelled", "error"]
    fields: dict[str, Any] | None = Field(description="the template's fields; null when cancelled")
    changes: list[StateChange]
    seed: int
    num_steps: int
    elapsed_ms: float
    num_prompt_tokens: int
    num_cached_prompt_tokens: int
    coalesced: bool = Field(default=False, description="since 1.1: an event answered by the reply to an "
                                                       "earlier event of the same character")


class CancelResult(_Wire):
    target_request_id: str


class SnapshotResult(_Wire):
    snapshot: SnapshotInfo


class SnapshotListResult(_Wire):
    snapshots: list[SnapshotInfo]


class SnapshotExportResult(_Wire):
    snapshot: SnapshotInfo
    chunks: list[str] = Field(description="base64 of consecutive slices of the snapshot's bytes (each "
                                          "slice 36 KiB but the last); join the decoded slices")


class StatsResult(_Wire):
    engine: dict[str, Any]
    server: dict[str, Any]

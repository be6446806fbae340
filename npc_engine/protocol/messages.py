"""Every wire message as a pydantic model. The JSON Schemas in schemas/protocol are generated
from these (`npc-engine schemas --write`), and a test fails when the two drift apart.

Client -> server: a request map with `protocol_version`, `op`, `request_id` and the op's fields.
Server -> client: `{"type": "reply", ...}` exactly once per request, `{"type": "event", ...}`
zero or more times before it (drafts of a `say`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, model_validator

from ..bounds import MAX_PRIORITY, MIN_PRIORITY
from ..templates.placeholders import MAX_VALUES

MAX_SAY_OPTION_SLOTS = 16   # choice slots a say may give options for
MAX_SAY_OPTIONS = 256       # options per slot
from ..characters.model import MAX_EVENT_CHARS, MAX_UTTERANCE_CHARS, Speaker
from ..errors import ProtocolError
from .base import Id, Identifier, OptionText, PlaceholderValue, RequestId, Version
from .base import Wire as _Wire
from .codes import ERROR_CODES
from .results import (  # the op table below pairs each request with its result; ModelSummary: hello's
    HelloResult,
    ModelSummary,
    PingResult,
    CharacterResult,
    CharacterListResult,
    EmptyResult,
    DeletedResult,
    SpeakerResult,
    SpeakerListResult,
    WorldFactResult,
    WorldFactsResult,
    TemplateRegisterResult,
    TemplateListResult,
    TemplateCheckResult,
    SayResult,
    CancelResult,
    SnapshotResult,
    SnapshotListResult,
    SnapshotExportResult,
    StatsResult,
)
from .observe import ObserveResult
from .version import PROTOCOL_VERSION, check_version

__all__ = ["OPS", "RESULTS", "Reply", "Event", "ErrorBody", "DraftBody", "ModelSummary", "parse_request",
           "ok_reply", "error_reply", "draft_event", "keepalive_event", "Request", "ServerMessage"]

_MAX_SEED = 2**63 - 1


class Request(_Wire):
    protocol_version: Version
    request_id: RequestId


class HelloRequest(Request):
    """Version check and capabilities; send first."""
    op: Literal["hello"]
    client_name: str = Field(default="", max_length=64)
    client_version: str = Field(default="", max_length=64)


class PingRequest(Request):
    op: Literal["ping"]


class CharacterUpsertRequest(Request):
    """Create a character or update the fields given (others keep their stored values)."""
    op: Literal["character.upsert"]
    character: dict[str, Any] = Field(description="a Character's fields; `id` is required")


class CharacterGetRequest(Request):
    op: Literal["character.get"]
    character_id: Id


class CharacterListRequest(Request):
    op: Literal["character.list"]


class CharacterDeleteRequest(Request):
    op: Literal["character.delete"]
    character_id: Id


class SpeakerUpsertRequest(Request):
    """Register someone who talks to characters without being one (the player)."""
    op: Literal["speaker.upsert"]
    speaker: Speaker


class SpeakerListRequest(Request):
    op: Literal["speaker.list"]


class SpeakerDeleteRequest(Request):
    op: Literal["speaker.delete"]
    speaker_id: Id


class WorldSetRequest(Request):
    op: Literal["world.set"]
    key: Id
    text: str = Field(max_length=500)
    salience: float = Field(default=0.5, ge=0.0, le=1.0)


class WorldGetRequest(Request):
    """One fact by key, or every fact when `key` is left out."""
    op: Literal["world.get"]
    key: Id | None = None


class WorldDeleteRequest(Request):
    op: Literal["world.delete"]
    key: Id


class TemplateRegisterRequest(Request):
    """Validate, compile and register a template (see schemas/templates); replaces one of the same name."""
    op: Literal["template.register"]
    template: dict[str, Any]


class TemplateListRequest(Request):
    op: Literal["template.list"]


class TemplateCheckRequest(Request):
    """Since 1.2: validate and compile a template without registering it (an editor's check)."""
    op: Literal["template.check"]
    template: dict[str, Any]


class SayRequest(Request):
    """`speaker_id` says `text` to `character_id`, or (since 1.1) the game event `event` happens to
    it, caused by `speaker_id` if given: draft events (when `stream`), then the reply."""
    op: Literal["say"]
    character_id: Id
    speaker_id: Id | None = Field(default=None, description="who speaks; for an event, who caused it (optional)")
    text: str | None = Field(default=None, max_length=MAX_UTTERANCE_CHARS * 4, description="the line said")
    event: str | None = Field(default=None, max_length=MAX_EVENT_CHARS * 4,
                              description="since 1.1, instead of text: what happened, e.g. \"Aria walks into the forge\"")
    template: str = Field(min_length=1, max_length=64, description="a registered template's name")
    seed: int | None = Field(default=None, ge=0, le=_MAX_SEED)
    priority: float = Field(default=0.0, ge=MIN_PRIORITY, le=MAX_PRIORITY, allow_inf_nan=False,
                            description="higher steps first; a request left out ages, so none starves")
    deadline_ms: float | None = Field(default=None, gt=0)
    stream: bool = Field(default=True, description="send draft events while denoising")
    values: dict[Identifier, PlaceholderValue] | None = Field(
        default=None, max_length=MAX_VALUES, description=(
            "since 1.3: values for the template's pattern placeholders ({player}, {item}, ...), over "
            "the ones the server reads from state"))
    options: dict[Identifier, Annotated[list[OptionText], Field(min_length=1, max_length=MAX_SAY_OPTIONS)]] | None = \
        Field(default=None, max_length=MAX_SAY_OPTION_SLOTS, description=(
            "since 1.3: this say's options for choice slots, by slot name (the items an NPC has now)"))

    @model_validator(mode="after")
    def _text_or_event(self) -> "SayRequest":
        if (self.text is None) == (self.event is None):
            raise ValueError("give exactly one of text (a line) and event (something that happened)")
        if self.text is not None and self.speaker_id is None:
            raise ValueError("speaker_id is required with text (only an event may have no speaker)")
        return self


class CancelRequest(Request):
    """Cancel this client's outstanding `say` `target_request_id`; its reply then says cancelled."""
    op: Literal["cancel"]
    target_request_id: RequestId


class SnapshotSaveRequest(Request):
    op: Literal["snapshot.save"]
    name: Id
    character_id: Id | None = Field(default=None, description="one character; the whole world when left out")


class SnapshotLoadRequest(Request):
    op: Literal["snapshot.load"]
    name: Id


class SnapshotListRequest(Request):
    op: Literal["snapshot.list"]


class SnapshotDeleteRequest(Request):
    op: Literal["snapshot.delete"]
    name: Id


class SnapshotExportRequest(Request):
    """Since 1.1: a slot's bytes, for the game's own save file."""
    op: Literal["snapshot.export"]
    name: Id


class SnapshotImportRequest(Request):
    """Since 1.1: store bytes from `snapshot.export` as a slot (then `snapshot.load` applies it)."""
    op: Literal["snapshot.import"]
    chunks: list[str] = Field(min_length=1, description="base64 of consecutive slices of the bytes "
                                                        "(see snapshot.export)")
    name: Id | None = Field(default=None, description="the slot to store it as; default the name it was saved under")


class StatsRequest(Request):
    op: Literal["stats"]


class ObserveRequest(Request):
    """Since 1.2: the server's activity from event `since` on (see protocol/observe.py). While
    someone observes, every say streams drafts to the observers; with `debug`, says that start
    within 5 s of such a poll also record each step's canvas."""
    op: Literal["observe"]
    since: int = Field(default=0, ge=0, description="the previous poll's next_seq; 0: all the server holds")
    max_events: int = Field(default=200, ge=1, le=1000)
    debug: bool = False


# op -> (request model, result model): one row per op, so an op cannot have one without the other.
_OP_MODELS: dict[str, tuple[type[Request], type[_Wire]]] = {
    "hello": (HelloRequest, HelloResult),
    "ping": (PingRequest, PingResult),
    "character.upsert": (CharacterUpsertRequest, CharacterResult),
    "character.get": (CharacterGetRequest, CharacterResult),
    "character.list": (CharacterListRequest, CharacterListResult),
    "character.delete": (CharacterDeleteRequest, EmptyResult),
    "speaker.upsert": (SpeakerUpsertRequest, SpeakerResult),
    "speaker.list": (SpeakerListRequest, SpeakerListResult),
    "speaker.delete": (SpeakerDeleteRequest, DeletedResult),
    "world.set": (WorldSetRequest, WorldFactResult),
    "world.get": (WorldGetRequest, WorldFactsResult),
    "world.delete": (WorldDeleteRequest, DeletedResult),
    "template.register": (TemplateRegisterRequest, TemplateRegisterResult),
    "template.list": (TemplateListRequest, TemplateListResult),
    "template.check": (TemplateCheckRequest, TemplateCheckResult),
    "say": (SayRequest, SayResult),
    "cancel": (CancelRequest, CancelResult),
    "snapshot.save": (SnapshotSaveRequest, SnapshotResult),
    "snapshot.load": (SnapshotLoadRequest, SnapshotResult),
    "snapshot.list": (SnapshotListRequest, SnapshotListResult),
    "snapshot.delete": (SnapshotDeleteRequest, EmptyResult),
    "snapshot.export": (SnapshotExportRequest, SnapshotExportResult),
    "snapshot.import": (SnapshotImportRequest, SnapshotResult),
    "stats": (StatsRequest, StatsResult),
    "observe": (ObserveRequest, ObserveResult),
}
OPS: dict[str, type[Request]] = {op: models[0] for op, models in _OP_MODELS.items()}
RESULTS: dict[str, type[_Wire]] = {op: models[1] for op, models in _OP_MODELS.items()}


# -- envelopes -------------------------------------------------------------------------------

class ErrorBody(_Wire):
    code: Literal[tuple(ERROR_CODES)]  # type: ignore[valid-type]
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class Reply(_Wire):
    """Exactly one per request. `request_id` is null only when the request's id could not be read."""
    type: Literal["reply"]
    protocol_version: Version
    request_id: str | None
    op: str | None
    ok: bool
    result: dict[str, Any] | None = Field(default=None, description="the op's result when ok")
    error: ErrorBody | None = Field(default=None, description="when not ok")


class DraftBody(_Wire):
    fields: dict[str, Any]
    num_steps: int


class Event(_Wire):
    """Zero or more before a reply. `draft`: a `say`'s best valid fields so far. `keepalive`: the
    request is still being worked on (sent when nothing else was for a while). Clients ignore
    event kinds they do not know."""
    type: Literal["event"]
    protocol_version: Version
    request_id: str
    event: Literal["draft", "keepalive"]
    draft: DraftBody | None = None


ServerMessage = Annotated[Union[Reply, Event], Field(discriminator="type")]


def parse_request(message: dict[str, Any]) -> tuple[Request, str | None]:
    """Validate a decoded request: (model, minor-version warning). Raises ProtocolError carrying
    the request id whenever it could be read, so the error reply can name it."""
    raw_id = message.get("request_id")
    request_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 128 else None
    op = message.get("op")
    try:
        if "protocol_version" not in message:
            raise ProtocolError("every request needs protocol_version", code="invalid_request",
                                details={"field": "protocol_version"})
        warning = check_version(message["protocol_version"])
        if not isinstance(op, str):
            raise ProtocolError(f"every request needs an op string, got {op!r}", code="invalid_request",
                                details={"field": "op"})
        model = OPS.get(op)
        if model is None:
            raise ProtocolError(f"unknown op {op[:64]!r}", code="unknown_op",
                                details={"op": op[:64], "supported_ops": sorted(OPS)})
        try:
            return model.model_validate(message), warning
        except ValidationError as exc:
            problems = [{"field": ".".join(str(p) for p in e["loc"]) or "(message)", "message": e["msg"]}
                        for e in exc.errors()[:10]]
            summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:3])
            raise ProtocolError(f"invalid {op} request: {summary}", code="invalid_request",
                                details={"errors": problems}) from None
    except ProtocolError as exc:
        exc.request_id = request_id
        raise


def _envelope(request_id: str | None) -> dict[str, Any]:
    return {"protocol_version": PROTOCOL_VERSION, "request_id": request_id}


def ok_reply(request_id: str | None, op: str, result: BaseModel) -> dict[str, Any]:
    return {"type": "reply", **_envelope(request_id), "op": op, "ok": True, "result": result.model_dump(mode="json")}


def error_reply(request_id: str | None, op: str | None, error: dict[str, Any]) -> dict[str, Any]:
    return {"type": "reply", **_envelope(request_id), "op": op, "ok": False, "error": error}


def keepalive_event(request_id: str) -> dict[str, Any]:
    return {"type": "event", **_envelope(request_id), "event": "keepalive"}


def draft_event(request_id: str, fields: dict[str, Any], num_steps: int) -> dict[str, Any]:
    return {"type": "event", **_envelope(request_id), "event": "draft",
            "draft": {"fields": fields, "num_steps": num_steps}}

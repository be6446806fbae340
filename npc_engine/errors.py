"""Every error npc-engine raises, in one tree.

```
NpcEngineError                 base class; carries optional request_id and character_id
 +-- TemplateError             a template spec is invalid (unknown slot kind, empty choice list,
 |    |                        min > max, duplicate slot names, bad JSON file, ...)
 |    +-- TemplateTooLargeError  the compiled template does not fit the model's canvas
 |    +-- UnknownTemplateError   no template is registered under this name
 +-- ModelLoadError            a model directory is missing, incomplete, or not a DiffusionGemma
 |    |                        checkpoint; an exported ONNX folder from another version, with a
 |    |                        graph or tokenizer missing or changed, or CUDA asked for with
 |    |                        `strict` where onnxruntime has none (message names the file)
 |    +-- ExportError            `export-onnx` failed, or its graphs disagree with PyTorch
 |                               beyond the tolerance (nothing usable is left in the folder)
 +-- PromptError               a prompt cannot be used (too long for the model, not text)
 +-- GenerationError           a generation failed inside the engine; never the caller's fault
 +-- RequestError              the engine refused a request; nothing was queued
 |    +-- QueueFullError        the waiting queue holds `max_queued_requests` already
 |    +-- DeadlineError         the soft deadline is not in the future
 |    +-- UnknownRequestError   cancel named a request id the engine does not hold
 |    +-- DuplicateRequestError a request id is already in use
 |    +-- EngineClosedError     the engine was closed
 |    +-- RateLimitedError      a game event came within the character's minimum event interval
 +-- EngineStateError          a call that does not fit the engine's mode (tick() while its
 |                             own thread runs)
 +-- BudgetError               a frame budget or engine setting is invalid (zero or negative
 |                             budget, fps, batch size; or `strict=True` and one step of the
 |                             smallest batch costs more than the budget)
 +-- StateError                a character-state change is invalid (value out of range, flag of
 |    |                        the wrong type, oversized persona, bad id); nothing was changed
 |    +-- UnknownCharacterError  no character has this id
 |    +-- UnknownSpeakerError    the speaker is neither a character nor a registered speaker
 |    +-- StateChangedError      a save was loaded, the character deleted or the world changed
 |    |                          between preparing a reply and applying it; nothing was written
 |    +-- KeyExpiredError        a retried reply's idempotency key is older than the key window
 |                               (it may have landed already, so it is not applied again)
 +-- SnapshotError             a save slot or snapshot file cannot be used (truncated, corrupt,
 |    |                        not a snapshot); nothing was changed
 |    +-- UnknownSnapshotError   no snapshot has this name
 |    +-- SnapshotVersionError   the snapshot was written by a newer schema than this one reads
 +-- StoreError                the state database cannot be opened or used (bad path, a schema
 |                             newer than this npc-engine, a locked or corrupt file)
 +-- ConfigError               a setting is invalid: an unknown backend, device or dtype, a sampler
 |    |                        setting out of range (max_denoising_steps=0), a non-loopback bind
 |    |                        without CURVE keys or --insecure, missing key files
 |    +-- BindError              the server cannot bind its endpoint (port taken, bad address)
 +-- ClusterError              the cluster did not deploy, or its gateway did not start
 +-- ProtocolError             a wire message breaks the protocol (not msgpack, not a map, too
 |                             large or deep, missing fields); carries the wire error `code`
 +-- ServerError               (client side) the server answered a request with an error reply;
 |    |                        carries its `code`, `message` and `details` (schemas/PROTOCOL.md)
 |    +-- BusyError              code `busy`: back off and retry
 |    +-- VersionMismatchError   code `unsupported_version`: client and server majors differ
 +-- ClientTimeoutError        (client side) no reply within the timeout; the request was cancelled
 +-- ClientClosedError         (client side) the client was closed
```

Validation raises these errors; it never uses `assert`. Each message names the thing at fault
(template, slot, path) and the sizes involved, so a game developer can fix it without a debugger.
"""

from __future__ import annotations

__all__ = [
    "NpcEngineError",
    "TemplateError",
    "TemplateTooLargeError",
    "UnknownTemplateError",
    "ModelLoadError",
    "ExportError",
    "PromptError",
    "GenerationError",
    "RequestError",
    "QueueFullError",
    "DeadlineError",
    "UnknownRequestError",
    "DuplicateRequestError",
    "EngineClosedError",
    "RateLimitedError",
    "EngineStateError",
    "BudgetError",
    "StateError",
    "UnknownCharacterError",
    "UnknownSpeakerError",
    "StateChangedError",
    "KeyExpiredError",
    "SnapshotError",
    "UnknownSnapshotError",
    "SnapshotVersionError",
    "StoreError",
    "ConfigError",
    "BindError",
    "ClusterError",
    "ProtocolError",
    "ServerError",
    "BusyError",
    "VersionMismatchError",
    "ClientTimeoutError",
    "ClientClosedError",
]


class NpcEngineError(Exception):
    """Base class of every error raised by npc-engine."""

    def __init__(
        self, message: str, *, request_id: str | None = None, character_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.character_id = character_id

    def __reduce__(self) -> tuple:
        # Pickle (a cluster's replicas and state service raise across processes) rebuilds an
        # exception from its args alone, which fails for the keyword-only fields; keep them all.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> "NpcEngineError":
    # OSError allocates its own kind of object; every other base here shares BaseException's.
    error = (OSError if issubclass(cls, OSError) else BaseException).__new__(cls, *args)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class TemplateError(NpcEngineError, ValueError):
    """A template spec is invalid. `template` and `slot` name what is at fault when known."""

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        slot: str | None = None,
        request_id: str | None = None,
        character_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, character_id=character_id)
        self.template = template
        self.slot = slot


class TemplateTooLargeError(TemplateError):
    """The compiled template needs more positions than `max_blocks` of the model's canvases hold,
    or one of its slots that cannot be split over two canvases (a choice, integer, boolean or
    pattern slot, with the skeleton before it) is longer than one canvas."""

    def __init__(
        self, message: str, *, template: str, num_required_tokens: int, canvas_length: int, max_blocks: int = 1
    ) -> None:
        super().__init__(message, template=template)
        self.num_required_tokens = num_required_tokens
        self.canvas_length = canvas_length
        self.max_blocks = max_blocks


class UnknownTemplateError(TemplateError, KeyError):
    """No template is registered under this name (see `Engine.register_template`)."""

    def __str__(self) -> str:
        return self.message


class ModelLoadError(NpcEngineError, OSError):
    """A model directory cannot be loaded as a DiffusionGemma checkpoint."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ExportError(ModelLoadError):
    """An ONNX export failed, or its check against PyTorch did not pass."""


class PromptError(NpcEngineError, ValueError):
    """A prompt cannot be used with this model (for example, it is too long)."""


class GenerationError(NpcEngineError, RuntimeError):
    """Generation failed inside the engine. This is a bug or a device fault, not bad input."""


class RequestError(NpcEngineError, ValueError):
    """The engine refused a request at submit or cancel time; the engine state is unchanged."""


class QueueFullError(RequestError):
    """Too many requests are waiting; try again after some finish."""

    def __init__(self, message: str, *, max_queued_requests: int, request_id: str | None = None,
                 character_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id, character_id=character_id)
        self.max_queued_requests = max_queued_requests


class DeadlineError(RequestError):
    """A soft deadline that is zero, negative, or already past."""


class UnknownRequestError(RequestError, KeyError):
    """No live request has this id (never submitted, or already finished)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class DuplicateRequestError(RequestError):
    """A live request already uses this id."""


class EngineClosedError(RequestError):
    """The engine has been closed and takes no more requests."""


class RateLimitedError(RequestError):
    """A game event came too soon after the character's last one (see npc_engine/dialogue/events.py);
    `retry_after_ms` says when one will be taken."""

    def __init__(self, message: str, *, retry_after_ms: float, request_id: str | None = None,
                 character_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id, character_id=character_id)
        self.retry_after_ms = retry_after_ms


class EngineStateError(NpcEngineError, RuntimeError):
    """The call does not fit the engine's current mode (for example tick() while start()ed)."""


class BudgetError(NpcEngineError, ValueError):
    """A frame budget or engine setting is invalid.

    With `strict=True`, also raised at start-up when one denoising step of the smallest batch
    costs more than the budget; `largest_batch_size` then says what would fit (0: nothing).
    """

    def __init__(self, message: str, *, largest_batch_size: int | None = None) -> None:
        super().__init__(message)
        self.largest_batch_size = largest_batch_size


class StateError(NpcEngineError, ValueError):
    """A character-state value is invalid; the store is unchanged. `field` names what is at fault."""

    def __init__(self, message: str, *, field: str | None = None, request_id: str | None = None,
                 character_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id, character_id=character_id)
        self.field = field


class UnknownCharacterError(StateError, KeyError):
    """No character with this id is in the store."""

    def __str__(self) -> str:
        return self.message


class UnknownSpeakerError(StateError, KeyError):
    """The speaker id is neither a character nor a registered speaker (see `Store.upsert_speaker`)."""

    def __init__(self, message: str, *, speaker_id: str, request_id: str | None = None,
                 character_id: str | None = None) -> None:
        super().__init__(message, field="speaker_id", request_id=request_id, character_id=character_id)
        self.speaker_id = speaker_id

    def __str__(self) -> str:
        return self.message


class StateChangedError(StateError):
    """The state a reply was prepared on was replaced before the reply could be applied (a
    `snapshot.load`, the character deleted, a world fact changed): nothing was written, so the
    abandoned timeline never leaks into the new one. The game may ask again. `scopes` names what
    changed ("world", "character:<id>")."""

    def __init__(self, message: str, *, scopes: list[str], request_id: str | None = None,
                 character_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id, character_id=character_id)
        self.scopes = scopes


class KeyExpiredError(StateError):
    """A retried reply came after its idempotency key left the key window (docs/state.md): the
    first attempt may have been applied and forgotten, so this one is refused, never applied twice."""


class SnapshotError(NpcEngineError, ValueError):
    """A snapshot (save slot or exported file) cannot be read or applied; nothing was changed."""


class UnknownSnapshotError(SnapshotError, KeyError):
    """No snapshot has this name."""

    def __str__(self) -> str:
        return self.message


class SnapshotVersionError(SnapshotError):
    """The snapshot was written by a newer state schema than this npc-engine reads."""

    def __init__(self, message: str, *, snapshot_version: int, supported_version: int) -> None:
        super().__init__(message)
        self.snapshot_version = snapshot_version
        self.supported_version = supported_version


class StoreError(NpcEngineError, OSError):
    """The state database cannot be opened or used. `path` names the database file."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ConfigError(NpcEngineError, ValueError):
    """A setting is invalid or unsafe (an unknown backend, `max_denoising_steps=0`, a non-loopback
    bind without CURVE)."""


class BindError(ConfigError, OSError):
    """The server cannot bind `endpoint` (the port is taken, the address is not this machine's)."""

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ClusterError(NpcEngineError, RuntimeError):
    """The cluster did not deploy, or its gateway did not start (the message says why)."""


class ProtocolError(NpcEngineError, ValueError):
    """A wire message breaks the protocol. `code` is the wire error code (see schemas/PROTOCOL.md)."""

    def __init__(self, message: str, *, code: str, details: dict | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.code = code
        self.details = details or {}


class ServerError(NpcEngineError):
    """The server replied with an error: `code`, `message` and `details` as on the wire."""

    def __init__(self, message: str, *, code: str, details: dict | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}", request_id=request_id)
        self.code = code
        self.server_message = message
        self.details = details or {}


class BusyError(ServerError):
    """The server is at a limit (queue full, too many outstanding requests); retry later."""


class VersionMismatchError(ServerError):
    """Client and server speak different protocol major versions."""


class ClientTimeoutError(NpcEngineError, TimeoutError):
    """No reply came within the timeout (a generation is cancelled on the server)."""


class ClientClosedError(NpcEngineError, RuntimeError):
    """The client has been closed."""

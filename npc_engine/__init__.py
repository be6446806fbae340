"""npc-engine: give game characters a voice.

The public API is small: load an `Engine`, declare a `Template`, call `Engine.fill`; join the
engine to a character `Store` with a `Dialogue` and call `Dialogue.say`; or talk to a running
server with `Client`. Every error derives from `NpcEngineError` (see `npc_engine.errors`).
Names are imported on first use, so `import npc_engine.client` loads no engine, store or numpy.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Character": ".characters", "Memory": ".characters", "Relationship": ".characters",
    "Speaker": ".characters", "StateChange": ".characters", "Store": ".characters", "Turn": ".characters",
    "WorldFact": ".characters",
    "AsyncClient": ".client", "Client": ".client",
    "Dialogue": ".dialogue", "SayHandle": ".dialogue", "SayResult": ".dialogue",
    "DiffusionSettings": ".diffusion",
    "Draft": ".engine", "Engine": ".engine", "EngineConfig": ".engine", "EngineStats": ".engine",
    "FillResult": ".engine", "FinishReason": ".engine", "RequestHandle": ".engine", "RequestStatus": ".engine",
    "BindError": ".errors", "BudgetError": ".errors", "BusyError": ".errors", "ClientClosedError": ".errors",
    "ClusterError": ".errors",
    "ClientTimeoutError": ".errors", "ConfigError": ".errors", "DeadlineError": ".errors",
    "DuplicateRequestError": ".errors", "EngineClosedError": ".errors", "EngineStateError": ".errors",
    "ExportError": ".errors", "GenerationError": ".errors", "ModelLoadError": ".errors",
    "NpcEngineError": ".errors", "PromptError": ".errors", "ProtocolError": ".errors",
    "QueueFullError": ".errors", "RateLimitedError": ".errors", "RequestError": ".errors", "ServerError": ".errors",
    "SnapshotError": ".errors", "SnapshotVersionError": ".errors", "StateError": ".errors",
    "StateChangedError": ".errors", "KeyExpiredError": ".errors",
    "StoreError": ".errors", "TemplateError": ".errors", "TemplateTooLargeError": ".errors",
    "UnknownCharacterError": ".errors", "UnknownRequestError": ".errors", "UnknownSnapshotError": ".errors",
    "UnknownSpeakerError": ".errors", "UnknownTemplateError": ".errors", "VersionMismatchError": ".errors",
    "BooleanSlot": ".templates", "ChoiceSlot": ".templates", "IntegerSlot": ".templates",
    "Template": ".templates", "TextSlot": ".templates", "load_template": ".templates",
}

__all__ = sorted([*_EXPORTS, "__version__"])
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

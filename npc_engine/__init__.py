"""npc-engine: give game characters a voice.

The public API is small: load an `Engine`, declare a `Template`, call `Engine.fill`; give it a
character `Store` (`engine.use_store`) and call `Engine.say`. Every error derives from
`NpcEngineError` (see `npc_engine.errors`).
"""

from .characters import (
    Character,
    Memory,
    Relationship,
    SayHandle,
    SayResult,
    Speaker,
    StateChange,
    Store,
    Turn,
    WorldFact,
)
from .diffusion import DiffusionSettings
from .engine import Draft, Engine, EngineConfig, EngineStats, FillResult, RequestHandle, RequestStatus
from .errors import (
    BudgetError,
    DeadlineError,
    DuplicateRequestError,
    EngineClosedError,
    EngineStateError,
    GenerationError,
    ModelLoadError,
    NpcEngineError,
    PromptError,
    QueueFullError,
    RequestError,
    SnapshotError,
    SnapshotVersionError,
    StateError,
    StoreError,
    TemplateError,
    TemplateTooLargeError,
    UnknownCharacterError,
    UnknownRequestError,
    UnknownSnapshotError,
    UnknownSpeakerError,
)
from .templates import BooleanSlot, ChoiceSlot, IntegerSlot, Template, TextSlot, load_template

__version__ = "0.1.0"

__all__ = [
    "BooleanSlot",
    "BudgetError",
    "Character",
    "ChoiceSlot",
    "DeadlineError",
    "DiffusionSettings",
    "Draft",
    "DuplicateRequestError",
    "Engine",
    "EngineClosedError",
    "EngineConfig",
    "EngineStateError",
    "EngineStats",
    "FillResult",
    "GenerationError",
    "IntegerSlot",
    "Memory",
    "ModelLoadError",
    "NpcEngineError",
    "PromptError",
    "QueueFullError",
    "Relationship",
    "RequestError",
    "RequestHandle",
    "RequestStatus",
    "SayHandle",
    "SayResult",
    "SnapshotError",
    "SnapshotVersionError",
    "Speaker",
    "StateChange",
    "StateError",
    "Store",
    "StoreError",
    "Template",
    "TemplateError",
    "TemplateTooLargeError",
    "TextSlot",
    "Turn",
    "UnknownCharacterError",
    "UnknownRequestError",
    "UnknownSnapshotError",
    "UnknownSpeakerError",
    "WorldFact",
    "__version__",
    "load_template",
]

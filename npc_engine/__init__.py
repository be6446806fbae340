"""npc-engine: give game characters a voice.

The public API is small: load an `Engine`, declare a `Template`, call `Engine.fill`. Every error
derives from `NpcEngineError` (see `npc_engine.errors`).
"""

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
    TemplateError,
    TemplateTooLargeError,
    UnknownRequestError,
)
from .templates import BooleanSlot, ChoiceSlot, IntegerSlot, Template, TextSlot, load_template

__version__ = "0.1.0"

__all__ = [
    "BooleanSlot",
    "BudgetError",
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
    "ModelLoadError",
    "NpcEngineError",
    "PromptError",
    "QueueFullError",
    "RequestError",
    "RequestHandle",
    "RequestStatus",
    "Template",
    "TemplateError",
    "TemplateTooLargeError",
    "TextSlot",
    "UnknownRequestError",
    "__version__",
    "load_template",
]

"""npc-engine: give game characters a voice.

The public API is small: load an `Engine`, declare a `Template`, call `Engine.fill`. Every error
derives from `NpcEngineError` (see `npc_engine.errors`).
"""

from .diffusion import DiffusionSettings
from .engine import Engine, FillResult
from .errors import (
    GenerationError,
    ModelLoadError,
    NpcEngineError,
    PromptError,
    TemplateError,
    TemplateTooLargeError,
)
from .templates import BooleanSlot, ChoiceSlot, IntegerSlot, Template, TextSlot, load_template

__version__ = "0.1.0"

__all__ = [
    "BooleanSlot",
    "ChoiceSlot",
    "DiffusionSettings",
    "Engine",
    "FillResult",
    "GenerationError",
    "IntegerSlot",
    "ModelLoadError",
    "NpcEngineError",
    "PromptError",
    "Template",
    "TemplateError",
    "TemplateTooLargeError",
    "TextSlot",
    "__version__",
    "load_template",
]

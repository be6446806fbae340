"""Every error npc-engine raises, in one tree.

```
NpcEngineError                 base class; carries optional request_id and character_id
 +-- TemplateError             a template spec is invalid (unknown slot kind, empty choice list,
 |    |                        min > max, duplicate slot names, bad JSON file, ...)
 |    +-- TemplateTooLargeError  the compiled template does not fit the model's canvas
 +-- ModelLoadError            a model directory is missing, incomplete, or not a DiffusionGemma
 |                             checkpoint (message names the path and what was found)
 +-- PromptError               a prompt cannot be used (too long for the model, not text)
 +-- GenerationError           a generation failed inside the engine; never the caller's fault
```

Validation raises these errors; it never uses `assert`. Each message names the thing at fault
(template, slot, path) and the sizes involved, so a game developer can fix it without a debugger.
"""

from __future__ import annotations

__all__ = [
    "NpcEngineError",
    "TemplateError",
    "TemplateTooLargeError",
    "ModelLoadError",
    "PromptError",
    "GenerationError",
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
    """The compiled template needs more canvas positions than the model's canvas holds."""

    def __init__(
        self, message: str, *, template: str, num_required_tokens: int, canvas_length: int
    ) -> None:
        super().__init__(message, template=template)
        self.num_required_tokens = num_required_tokens
        self.canvas_length = canvas_length


class ModelLoadError(NpcEngineError, OSError):
    """A model directory cannot be loaded as a DiffusionGemma checkpoint."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class PromptError(NpcEngineError, ValueError):
    """A prompt cannot be used with this model (for example, it is too long)."""


class GenerationError(NpcEngineError, RuntimeError):
    """Generation failed inside the engine. This is a bug or a device fault, not bad input."""

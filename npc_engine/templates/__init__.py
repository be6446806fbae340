"""Templates: spec -> canvas plan -> validated output.

The spec (`Template`, slots, effects) is pure pydantic; the compiler and renderer need numpy and
are imported only when used (the client and the wire types read specs without them).
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "CanvasPlan": ".compiler", "SlotPlan": ".compiler", "TemplateCompiler": ".compiler",
    "EFFECT_SLOT_KINDS": ".effects", "RELATIONSHIP_DIMENSIONS": ".effects", "AddToRelationship": ".effects",
    "Effect": ".effects", "Remember": ".effects", "SetFlag": ".effects", "SetMood": ".effects",
    "choose_options": ".render", "render": ".render", "TemplateRegistry": ".registry",
    "MAX_INTEGER_RANGE": ".spec", "BooleanSlot": ".spec", "ChoiceSlot": ".spec", "IntegerSlot": ".spec",
    "Slot": ".spec", "Template": ".spec", "TextSlot": ".spec", "load_template": ".spec",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""Templates: spec -> canvas plan -> validated output."""

from .compiler import CanvasPlan, SlotPlan, TemplateCompiler
from .effects import (
    EFFECT_SLOT_KINDS,
    RELATIONSHIP_DIMENSIONS,
    AddToRelationship,
    Effect,
    Remember,
    SetFlag,
    SetMood,
)
from .render import choose_options, render
from .spec import (
    MAX_INTEGER_RANGE,
    BooleanSlot,
    ChoiceSlot,
    IntegerSlot,
    Slot,
    Template,
    TextSlot,
    load_template,
)

__all__ = [
    "EFFECT_SLOT_KINDS",
    "RELATIONSHIP_DIMENSIONS",
    "AddToRelationship",
    "Effect",
    "Remember",
    "SetFlag",
    "SetMood",
    "MAX_INTEGER_RANGE",
    "BooleanSlot",
    "CanvasPlan",
    "ChoiceSlot",
    "IntegerSlot",
    "Slot",
    "SlotPlan",
    "Template",
    "TemplateCompiler",
    "TextSlot",
    "choose_options",
    "load_template",
    "render",
]

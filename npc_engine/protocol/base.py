"""What every wire model shares: strict pydantic models (extra fields refused) and the id and
version field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..characters.model import ID_PATTERN
from ..templates.placeholders import MAX_VALUE_CHARS
from .version import VERSION_PATTERN

__all__ = ["Id", "RequestId", "Version", "Wire", "Identifier", "PlaceholderValue", "OptionText"]

Id = Annotated[str, Field(pattern=ID_PATTERN, description="1-64 of A-Z a-z 0-9 _ . : -")]
RequestId = Annotated[str, Field(min_length=1, max_length=128, description="chosen by the client; "
                                 "unique among its outstanding requests")]
Version = Annotated[str, Field(pattern=VERSION_PATTERN, description='"MAJOR.MINOR"')]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                                  description="a slot or pattern-placeholder name")]
OptionText = Annotated[str, Field(min_length=1, max_length=64, description="one option of a choice slot")]
PlaceholderValue = Annotated[str, Field(min_length=1, max_length=MAX_VALUE_CHARS, description=(
    "one line of text: no quote, brace, backslash or control character"))]


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

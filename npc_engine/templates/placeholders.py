"""Placeholders: `{name}` in text-slot patterns (filled per say with escaped values) and in a
`remember` effect's text (filled per say with the say's values, then with the reply's slots).

A placeholder is an identifier in braces; a regular expression's bounded repeats (`{2,3}`) are
digits, so the two never clash. Values are checked here: a value is 1..64 characters of one
line, with nothing a line cannot hold (quotes, braces, backslashes, control characters).
"""

from __future__ import annotations

import re
from typing import Callable, Collection, Mapping

from ..errors import TemplateError

__all__ = ["placeholders_of", "fill_placeholders", "fill_text", "substitute", "pattern_syntax_error",
           "MAX_VALUE_CHARS", "MAX_VALUES"]

MAX_VALUE_CHARS = 64
MAX_VALUES = 32
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORBIDDEN_IN_VALUES = re.compile(r"[\"{}\\\x00-\x1f\x7f]")


def placeholders_of(pattern: str) -> list[str]:
    """The placeholder names in `pattern`, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(pattern)))


def check_value(name: str, value: object, *, template: str | None = None, slot: str | None = None) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_CHARS:
        raise TemplateError(f"the value of {{{name}}} must be 1..{MAX_VALUE_CHARS} characters of text, "
                            f"got {value!r}", template=template, slot=slot)
    if _FORBIDDEN_IN_VALUES.search(value):
        raise TemplateError(f"the value of {{{name}}} holds a character a line cannot (a quote, brace, "
                            f"backslash or control character): {value!r}", template=template, slot=slot)
    return value


def fill_placeholders(pattern: str, values: Mapping[str, str], *, template: str | None = None,
                      slot: str | None = None) -> str:
    """`pattern` with each `{name}` replaced by its escaped value (TemplateError when one is
    missing or not a value a line can hold)."""
    return _filled(pattern, values, re.escape, (), template, slot)


def fill_text(text: str, values: Mapping[str, str], *, keep: Collection[str] = (), template: str | None = None,
              slot: str | None = None) -> str:
    """`text` with each `{name}` replaced by its value as it is, except the names in `keep`, left
    for later (TemplateError as `fill_placeholders`)."""
    return _filled(text, values, str, keep, template, slot)


def substitute(text: str, values: Mapping[str, object]) -> str:
    """`text` with each `{name}` that `values` holds replaced by str(value), unchecked: for values
    valid by construction (a reply's fields)."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def _filled(text: str, values: Mapping[str, str], escape: Callable[[str], str], keep: Collection[str],
            template: str | None, slot: str | None) -> str:
    def value_of(match: re.Match) -> str:
        name = match.group(1)
        if name in keep:
            return match.group(0)
        if name not in values:
            raise TemplateError(f"placeholder {{{name}}} has no value (give it in the say's values)",
                                template=template, slot=slot)
        return escape(check_value(name, values[name], template=template, slot=slot))
    return _PLACEHOLDER.sub(value_of, text)


def pattern_syntax_error(pattern: str) -> str | None:
    """Why `pattern` is not a regular expression once its placeholders hold a value (None: it is)."""
    try:
        re.compile(_PLACEHOLDER.sub("x", pattern))
    except re.error as exc:
        return f"pattern is not a regular expression: {exc}"
    return None

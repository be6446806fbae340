"""`TemplateRegistry`: templates by name, the one registry of a server's engine and of a
cluster's state service.

Bounded (at most MAX_TEMPLATES names at once: anything that listens bounds every count) and
thread-safe (a server registers on its IO thread while the engine thread reads). A template is
checked before it is kept: the engine compiles it, so a template that cannot run on the model is
refused at registration, never at its first say.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..bounds import MAX_TEMPLATES
from ..errors import TemplateError, UnknownTemplateError
from .spec import Template, load_template

__all__ = ["TemplateRegistry"]


class TemplateRegistry(Mapping[str, Template]):
    def __init__(self, *, check: Callable[[Template], object] | None = None,
                 max_templates: int = MAX_TEMPLATES) -> None:
        """`check` runs on every template before it is kept (the engine's compile); its errors
        refuse the template."""
        self._entries: dict[str, tuple[Template, object]] = {}  # name -> template, what `check` returned
        self._check = check
        self.max_templates = max_templates
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Template:
        return self._entries[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, template: Template | Mapping[str, Any] | str | Path) -> Template:
        """Resolve, check and keep a template under its name (replacing one of the same name).
        Raises TemplateError (over the limit, or invalid), TemplateTooLargeError."""
        resolved = self.resolve(template)
        self.check_room_for(resolved.name)
        checked = self._check(resolved) if self._check is not None else None
        with self._lock:
            self.check_room_for(resolved.name)  # another thread may have filled it meanwhile
            self._entries[resolved.name] = (resolved, checked)
        return resolved

    def checked(self, template: Template) -> object | None:
        """What `check` returned when `template` (this very object) was registered; None for a
        template not registered as it is (so a say on a registered template compiles nothing)."""
        registered, checked = self._entries.get(template.name, (None, None))  # one read: no lock needed
        return checked if registered is template else None

    def check_room_for(self, name: str) -> None:
        """TemplateError when registering `name` would go over the limit (a known name replaces)."""
        if name not in self._entries and len(self._entries) >= self.max_templates:
            raise TemplateError(f"{len(self._entries)} templates are registered (the limit); replace one "
                                f"by registering its name again", template=name)

    def resolve(self, template: Template | Mapping[str, Any] | str | Path) -> Template:
        """A Template, a mapping, a registered template's name, or a JSON file's path -> Template."""
        if isinstance(template, Template):
            return template
        if isinstance(template, Mapping):
            return load_template(dict(template))
        if isinstance(template, str) and template in self._entries:
            return self._entries[template][0]
        if not isinstance(template, (str, Path)):
            raise TemplateError(f"a template must be a Template, a mapping, a name or a path, got "
                                f"{type(template).__name__}")
        is_bare_name = isinstance(template, str) and not template.endswith(".json") and "/" not in template \
            and "\\" not in template
        if is_bare_name and not Path(template).is_file():
            raise UnknownTemplateError(f"no template is registered as {template!r} (registered: "
                                       f"{sorted(self._entries) or 'none'})", template=template)
        return load_template(template)

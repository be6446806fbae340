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
        self._templates: dict[str, Template] = {}
        self._checked: dict[str, object] = {}  # name -> what `check` returned for it (the engine: its plan's key)
        self._check = check
        self.max_templates = max_templates
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Template:
        return self._templates[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._templates))

    def __len__(self) -> int:
        return len(self._templates)

    def register(self, template: Template | Mapping[str, Any] | str | Path) -> Template:
        """Resolve, check and keep a template under its name (replacing one of the same name).
        Raises TemplateError (over the limit, or invalid), TemplateTooLargeError."""
        resolved = self.resolve(template)
        self.check_room_for(resolved.name)
        checked = self._check(resolved) if self._check is not None else None
        with self._lock:
            self.check_room_for(resolved.name)  # another thread may have filled it meanwhile
            self._templates[resolved.name] = resolved
            self._checked[resolved.name] = checked
        return resolved

    def checked(self, template: Template) -> object | None:
        """What `check` returned when `template` (this very object) was registered; None for a
        template not registered as it is (so a say on a registered template compiles nothing)."""
        name = template.name
        with self._lock:
            return self._checked.get(name) if self._templates.get(name) is template else None

    def check_room_for(self, name: str) -> None:
        """TemplateError when registering `name` would go over the limit (a known name replaces)."""
        if name not in self._templates and len(self._templates) >= self.max_templates:
            raise TemplateError(f"{len(self._templates)} templates are registered (the limit); replace one "
                                f"by registering its name again", template=name)

    def resolve(self, template: Template | Mapping[str, Any] | str | Path) -> Template:
        """A Template, a mapping, a registered template's name, or a JSON file's path -> Template."""
        if isinstance(template, Template):
            return template
        if isinstance(template, Mapping):
            return load_template(dict(template))
        if isinstance(template, str) and template in self._templates:
            return self._templates[template]
        if not isinstance(template, (str, Path)):
            raise TemplateError(f"a template must be a Template, a mapping, a name or a path, got "
                                f"{type(template).__name__}")
        is_bare_name = isinstance(template, str) and not template.endswith(".json") and "/" not in template \
            and "\\" not in template
        if is_bare_name and not Path(template).is_file():
            raise UnknownTemplateError(f"no template is registered as {template!r} (registered: "
                                       f"{sorted(self._templates) or 'none'})", template=template)
        return load_template(template)

"""The cluster's state of record: one SQLite store, served to every replica and gateway.

Replicas never open the database. Before a reply they ask for the character's prompt inputs;
after it they send the reply to `apply_reply`, keyed by the say's idempotency key, and the
store applies it in one transaction together with the key, so a say that is retried (its
replica died before answering) changes state exactly once. Templates registered at run time
live here too, so every replica can fetch one by name.

One writer is the trade-off: every change goes through one process (a few thousand replies a
second on one core, far above dialogue rates), and the database is as durable as that
machine's disk. A cluster that outgrows it would swap this class for one over a shared
database server; nothing else talks to SQLite.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..characters.store import Store
from ..dialogue.state import LocalState
from ..errors import StateError
from ..templates import Template, load_template

__all__ = ["STORE_OPS", "StateService"]

# The store calls the gateway forwards (the protocol's state ops); nothing else is reachable.
STORE_OPS = frozenset({
    "upsert_character", "get_character", "list_characters", "delete_character",
    "upsert_speaker", "list_speakers", "delete_speaker",
    "set_world_fact", "get_world_fact", "list_world_facts", "delete_world_fact",
    "snapshots.save", "snapshots.load", "snapshots.list", "snapshots.delete", "snapshots.export_bytes",
    "snapshots.import_bytes",
})


class StateService(LocalState):
    """The replicas' `StateAccess` (`prompt_inputs`, `apply_reply`: a `LocalState` over the one
    store), the gateway's store ops, the template registry and the replicas' stats reports."""

    def __init__(self, db_path: str | None = None, template_dirs: list[str] | None = None) -> None:
        super().__init__(Store(db_path) if db_path else Store(":memory:"))
        self.templates: dict[str, Template] = {}
        self.replica_reports: dict[str, tuple[float, dict[str, Any]]] = {}
        for folder in template_dirs or []:
            for path in sorted(Path(folder).glob("*.json")):
                template = load_template(path)
                self.templates[template.name] = template

    def call(self, op: str, args: tuple = (), kwargs: dict[str, Any] | None = None) -> Any:
        if op not in STORE_OPS:
            raise StateError(f"the state service does not offer {op!r}")
        target: Any = self.store
        for part in op.split("."):
            target = getattr(target, part)
        return target(*args, **(kwargs or {}))

    def register_template(self, template: Template) -> str:
        self.templates[template.name] = template
        return template.name

    def get_templates(self) -> dict[str, Template]:
        return dict(self.templates)

    def report_stats(self, replica_id: str, stats: dict[str, Any]) -> None:
        """Each replica reports its engine stats every second; the gateway's `stats` reads them."""
        self.replica_reports[replica_id] = (time.monotonic(), stats)

    def replica_stats(self, max_age_s: float = 5.0) -> dict[str, dict[str, Any]]:
        """The latest report of every replica heard from in the last `max_age_s` (a lost replica
        ages out)."""
        now = time.monotonic()
        return {rid: stats for rid, (at, stats) in sorted(self.replica_reports.items()) if now - at <= max_age_s}

    def db_path(self) -> str:
        return self.store.path

    def close(self) -> None:
        self.store.close()

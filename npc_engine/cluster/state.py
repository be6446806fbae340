"""The cluster's state of record: one SQLite store, served to every replica and gateway.

Replicas never open the database. Before a reply they ask for the character's prompt inputs;
after it they send the reply to `apply_reply`, keyed by the say's idempotency key, and the
store applies it in one transaction together with the key, so a say that is retried (its
replica died before answering) changes state exactly once. Templates registered at run time
live here too (and in the database), so every replica can fetch one by name.

The database is a file by default (`cluster-state.db` in the user's data folder of the node that
runs this service): a restart of the service keeps every character, idempotency key and run-time
template. `:memory:` must be asked for, and warns: a restart then forgets everything that was
acknowledged.

One writer is the trade-off: every change goes through one process (a few thousand replies a
second on one core, far above dialogue rates), and the database is as durable as that
machine's disk. A cluster that outgrows it would swap this class for one over a shared
database server; nothing else talks to SQLite.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ..characters.store import Store, default_database_path
from ..dialogue.state import LocalState
from ..errors import StateError
from ..templates import Template, TemplateRegistry, load_template

__all__ = ["STORE_OPS", "StateService", "default_cluster_database_path"]

log = logging.getLogger("npc_engine.cluster")

IN_MEMORY_WARNING = ("the cluster's state is in memory (--db :memory:): a restart of its state service loses every "
                     "character, every idempotency key and every template registered at run time, even after "
                     "their replies were acknowledged")


def default_cluster_database_path() -> Path:
    """`cluster-state.db` beside `serve`'s default state file (the user's data folder)."""
    return default_database_path().with_name("cluster-state.db")

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
        """`db_path` None: `default_cluster_database_path()`. Templates: those registered at run time
        before (from the database), then the folders' (a file wins over an older registration)."""
        super().__init__(Store(db_path or default_cluster_database_path()))
        if self.store.is_memory:
            log.warning(IN_MEMORY_WARNING)
        self.templates = TemplateRegistry()  # bounded like a server's: MAX_TEMPLATES names
        for template in self._stored_templates().values():
            self.templates.register(template)
        self.replica_reports: dict[str, tuple[float, dict[str, Any]]] = {}
        for folder in template_dirs or []:
            for path in sorted(Path(folder).glob("*.json")):
                self.templates.register(load_template(path))

    def _stored_templates(self) -> dict[str, Template]:
        with self.store.reading() as conn:
            stored = conn.execute("SELECT name, spec FROM registered_templates ORDER BY name").fetchall()
        templates = {}
        for name, spec in stored:
            try:
                templates[name] = load_template(json.loads(spec))
            except (ValueError, TypeError) as exc:  # written by another version: register it again
                log.warning("the stored template %r cannot be used and is skipped: %s", name, exc)
        return templates

    def call(self, op: str, args: tuple = (), kwargs: dict[str, Any] | None = None) -> Any:
        if op not in STORE_OPS:
            raise StateError(f"the state service does not offer {op!r}")
        target: Any = self.store
        for part in op.split("."):
            target = getattr(target, part)
        return target(*args, **(kwargs or {}))

    def register_template(self, template: Template) -> str:
        """Publish a template (compiled by a replica) to every replica; kept in the database.
        TemplateError, before anything is written, when it would go over MAX_TEMPLATES."""
        self.templates.check_room_for(template.name)
        with self.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO registered_templates (name, spec, registered_ms) VALUES (?, ?, ?)",
                         (template.name, template.model_dump_json(), int(time.time() * 1000)))
        self.templates.register(template)
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

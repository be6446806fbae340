"""State epochs: which version of a character's world a reply was prepared on.

A reply is generated from state read before it (the prompt) and applied after it. When a save is
loaded, the character deleted or a world fact changed in between, applying it would write the
abandoned timeline's turn, mood and trust into the new one. So each of those bumps a counter
("world", or "character:<id>"), the prompt's read records the counters it depends on, and the
apply refuses (`StateChangedError`, nothing written) when any of them moved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from ..errors import StateChangedError

__all__ = ["WORLD", "bump", "character_scope", "check", "read"]

WORLD = "world"


def character_scope(character_id: str) -> str:
    return f"character:{character_id}"


def bump(conn: sqlite3.Connection, scope: str) -> None:
    """Mark `scope` as replaced (the caller holds the transaction that replaces it)."""
    conn.execute("INSERT INTO state_epochs (scope, epoch) VALUES (?, 1) "
                 "ON CONFLICT (scope) DO UPDATE SET epoch = epoch + 1", (scope,))


def read(conn: sqlite3.Connection, scopes: Iterable[str]) -> dict[str, int]:
    """The current epoch of each scope (0: never replaced)."""
    wanted = list(dict.fromkeys(scopes))
    marks = ",".join("?" * len(wanted))
    stored = dict(conn.execute(f"SELECT scope, epoch FROM state_epochs WHERE scope IN ({marks})", wanted))
    return {scope: int(stored.get(scope, 0)) for scope in wanted}


def check(conn: sqlite3.Connection, prepared: Mapping[str, int], *, character_id: str) -> None:
    """Raise StateChangedError when a scope moved since `prepared` was read."""
    if not prepared:
        return
    now = read(conn, prepared)
    moved = sorted(scope for scope, epoch in prepared.items() if now[scope] != epoch)
    if moved:
        raise StateChangedError(
            f"the state this reply was prepared on changed before it could be applied ({', '.join(moved)}: "
            "a save was loaded, the character deleted or the world changed); nothing was applied, ask again",
            scopes=moved, character_id=character_id)

"""`Store`: characters, speakers and world facts in one SQLite database (WAL mode).

Every public method is one transaction: it either happens whole or not at all. Group several in
one transaction with `with store.transaction(): ...` (nested groups become savepoints). One
connection is shared by the threads of a process behind a lock; other processes may open the
same file (WAL lets readers run beside one writer; writers wait up to `timeout_s`).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..bounds import MAX_WORLD_FACTS
from ..errors import StateError, StoreError
from . import epochs, rows
from .keys import DEFAULT_KEY_WINDOW_S, DEFAULT_MAX_APPLIED_KEYS
from .model import (
    ID_PATTERN,
    MAX_MEMORIES,
    MAX_TURNS,
    RELATIONSHIP_RANGES,
    Character,
    FlagValue,
    Memory,
    Relationship,
    Speaker,
    Turn,
    WorldFact,
    check_flag_value,
    parse,
)
from .schema import MIGRATIONS, migrate
from .snapshots import Snapshots

__all__ = ["Store", "default_database_path"]

_APP_FOLDER = "npc-engine"


def default_database_path() -> Path:
    """`$NPC_ENGINE_DATA_DIR/state.db`, else the platform's per-user data folder."""
    override = os.environ.get("NPC_ENGINE_DATA_DIR")
    if override:
        return Path(override) / "state.db"
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / _APP_FOLDER / "state.db"


class Store:
    """Persistent character state. `Store(":memory:")` for tests; `Store()` for the default file.

    `synchronous="full"` (default) makes every acknowledged write survive a power cut too;
    `"normal"` survives a process crash but may lose the last writes on power loss, and is faster.
    Retention: each character keeps its newest `max_turns_per_character` turns and at most
    `max_memories_per_character` memories (the least salient, then oldest, are forgotten first).
    Idempotency keys of applied replies are kept `key_window_s` and at most `max_applied_keys`
    of them (keys.py).
    """

    def __init__(self, path: str | Path | None = None, *, synchronous: Literal["full", "normal"] = "full",
                 max_turns_per_character: int = 64, max_memories_per_character: int = MAX_MEMORIES,
                 timeout_s: float = 5.0, key_window_s: float = DEFAULT_KEY_WINDOW_S,
                 max_applied_keys: int = DEFAULT_MAX_APPLIED_KEYS) -> None:
        if synchronous not in ("full", "normal"):
            raise StoreError(f"synchronous must be 'full' or 'normal', got {synchronous!r}", path=str(path))
        if not 1 <= max_turns_per_character <= MAX_TURNS:
            raise StoreError(f"max_turns_per_character must be in 1..{MAX_TURNS}", path=str(path))
        if not 1 <= max_memories_per_character <= MAX_MEMORIES:
            raise StoreError(f"max_memories_per_character must be in 1..{MAX_MEMORIES}", path=str(path))
        if not key_window_s > 0 or max_applied_keys < 1:
            raise StoreError(f"key_window_s must be > 0 and max_applied_keys >= 1, got {key_window_s} and "
                             f"{max_applied_keys}", path=str(path))
        self.key_window_s = float(key_window_s)
        self.max_applied_keys = int(max_applied_keys)
        self.max_turns_per_character = max_turns_per_character
        self.max_memories_per_character = max_memories_per_character
        self.is_memory = str(path) == ":memory:"
        self.path = ":memory:" if self.is_memory else str(Path(path) if path else default_database_path())
        self._lock = threading.RLock()
        self._depth = 0
        self._is_closed = False
        self._conn = self._open(synchronous, timeout_s)
        self.snapshots = Snapshots(self)

    def _open(self, synchronous: str, timeout_s: float) -> sqlite3.Connection:
        if not self.is_memory:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for state database {self.path!r}: {exc}",
                                 path=self.path) from exc
        try:
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state database {self.path!r}: {exc}", path=self.path) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if not self.is_memory and str(mode).lower() != "wal":
                raise StoreError(f"state database {self.path!r} cannot use WAL mode (got {mode!r})", path=self.path)
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, MIGRATIONS)
        except ValueError as exc:
            conn.close()
            raise StoreError(f"state database {self.path!r}: {exc}", path=self.path) from None
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"state database {self.path!r} cannot be used: {exc}", path=self.path) from exc
        return conn

    def close(self) -> None:
        """Close the database; later calls raise StoreError. Safe to call twice."""
        with self._lock:
            self._is_closed = True
            self._conn.close()

    def _check_open(self) -> None:
        if self._is_closed:
            raise StoreError(f"state database {self.path!r} is closed", path=self.path)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self.reading() as conn:
            return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: every change inside commits together or not at all."""
        with self._lock:
            self._check_open()
            savepoint = f"npc_{self._depth}"
            try:
                self._conn.execute("BEGIN IMMEDIATE" if self._depth == 0 else f"SAVEPOINT {savepoint}")
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path!r}: {exc}", path=self.path) from exc
            self._depth += 1
            try:
                yield self._conn
            except BaseException as exc:
                self._depth -= 1
                self._conn.execute("ROLLBACK" if self._depth == 0 else f"ROLLBACK TO {savepoint}")
                if self._depth:
                    self._conn.execute(f"RELEASE {savepoint}")
                if isinstance(exc, sqlite3.Error):  # disk full, I/O error, lock timeout, ...
                    raise StoreError(f"state database {self.path!r}: {exc}", path=self.path) from exc
                raise
            self._depth -= 1
            try:
                self._conn.execute("COMMIT" if self._depth == 0 else f"RELEASE {savepoint}")
            except sqlite3.Error as exc:
                if self._depth == 0 and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"state database {self.path!r}: commit failed: {exc}", path=self.path) from exc

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot of the database even while other processes write)."""
        with self._lock:
            self._check_open()
            if self._depth:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # -- characters ----------------------------------------------------------------------------

    def upsert_character(self, character: Character | Mapping[str, Any]) -> Character:
        """Create a character, or update the fields given (fields left out keep their stored value).

        So a game may upsert its persona definitions at every start without wiping memories.
        Returns the stored character. Raises StateError for invalid values.
        """
        if isinstance(character, Character):
            given = character.model_dump(exclude_unset=True)
            given["id"] = character.id
        elif isinstance(character, Mapping):
            given = dict(character)
        else:
            raise StateError(f"a character must be a Character or a mapping, got {type(character).__name__}")
        character_id = given.get("id")
        if not isinstance(character_id, str):
            raise StateError(f"a character needs a string 'id' matching {ID_PATTERN}", field="id")
        with self.transaction() as conn:
            stored = rows.load_character(conn, character_id).model_dump() \
                if rows.character_exists(conn, character_id) else {}
            merged = parse(Character, {**stored, **given}, character_id=character_id)
            rows.write_character(conn, merged, fields=given.keys() if stored else None)
        return merged

    def get_character(self, character_id: str) -> Character:
        """The whole character. Raises UnknownCharacterError."""
        with self.reading() as conn:
            return rows.load_character(conn, character_id)

    def has_character(self, character_id: str) -> bool:
        with self.reading() as conn:
            return rows.character_exists(conn, character_id)

    def list_characters(self) -> list[str]:
        """Every character id, sorted."""
        with self.reading() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM characters ORDER BY id")]

    def delete_character(self, character_id: str) -> None:
        """Delete a character and all it holds (a reply to it still in flight is refused:
        epochs.py). Raises UnknownCharacterError."""
        with self.transaction() as conn:
            rows.delete_character(conn, character_id)
            epochs.bump(conn, epochs.character_scope(character_id))

    def set_mood(self, character_id: str, mood: str) -> str:
        """Set the mood; returns the previous one."""
        with self.transaction() as conn:
            character = self._profile(conn, character_id)
            new = parse(Character, {**character, "mood": mood}, character_id=character_id)
            rows.set_profile_column(conn, character_id, "mood", new.mood)
        return str(character["mood"])

    def set_flag(self, character_id: str, name: str, value: FlagValue) -> FlagValue | None:
        """Set a game flag (bool, int, float or short string); returns the previous value or None."""
        with self.transaction() as conn:
            character = self._profile(conn, character_id)
            flags = dict(character["flags"])
            previous = flags.get(name)
            try:
                check_flag_value(name, value)
            except ValueError as exc:
                raise StateError(str(exc), field=f"flags.{name}", character_id=character_id) from None
            flags[name] = value
            checked = parse(Character, {**character, "flags": flags}, character_id=character_id)
            rows.set_profile_column(conn, character_id, "flags", checked.flags)
        return previous

    def adjust_relationship(self, character_id: str, other_id: str, **deltas: int) -> tuple[Relationship, Relationship]:
        """Add deltas (trust=, affinity=, familiarity=) clamped to their ranges; returns (before, after)."""
        for dimension, delta in deltas.items():
            if dimension not in RELATIONSHIP_RANGES:
                raise StateError(f"unknown relationship dimension {dimension!r}; expected one of "
                                 f"{sorted(RELATIONSHIP_RANGES)}", field=dimension, character_id=character_id)
            if isinstance(delta, bool) or not isinstance(delta, int):
                raise StateError(f"relationship delta {dimension!r} must be an integer, got {delta!r}",
                                 field=dimension, character_id=character_id)
        with self.transaction() as conn:
            rows.require_character(conn, character_id)
            self._require_speaker(conn, other_id, character_id)
            before = rows.load_relationship(conn, character_id, other_id)
            values = before.model_dump()
            for dimension, delta in deltas.items():
                low, high = RELATIONSHIP_RANGES[dimension]
                values[dimension] = min(high, max(low, values[dimension] + delta))
            after = Relationship(**values)
            rows.write_relationship(conn, character_id, other_id, after)
        return before, after

    def set_relationship(self, character_id: str, other_id: str,
                         relationship: Relationship | Mapping[str, Any]) -> Relationship:
        """Set a relationship outright (values must be in range)."""
        value = parse(Relationship, relationship, character_id=character_id)
        with self.transaction() as conn:
            rows.require_character(conn, character_id)
            self._require_speaker(conn, other_id, character_id)
            rows.write_relationship(conn, character_id, other_id, value)
        return value

    def add_memory(self, character_id: str, text: str, salience: float = 0.5) -> Memory:
        memory = parse(Memory, {"text": text, "salience": salience}, character_id=character_id)
        with self.transaction() as conn:
            rows.require_character(conn, character_id)
            rows.insert_memory(conn, character_id, memory, max_memories=self.max_memories_per_character)
            rows.touch(conn, character_id)
        return memory

    def add_turn(self, character_id: str, speaker_id: str, text: str, *, kind: str = "line") -> Turn:
        """Record a line (or, with kind "event", an event caused by `speaker_id`) in the recent turns."""
        turn = parse(Turn, {"speaker_id": speaker_id, "text": text, "kind": kind}, character_id=character_id)
        with self.transaction() as conn:
            rows.require_character(conn, character_id)
            self._require_speaker(conn, speaker_id, character_id)
            rows.insert_turn(conn, character_id, turn, max_turns=self.max_turns_per_character)
            rows.touch(conn, character_id)
        return turn

    @staticmethod
    def _profile(conn: sqlite3.Connection, character_id: str) -> dict[str, Any]:
        return rows.load_profile(conn, character_id)

    @staticmethod
    def _require_speaker(conn: sqlite3.Connection, speaker_id: Any, character_id: str) -> str:
        if not isinstance(speaker_id, str):
            raise StateError(f"speaker id must be a string, got {type(speaker_id).__name__}",
                             field="speaker_id", character_id=character_id)
        return rows.speaker_name(conn, speaker_id, character_id=character_id)

    # -- speakers --------------------------------------------------------------------------------

    def upsert_speaker(self, speaker: Speaker | Mapping[str, Any]) -> Speaker:
        """Register someone who talks to characters without being one (the player)."""
        value = parse(Speaker, speaker)
        with self.transaction() as conn:
            rows.write_speaker(conn, value)
        return value

    def speaker_name(self, speaker_id: str) -> str:
        """The display name of a character or registered speaker. Raises UnknownSpeakerError."""
        with self.reading() as conn:
            return self._require_speaker(conn, speaker_id, "")

    def list_speakers(self) -> list[Speaker]:
        with self.reading() as conn:
            return rows.load_speakers(conn)

    def delete_speaker(self, speaker_id: str) -> bool:
        """Remove a registered speaker; True when one was removed."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM speakers WHERE id = ?", (speaker_id,)).rowcount > 0

    # -- world facts ------------------------------------------------------------------------------

    def set_world_fact(self, key: str, text: str, salience: float = 0.5) -> WorldFact:
        """Set a world fact. A change (not the same value set again) refuses the replies in flight
        that were prepared on the old world (epochs.py)."""
        fact = parse(WorldFact, {"key": key, "text": text, "salience": salience})
        with self.transaction() as conn:
            stored = conn.execute("SELECT text, salience FROM world_facts WHERE key = ?", (key,)).fetchone()
            if stored is not None and (stored[0], stored[1]) == (fact.text, fact.salience):
                return fact
            if stored is None and conn.execute("SELECT COUNT(*) FROM world_facts").fetchone()[0] >= MAX_WORLD_FACTS:
                raise StateError(f"the world holds {MAX_WORLD_FACTS} facts (the limit); delete one or change "
                                 "an existing key", field="key")
            rows.write_world_fact(conn, fact)
            epochs.bump(conn, epochs.WORLD)
        return fact

    def get_world_fact(self, key: str) -> WorldFact | None:
        with self.reading() as conn:
            row = conn.execute("SELECT text, salience FROM world_facts WHERE key = ?", (key,)).fetchone()
        return None if row is None else parse(WorldFact, {"key": key, "text": row[0], "salience": row[1]})

    def list_world_facts(self) -> list[WorldFact]:
        with self.reading() as conn:
            return rows.load_world_facts(conn)

    def delete_world_fact(self, key: str) -> bool:
        with self.transaction() as conn:
            is_deleted = conn.execute("DELETE FROM world_facts WHERE key = ?", (key,)).rowcount > 0
            if is_deleted:
                epochs.bump(conn, epochs.WORLD)
            return is_deleted

    def integrity_check(self) -> str:
        """SQLite's own check of the file; 'ok' when healthy."""
        with self.reading() as conn:
            return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))

"""The state database's schema, as an ordered list of migrations.

`schema_version` holds one row: the number of migrations applied. Opening a database runs the
missing ones, each in its own transaction, so a crash mid-upgrade leaves the last good version.
A database newer than this code is refused rather than guessed at. To change the schema, append
a migration; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "read_version", "migrate"]

MIGRATIONS: tuple[str, ...] = (
    # 1: characters and what they hold, speakers, world facts, save slots.
    """
    CREATE TABLE characters (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        persona TEXT NOT NULL,
        speaking_style TEXT NOT NULL,
        knowledge TEXT NOT NULL,            -- JSON list of strings
        mood TEXT NOT NULL,
        flags TEXT NOT NULL,                -- JSON object of scalars
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE relationships (
        character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
        other_id TEXT NOT NULL,
        trust INTEGER NOT NULL,
        affinity INTEGER NOT NULL,
        familiarity INTEGER NOT NULL,
        PRIMARY KEY (character_id, other_id)
    ) WITHOUT ROWID;
    CREATE TABLE memories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        salience REAL NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX memories_by_character ON memories (character_id, id);
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
        speaker_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX turns_by_character ON turns (character_id, id);
    CREATE TABLE speakers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL
    );
    CREATE TABLE world_facts (
        key TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        salience REAL NOT NULL
    );
    CREATE TABLE snapshots (
        name TEXT PRIMARY KEY,
        scope TEXT NOT NULL,                -- 'world' or 'character'
        character_id TEXT,
        created_ms INTEGER NOT NULL,
        schema_version INTEGER NOT NULL,
        data BLOB NOT NULL                  -- msgpack, see snapshots.py
    );
    """,
    # 2: replies applied under an idempotency key (a cluster's retried say lands once).
    """
    CREATE TABLE applied_replies (
        key TEXT PRIMARY KEY,
        result TEXT NOT NULL,               -- JSON: the changes and turns the reply made
        created_ms INTEGER NOT NULL
    );
    """,
    # 3: full-text indexes of memories and world facts, for relevance to a turn (relevance.py);
    # turns that record a game event rather than a line. External content: the text lives once,
    # in its table; the triggers keep the index in step.
    """
    ALTER TABLE turns ADD COLUMN kind TEXT NOT NULL DEFAULT 'line';  -- 'line' or 'event'
    -- The owner is indexed too, so a search reads one character's memories, not everyone's.
    CREATE VIRTUAL TABLE memories_fts USING fts5(text, character_id, content='memories', content_rowid='id',
                                                 tokenize='porter unicode61');
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, text, character_id) VALUES (new.id, new.text, new.character_id);
    END;
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text, character_id)
            VALUES ('delete', old.id, old.text, old.character_id);
    END;
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF text, character_id ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text, character_id)
            VALUES ('delete', old.id, old.text, old.character_id);
        INSERT INTO memories_fts (rowid, text, character_id) VALUES (new.id, new.text, new.character_id);
    END;
    INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');
    CREATE VIRTUAL TABLE world_facts_fts USING fts5(text, content='world_facts', content_rowid='rowid',
                                                    tokenize='porter unicode61');
    CREATE TRIGGER world_facts_fts_insert AFTER INSERT ON world_facts BEGIN
        INSERT INTO world_facts_fts (rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE TRIGGER world_facts_fts_delete AFTER DELETE ON world_facts BEGIN
        INSERT INTO world_facts_fts (world_facts_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    END;
    CREATE TRIGGER world_facts_fts_update AFTER UPDATE OF text ON world_facts BEGIN
        INSERT INTO world_facts_fts (world_facts_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO world_facts_fts (rowid, text) VALUES (new.rowid, new.text);
    END;
    INSERT INTO world_facts_fts (world_facts_fts) VALUES ('rebuild');
    """,
    # 4: state epochs (a reply prepared before a save was loaded, its character deleted or the
    # world changed is refused: epochs.py); the idempotency key window by time as well as count
    # (keys.py), and how far it has forgotten; a cluster's run-time templates.
    """
    CREATE TABLE state_epochs (
        scope TEXT PRIMARY KEY,             -- 'world' or 'character:<id>'
        epoch INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX applied_replies_by_time ON applied_replies (created_ms);
    CREATE TABLE key_window (
        forgotten_through_ms INTEGER NOT NULL  -- the newest created_ms of a forgotten key
    );
    INSERT INTO key_window (forgotten_through_ms) VALUES (0);
    -- Templates registered with a cluster at run time (cluster/state.py); serve keeps its own in memory.
    CREATE TABLE registered_templates (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,                 -- the template's JSON
        registered_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def read_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied (0 for a new, empty database)."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not has_table:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> tuple[int, int]:
    """Apply the missing migrations; returns (version before, version after).

    Raises ValueError when the database is newer than `migrations` (the caller names the file).
    `conn` must be in autocommit mode (isolation_level=None): each step commits on its own.
    """
    before = read_version(conn)
    _check_not_newer(before, migrations)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated meanwhile.
            version = read_version(conn)
            _check_not_newer(version, migrations)
            if version == len(migrations):
                conn.execute("COMMIT")
                return before, version
            # executescript would commit on its own; run the statements inside our transaction.
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _check_not_newer(version: int, migrations: Sequence[str]) -> None:
    if version > len(migrations):
        raise ValueError(f"the database has schema version {version}; this npc-engine reads up to "
                         f"version {len(migrations)} (upgrade npc-engine to open it)")


def _statements(script: str) -> list[str]:
    """Split a migration into complete statements (sqlite3.complete_statement knows the grammar)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line.split("--", 1)[0].rstrip() + "\n" if "--" in line else line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements

"""Row-level reads and writes over an open SQLite connection (the caller holds the transaction).

Everything written here has already been validated by the pydantic models; everything read is
validated again on the way out, so a hand-edited database cannot smuggle bad state into a prompt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..errors import StateError, UnknownCharacterError, UnknownSpeakerError
from .model import Character, Memory, Relationship, Speaker, Turn, WorldFact, now_ms, parse

__all__ = [
    "character_exists",
    "require_character",
    "load_profile",
    "load_character",
    "set_profile_column",
    "touch",
    "load_relationship",
    "write_relationship",
    "write_character",
    "delete_character",
    "load_speakers",
    "write_speaker",
    "load_world_facts",
    "write_world_fact",
    "speaker_name",
    "display_name",
    "insert_memory",
    "insert_turn",
]

_PROFILE_COLUMNS = ("name", "persona", "speaking_style", "knowledge", "mood", "flags")
_JSON_COLUMNS = ("knowledge", "flags")


def character_exists(conn: sqlite3.Connection, character_id: str) -> bool:
    return conn.execute("SELECT 1 FROM characters WHERE id = ?", (character_id,)).fetchone() is not None


def require_character(conn: sqlite3.Connection, character_id: str) -> None:
    if not character_exists(conn, character_id):
        raise UnknownCharacterError(f"no character has id {character_id!r}", field="character_id",
                                    character_id=character_id)


def load_profile(conn: sqlite3.Connection, character_id: str) -> dict[str, Any]:
    """The character's own columns (no relationships, memories or turns), not yet validated."""
    row = conn.execute(f"SELECT {', '.join(_PROFILE_COLUMNS)} FROM characters WHERE id = ?",
                       (character_id,)).fetchone()
    if row is None:
        raise UnknownCharacterError(f"no character has id {character_id!r}", field="character_id",
                                    character_id=character_id)
    data: dict[str, Any] = {"id": character_id}
    for column, value in zip(_PROFILE_COLUMNS, row):
        data[column] = json.loads(value) if column in _JSON_COLUMNS else value
    return data


def load_character(conn: sqlite3.Connection, character_id: str) -> Character:
    data = load_profile(conn, character_id)
    data["relationships"] = {
        other: {"trust": t, "affinity": a, "familiarity": f} for other, t, a, f in conn.execute(
            "SELECT other_id, trust, affinity, familiarity FROM relationships WHERE character_id = ? "
            "ORDER BY other_id", (character_id,))}
    data["memories"] = [
        {"text": text, "salience": salience, "created_ms": created} for text, salience, created in conn.execute(
            "SELECT text, salience, created_ms FROM memories WHERE character_id = ? ORDER BY id",
            (character_id,))]
    data["recent_turns"] = [
        {"speaker_id": speaker, "text": text, "created_ms": created, "kind": kind}
        for speaker, text, created, kind in conn.execute(
            "SELECT speaker_id, text, created_ms, kind FROM turns WHERE character_id = ? ORDER BY id",
            (character_id,))]
    return parse(Character, data, character_id=character_id)


def write_character(conn: sqlite3.Connection, character: Character, fields: Iterable[str] | None = None) -> None:
    """Insert `character`, or overwrite only `fields` of the stored one (None: every field)."""
    fields = set(Character.model_fields) if fields is None else set(fields)
    values = {c: _column_value(character, c) for c in _PROFILE_COLUMNS}
    if not character_exists(conn, character.id):
        conn.execute(f"INSERT INTO characters (id, {', '.join(_PROFILE_COLUMNS)}, updated_ms) "
                     f"VALUES (?, {', '.join('?' for _ in _PROFILE_COLUMNS)}, ?)",
                     (character.id, *values.values(), now_ms()))
        fields = set(Character.model_fields)
    else:
        changed = [c for c in _PROFILE_COLUMNS if c in fields]
        conn.execute(f"UPDATE characters SET {''.join(f'{c} = ?, ' for c in changed)}updated_ms = ? WHERE id = ?",
                     (*(values[c] for c in changed), now_ms(), character.id))
    if "relationships" in fields:
        conn.execute("DELETE FROM relationships WHERE character_id = ?", (character.id,))
        conn.executemany(
            "INSERT INTO relationships (character_id, other_id, trust, affinity, familiarity) VALUES (?, ?, ?, ?, ?)",
            [(character.id, other, r.trust, r.affinity, r.familiarity) for other, r in character.relationships.items()])
    if "memories" in fields:
        conn.execute("DELETE FROM memories WHERE character_id = ?", (character.id,))
        for memory in character.memories:
            insert_memory(conn, character.id, memory, max_memories=None)
    if "recent_turns" in fields:
        conn.execute("DELETE FROM turns WHERE character_id = ?", (character.id,))
        for turn in character.recent_turns:
            insert_turn(conn, character.id, turn, max_turns=None)


def _column_value(character: Character, column: str) -> Any:
    value = getattr(character, column)
    return json.dumps(value, ensure_ascii=False) if column in _JSON_COLUMNS else value


def touch(conn: sqlite3.Connection, character_id: str) -> None:
    conn.execute("UPDATE characters SET updated_ms = ? WHERE id = ?", (now_ms(), character_id))


def delete_character(conn: sqlite3.Connection, character_id: str) -> None:
    require_character(conn, character_id)
    conn.execute("DELETE FROM characters WHERE id = ?", (character_id,))  # children cascade


def set_profile_column(conn: sqlite3.Connection, character_id: str, column: str, value: Any) -> None:
    if column not in _PROFILE_COLUMNS:
        raise StateError(f"{column!r} is not a profile column (one of {sorted(_PROFILE_COLUMNS)})")
    stored = json.dumps(value, ensure_ascii=False) if column in _JSON_COLUMNS else value
    conn.execute(f"UPDATE characters SET {column} = ?, updated_ms = ? WHERE id = ?",
                 (stored, now_ms(), character_id))


def load_relationship(conn: sqlite3.Connection, character_id: str, other_id: str) -> Relationship:
    row = conn.execute("SELECT trust, affinity, familiarity FROM relationships WHERE character_id = ? "
                       "AND other_id = ?", (character_id, other_id)).fetchone()
    return Relationship() if row is None else Relationship(trust=row[0], affinity=row[1], familiarity=row[2])


def write_relationship(conn: sqlite3.Connection, character_id: str, other_id: str, value: Relationship) -> None:
    conn.execute(
        "INSERT INTO relationships (character_id, other_id, trust, affinity, familiarity) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (character_id, other_id) DO UPDATE SET trust = excluded.trust, "
        "affinity = excluded.affinity, familiarity = excluded.familiarity",
        (character_id, other_id, value.trust, value.affinity, value.familiarity))
    touch(conn, character_id)


def insert_memory(conn: sqlite3.Connection, character_id: str, memory: Memory, *, max_memories: int | None) -> None:
    """Append a memory; past `max_memories`, the least salient (then oldest) ones are forgotten."""
    conn.execute("INSERT INTO memories (character_id, text, salience, created_ms) VALUES (?, ?, ?, ?)",
                 (character_id, memory.text, memory.salience, memory.created_ms))
    if max_memories is not None:
        (count,) = conn.execute("SELECT COUNT(*) FROM memories WHERE character_id = ?", (character_id,)).fetchone()
        if count > max_memories:
            conn.execute("DELETE FROM memories WHERE id IN (SELECT id FROM memories WHERE character_id = ? "
                         "ORDER BY salience ASC, id ASC LIMIT ?)", (character_id, count - max_memories))


def last_turn(conn: sqlite3.Connection, character_id: str) -> tuple[str, str, str] | None:
    """(speaker_id, text, kind) of the character's newest turn, or None."""
    return conn.execute("SELECT speaker_id, text, kind FROM turns WHERE character_id = ? ORDER BY id DESC LIMIT 1",
                        (character_id,)).fetchone()


def insert_turn(conn: sqlite3.Connection, character_id: str, turn: Turn, *, max_turns: int | None) -> None:
    """Append a turn; only the newest `max_turns` are kept."""
    conn.execute("INSERT INTO turns (character_id, speaker_id, text, created_ms, kind) VALUES (?, ?, ?, ?, ?)",
                 (character_id, turn.speaker_id, turn.text, turn.created_ms, turn.kind))
    if max_turns is not None:
        conn.execute("DELETE FROM turns WHERE character_id = ? AND id <= (SELECT id FROM turns WHERE "
                     "character_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (character_id, character_id, max_turns))


def load_speakers(conn: sqlite3.Connection) -> list[Speaker]:
    return [parse(Speaker, {"id": i, "name": n, "description": d})
            for i, n, d in conn.execute("SELECT id, name, description FROM speakers ORDER BY id")]


def write_speaker(conn: sqlite3.Connection, speaker: Speaker) -> None:
    conn.execute("INSERT INTO speakers (id, name, description) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE "
                 "SET name = excluded.name, description = excluded.description",
                 (speaker.id, speaker.name, speaker.description))


def speaker_name(conn: sqlite3.Connection, speaker_id: str, *, character_id: str | None = None) -> str:
    """The display name of a character or registered speaker; UnknownSpeakerError otherwise."""
    name = display_name(conn, speaker_id)
    if name is None:
        raise UnknownSpeakerError(
            f"speaker {speaker_id!r} is neither a character nor a registered speaker "
            "(register the player with Store.upsert_speaker)", speaker_id=speaker_id, character_id=character_id)
    return name


def display_name(conn: sqlite3.Connection, entity_id: str) -> str | None:
    """The name of a character or registered speaker with this id, or None."""
    row = conn.execute("SELECT name FROM characters WHERE id = ? UNION ALL SELECT name FROM speakers WHERE id = ?",
                       (entity_id, entity_id)).fetchone()
    return None if row is None else str(row[0])


def load_world_facts(conn: sqlite3.Connection) -> list[WorldFact]:
    return [parse(WorldFact, {"key": k, "text": t, "salience": s})
            for k, t, s in conn.execute("SELECT key, text, salience FROM world_facts ORDER BY key")]


def write_world_fact(conn: sqlite3.Connection, fact: WorldFact) -> None:
    conn.execute("INSERT INTO world_facts (key, text, salience) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET text = excluded.text, salience = excluded.salience", (fact.key, fact.text, fact.salience))

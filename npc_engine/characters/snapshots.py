"""Named snapshots for game save slots: the whole world, or one character.

A snapshot is one msgpack map (the same bytes in the database and in an exported file):

    {"format": "npc-engine.snapshot", "schema_version": 1, "name": str, "scope": "world"|"character",
     "character_id": str|None, "created_ms": int, "crc32": int, "body": bin}

`body` is a msgpack map {"characters": [...], "speakers": [...], "world_facts": [...]} in the
shape of the pydantic models; `crc32` covers `body`, so a truncated or damaged file is refused
before anything is changed. Loading is one transaction.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from ..bounds import MAX_WORLD_FACTS
from ..errors import NpcEngineError, SnapshotError, SnapshotVersionError, StateError, UnknownSnapshotError
from . import epochs, rows
from .model import ID_PATTERN, Character, SnapshotInfo, Speaker, WorldFact, now_ms, parse
from .schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Snapshots", "SnapshotInfo", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = "npc-engine.snapshot"
MAX_SNAPSHOT_BYTES = 1 << 30


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not re.fullmatch(ID_PATTERN, name):
        raise SnapshotError(f"snapshot name must match {ID_PATTERN}, got {name!r}")
    return name


class Snapshots:
    """`store.snapshots`: save / load / list / delete / export / import (files or bytes)."""

    def __init__(self, store: "Store") -> None:
        self._store = store

    def save(self, name: str, *, character_id: str | None = None) -> SnapshotInfo:
        """Save the whole world (or one character) under `name`, replacing a slot of that name."""
        name = _check_name(name)
        with self._store.transaction() as conn:
            if character_id is None:
                body = {"characters": [rows.load_character(conn, c).model_dump() for (c,) in
                                       conn.execute("SELECT id FROM characters ORDER BY id").fetchall()],
                        "speakers": [s.model_dump() for s in rows.load_speakers(conn)],
                        "world_facts": [f.model_dump() for f in rows.load_world_facts(conn)]}
            else:
                body = {"characters": [rows.load_character(conn, character_id).model_dump()],
                        "speakers": [], "world_facts": []}
            created_ms = now_ms()
            blob = encode(body, name=name, character_id=character_id, created_ms=created_ms)
            info = SnapshotInfo(name=name, scope="world" if character_id is None else "character",
                                character_id=character_id, created_ms=created_ms, schema_version=SCHEMA_VERSION,
                                num_bytes=len(blob))
            conn.execute("INSERT OR REPLACE INTO snapshots (name, scope, character_id, created_ms, schema_version, "
                         "data) VALUES (?, ?, ?, ?, ?, ?)", (name, info.scope, character_id, info.created_ms,
                                                            SCHEMA_VERSION, blob))
        return info

    def load(self, name: str) -> SnapshotInfo:
        """Restore a slot: a world snapshot replaces every character, speaker and world fact;
        a character snapshot replaces that one character. Replies still in flight on the state it
        replaced are refused (epochs.py). Raises UnknownSnapshotError, SnapshotError."""
        with self._store.transaction() as conn:
            info, body = decode(self._blob(conn, name), origin=f"snapshot {name!r}")
            epochs.bump(conn, epochs.WORLD if info.scope == "world" else epochs.character_scope(str(info.character_id)))
            if info.scope == "world":
                conn.execute("DELETE FROM characters")
                conn.execute("DELETE FROM speakers")
                conn.execute("DELETE FROM world_facts")
                for speaker in body["speakers"]:
                    rows.write_speaker(conn, speaker)
                for fact in body["world_facts"]:
                    rows.write_world_fact(conn, fact)
            for character in body["characters"]:
                if rows.character_exists(conn, character.id):
                    rows.delete_character(conn, character.id)
                rows.write_character(conn, character)
        return info

    def list(self) -> list[SnapshotInfo]:
        with self._store.reading() as conn:
            return [SnapshotInfo(name=n, scope=s, character_id=c, created_ms=t, schema_version=v, num_bytes=b)
                    for n, s, c, t, v, b in conn.execute(
                        "SELECT name, scope, character_id, created_ms, schema_version, length(data) "
                        "FROM snapshots ORDER BY name")]

    def delete(self, name: str) -> None:
        with self._store.transaction() as conn:
            if conn.execute("DELETE FROM snapshots WHERE name = ?", (name,)).rowcount == 0:
                raise UnknownSnapshotError(f"no snapshot is named {name!r}")

    def export_bytes(self, name: str) -> tuple[SnapshotInfo, bytes]:
        """A slot's bytes, exactly as `export` writes them (for a game's own save file)."""
        with self._store.reading() as conn:
            blob = self._blob(conn, name)
        return decode(blob, origin=f"snapshot {name!r}")[0], blob

    def import_bytes(self, blob: bytes, *, name: str | None = None, origin: str = "the snapshot") -> SnapshotInfo:
        """Validate exported bytes (format, schema version, checksum, every value) and store them as
        a slot (under `name`, default their own name); nothing is applied until `load`, and nothing
        at all changes when they are refused. Raises SnapshotError / SnapshotVersionError."""
        if len(blob) > MAX_SNAPSHOT_BYTES:
            raise SnapshotError(f"{origin} is larger than {MAX_SNAPSHOT_BYTES} bytes")
        info, _ = decode(blob, origin=origin)
        if name is not None and name != info.name:
            info = info.model_copy(update={"name": _check_name(name)})
        with self._store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO snapshots (name, scope, character_id, created_ms, schema_version, "
                         "data) VALUES (?, ?, ?, ?, ?, ?)", (info.name, info.scope, info.character_id,
                                                            info.created_ms, info.schema_version, blob))
        return info

    def export(self, name: str, path: str | Path) -> SnapshotInfo:
        """Write a slot to one msgpack file (atomically: a crash leaves the old file or the new one)."""
        info, blob = self.export_bytes(name)
        target = Path(path)
        try:
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
                tmp.write(blob)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, target)
        except OSError as exc:
            raise SnapshotError(f"cannot write snapshot file {str(target)!r}: {exc}") from exc
        return info

    def import_file(self, path: str | Path, *, name: str | None = None) -> SnapshotInfo:
        """Validate an exported file and store it as a slot (under `name`, default its own name).
        Nothing is applied until `load`. Raises SnapshotError / SnapshotVersionError naming the file."""
        source = Path(path)
        try:
            if source.stat().st_size > MAX_SNAPSHOT_BYTES:
                raise SnapshotError(f"snapshot file {str(source)!r} is larger than {MAX_SNAPSHOT_BYTES} bytes")
            blob = source.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot file {str(source)!r}: {exc}") from exc
        return self.import_bytes(blob, name=name, origin=f"snapshot file {str(source)!r}")

    @staticmethod
    def _blob(conn: sqlite3.Connection, name: str) -> bytes:
        row = conn.execute("SELECT data FROM snapshots WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownSnapshotError(f"no snapshot is named {name!r}")
        return bytes(row[0])


def encode(body: dict[str, Any], *, name: str, character_id: str | None, created_ms: int) -> bytes:
    packed = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb({
        "format": SNAPSHOT_FORMAT, "schema_version": SCHEMA_VERSION, "name": name,
        "scope": "world" if character_id is None else "character", "character_id": character_id,
        "created_ms": created_ms, "crc32": zlib.crc32(packed), "body": packed}, use_bin_type=True)


def decode(blob: bytes, *, origin: str) -> tuple[SnapshotInfo, dict[str, list[Any]]]:
    """Check and parse a snapshot; every failure is a SnapshotError naming `origin`."""
    envelope = _unpack(blob, origin, "snapshot")
    if not isinstance(envelope, dict) or envelope.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{origin} is not an npc-engine snapshot")
    version = envelope.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SnapshotError(f"{origin} has no valid schema_version")
    if version > SCHEMA_VERSION:
        raise SnapshotVersionError(
            f"{origin} was written with state schema version {version}; this npc-engine reads up to "
            f"version {SCHEMA_VERSION} (upgrade npc-engine to load it)",
            snapshot_version=version, supported_version=SCHEMA_VERSION)
    body_bytes = envelope.get("body")
    if not isinstance(body_bytes, bytes) or zlib.crc32(body_bytes) != envelope.get("crc32"):
        raise SnapshotError(f"{origin} is damaged (its checksum does not match)")
    body = _unpack(body_bytes, origin, "snapshot body")
    try:
        info = SnapshotInfo(name=_check_name(envelope.get("name")), scope=envelope.get("scope"),
                            character_id=envelope.get("character_id"), created_ms=envelope.get("created_ms"),
                            schema_version=version, num_bytes=len(blob))
        if not isinstance(body, dict):
            raise SnapshotError("its body is not a map")
        parsed = {"characters": [parse(Character, c) for c in _list(body, "characters")],
                  "speakers": [parse(Speaker, s) for s in _list(body, "speakers")],
                  "world_facts": [parse(WorldFact, f) for f in _list(body, "world_facts")]}
        if info.scope == "character" and [c.id for c in parsed["characters"]] != [info.character_id]:
            raise SnapshotError("a character snapshot must hold exactly its own character")
        if len(parsed["world_facts"]) > MAX_WORLD_FACTS:
            raise SnapshotError(f"it holds {len(parsed['world_facts'])} world facts; at most {MAX_WORLD_FACTS}")
    except (NpcEngineError, ValueError) as exc:
        message = exc.message if isinstance(exc, (StateError, SnapshotError)) else str(exc).splitlines()[0]
        raise SnapshotError(f"{origin} holds invalid state: {message}") from None
    return info, parsed


def _unpack(data: bytes, origin: str, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
        raise SnapshotError(f"{origin} is truncated or not a {what} ({type(exc).__name__}: {exc})") from None


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise SnapshotError(f"{key!r} is not a list")
    return value

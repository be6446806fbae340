"""The idempotency key window: a retried reply lands once, or is refused, never applied twice.

A reply applied under a key stores the key with what it wrote, in the same transaction. Keys are
kept for `key_window_s` (an hour by default) and at most `max_applied_keys` (100,000) of them;
beyond either bound the oldest are forgotten, and `key_window.forgotten_through_ms` remembers the
newest one forgotten. A retry names when its first attempt was sent: when its key is not found
but the first attempt is not newer than that mark (less a clock margin), the key may have been
applied and forgotten, so the retry is refused with `KeyExpiredError` instead of applied again.
A gateway retries within seconds (cluster/gateway.py), far inside the window.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ..errors import KeyExpiredError

__all__ = ["CLOCK_MARGIN_MS", "DEFAULT_KEY_WINDOW_S", "DEFAULT_MAX_APPLIED_KEYS", "ReplyKey", "lookup", "record"]

DEFAULT_KEY_WINDOW_S = 3600.0
DEFAULT_MAX_APPLIED_KEYS = 100_000
# How far the clock of a retry's sender (a gateway) may be ahead of the state service's.
CLOCK_MARGIN_MS = 60_000


@dataclass(frozen=True)
class ReplyKey:
    """An idempotency key. `first_sent_ms` (ms since the Unix epoch, the sender's clock): set on a
    retry, when its first attempt was sent; None on a first attempt (a fresh key cannot have
    landed before)."""

    value: str
    first_sent_ms: int | None = None


def wall_ms() -> int:
    return int(time.time() * 1000)


def lookup(conn: sqlite3.Connection, key: ReplyKey, *, character_id: str | None = None) -> dict[str, Any] | None:
    """What the key's reply stored, or None when it never landed. Raises KeyExpiredError when a
    retry's key may have been forgotten."""
    row = conn.execute("SELECT result FROM applied_replies WHERE key = ?", (key.value,)).fetchone()
    if row is not None:
        return json.loads(row[0])
    if key.first_sent_ms is not None:
        forgotten_through_ms = conn.execute("SELECT forgotten_through_ms FROM key_window").fetchone()[0]
        if key.first_sent_ms <= forgotten_through_ms + CLOCK_MARGIN_MS:
            raise KeyExpiredError(
                f"a retry of key {key.value!r}, first sent at {key.first_sent_ms} ms, came after keys up to "
                f"{forgotten_through_ms} ms were forgotten (the key window); it may have landed already, so it "
                "is not applied again", field="key", character_id=character_id)
    return None


def record(conn: sqlite3.Connection, key: ReplyKey, result: dict[str, Any], *, window_s: float,
           max_keys: int) -> None:
    """Store the key with its result, then forget keys beyond the window (the caller holds the
    transaction, so the key lands with the changes it describes)."""
    now_ms = wall_ms()
    conn.execute("INSERT INTO applied_replies (key, result, created_ms) VALUES (?, ?, ?)",
                 (key.value, json.dumps(result), now_ms))
    # Two indexed ranges (by time, by rowid): usually both empty, so an apply stays cheap.
    oldest_kept_ms = now_ms - int(window_s * 1000)
    newest_rowid = conn.execute("SELECT MAX(rowid) FROM applied_replies").fetchone()[0]
    beyond_count = newest_rowid - max_keys
    newest_forgotten = max(
        conn.execute("SELECT MAX(created_ms) FROM applied_replies WHERE created_ms < ?", (oldest_kept_ms,)).fetchone()[0]
        or 0,
        conn.execute("SELECT MAX(created_ms) FROM applied_replies WHERE rowid <= ?", (beyond_count,)).fetchone()[0]
        or 0)
    if newest_forgotten:
        conn.execute("UPDATE key_window SET forgotten_through_ms = MAX(forgotten_through_ms, ?)", (newest_forgotten,))
        conn.execute("DELETE FROM applied_replies WHERE created_ms < ?", (oldest_kept_ms,))
        conn.execute("DELETE FROM applied_replies WHERE rowid <= ?", (beyond_count,))

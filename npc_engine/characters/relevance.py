"""Which memories and world facts matter for this turn: what the prompt keeps when it must drop
facts.

Each fact gets a score; when the prompt does not fit, the lowest scores go first:

    score = RELEVANCE_WEIGHT * relevance + SALIENCE_WEIGHT * salience + RECENCY_WEIGHT * recency

- relevance, 0..1: SQLite FTS5's bm25 of the fact against the turn's words (the player's line),
  divided by the best bm25 among this character's facts for the turn, so the best match is 1 and
  a fact that shares no word is 0. Words are lower-cased and Porter-stemmed (`swords` matches
  `sword`); stop words and words under three letters are not searched.
- salience, 0..1: as stored (a `remember` effect's, or the game's).
- recency, 0..1: a memory's place in time among the character's memories (the newest 1, the
  oldest near 0); world facts count as current (1).

So a fact that shares the turn's words outranks any fact that shares none (1.0 > 0.5 + 0.25),
and among facts equally relevant, salience and then recency decide. With no searchable word in
the turn, salience and recency alone decide (ties: memories before world facts, older first).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

__all__ = ["FactRelevance", "RECENCY_WEIGHT", "RELEVANCE_WEIGHT", "SALIENCE_WEIGHT", "fact_score",
           "read_relevance", "search_terms"]

RELEVANCE_WEIGHT = 1.0
SALIENCE_WEIGHT = 0.5
RECENCY_WEIGHT = 0.25
MAX_SEARCH_TERMS = 24

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORDS = frozenset(
    "the and for are but not you your yours with have has had was were this that these those from they them "
    "their there here what when where which who whom why how can could would should will shall may might must "
    "does did done any all some one our ours out into onto over about just than then also very much many more "
    "most such only own same too its let get got say says said tell told "
    "him his her hers she he we us me my mine".split())


@dataclass(frozen=True)
class FactRelevance:
    """Relevance (0..1) of a character's memories (in the character's order) and of world facts
    (by key) to one turn; empty when the turn had no searchable word."""

    memories: tuple[float, ...] = ()
    world: dict[str, float] = field(default_factory=dict)


def search_terms(text: str) -> list[str]:
    """The turn's searchable words, lower-cased, first occurrence order, at most MAX_SEARCH_TERMS."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) >= 3 and word not in _STOP_WORDS and word not in terms:
            terms.append(word)
    return terms[:MAX_SEARCH_TERMS]


def read_relevance(conn: sqlite3.Connection, character_id: str, text: str) -> FactRelevance:
    """bm25 of the character's memories (in `load_character`'s order: by id) and of every world
    fact against `text`, scaled so the best match is 1."""
    terms = search_terms(text)
    if not terms:
        return FactRelevance()
    memory_ids = [row[0] for row in conn.execute(
        "SELECT id FROM memories WHERE character_id = ? ORDER BY id", (character_id,))]
    # Each term and the owner quoted (phrases: no FTS5 operator can be injected); any term may match.
    words = " OR ".join(_quoted(term) for term in terms)
    # The owner phrase narrows the match to this character's memories (ids that tokenize alike,
    # "brom-1" and "brom_1", are told apart by the join). CROSS JOIN keeps the match as the outer
    # loop: left to itself the planner walks the memories and runs the match once per memory
    # (52 ms instead of 1.4 ms for 500). Weight 0 for the owner column: it is not relevance.
    memory_bm25 = dict(conn.execute(
        "SELECT m.id, bm25(memories_fts, 1.0, 0.0) FROM memories_fts CROSS JOIN memories m "
        "ON m.id = memories_fts.rowid WHERE memories_fts MATCH ? AND m.character_id = ?",
        (f"character_id : {_quoted(character_id)} AND text : ({words})", character_id)).fetchall())
    world_bm25 = dict(conn.execute(
        "SELECT w.key, bm25(world_facts_fts) FROM world_facts_fts CROSS JOIN world_facts w "
        "ON w.rowid = world_facts_fts.rowid WHERE world_facts_fts MATCH ?", (words,)).fetchall())
    # bm25() is lower for better matches (negative); the best of this turn's matches scales to 1.
    best = max((-score for score in [*memory_bm25.values(), *world_bm25.values()]), default=0.0)
    if best <= 0.0:
        return FactRelevance()
    return FactRelevance(memories=tuple(max(0.0, -memory_bm25.get(i, 0.0)) / best for i in memory_ids),
                         world={key: max(0.0, -score) / best for key, score in world_bm25.items()})


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def fact_score(relevance: float, salience: float, recency: float) -> float:
    return RELEVANCE_WEIGHT * relevance + SALIENCE_WEIGHT * salience + RECENCY_WEIGHT * recency

"""Relevant memories: the facts a prompt keeps when it must drop some are ranked against the turn
with SQLite FTS5 (bm25), salience and recency (npc_engine/characters/relevance.py), on a real
store and the tiny model's real tokenizer."""

from __future__ import annotations

import random
import sqlite3

import pytest

from npc_engine import Store
from npc_engine.characters import PromptBuilder, read_prompt_inputs
from npc_engine.characters.relevance import read_relevance, search_terms
from npc_engine.characters.schema import MIGRATIONS, migrate

ORDER = "Aria ordered a longsword with a silver hilt, to be ready before the frost."
FILLER_WORDS = ("window broke rain cart goat bread well market lantern ale roof fence horse barrel wheat "
                "mill river bridge candle soup cloak boots hammer anvil coal bellows chimney stool").split()


def filler(rng: random.Random) -> str:
    return "The " + " ".join(rng.sample(FILLER_WORDS, 5)) + "."


@pytest.fixture
def blacksmith(tmp_path):
    """Brom holding 500 memories; the one about the order is the oldest and the least salient."""
    rng = random.Random(7)
    memories = [{"text": ORDER, "salience": 0.05, "created_ms": 0}]
    memories += [{"text": filler(rng), "salience": rng.uniform(0.3, 1.0), "created_ms": i + 1} for i in range(499)]
    with Store(tmp_path / "npc.db") as store:
        store.upsert_speaker({"id": "player", "name": "Aria"})
        store.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith.", "memories": memories})
        yield store


def prompt_for(engine, store, utterance: str, num_fact_lines: int = 4):
    """The prompt under a budget with room for about `num_fact_lines` facts of the order's length."""
    inputs = read_prompt_inputs(store, "brom", "player", utterance)
    bare = PromptBuilder(engine.prompts).build(
        inputs.character.model_copy(update={"memories": []}), speaker_id="player", speaker_name="Aria",
        utterance=utterance).num_tokens
    room = num_fact_lines * engine.prompts.count_tokens(f"- {ORDER}\n") + engine.prompts.count_tokens("What you remember:\n")
    builder = PromptBuilder(engine.prompts, max_prompt_tokens=bare + room)
    return builder.build_from(inputs, "player", utterance)


def test_the_memory_that_shares_the_turns_words_is_in_the_prompt(engine, blacksmith):
    built = prompt_for(engine, blacksmith, "Is my longsword ready yet?")
    assert built.num_facts_dropped > 450  # only a few of the 500 fit
    assert ORDER in built.prompt
    # Strict: the same memory is dropped when the turn does not share its words.
    unrelated = prompt_for(engine, blacksmith, "Good morning to you.")
    assert unrelated.num_facts_dropped > 450 and ORDER not in unrelated.prompt


def test_words_match_by_stem_and_a_world_fact_can_win(engine, blacksmith):
    assert ORDER in prompt_for(engine, blacksmith, "What about the swords and hilts?").prompt  # stems
    blacksmith.set_world_fact("siege", "Raiders besiege the eastern gate.", salience=0.1)
    blacksmith.set_world_fact("weather", "The weather is mild.", salience=1.0)
    built = prompt_for(engine, blacksmith, "Who besieges the gate?")
    assert "Raiders besiege" in built.prompt


def test_search_terms_drop_stop_words_and_cannot_inject_fts_syntax(blacksmith):
    assert search_terms("Is THE longsword, the LONGSWORD, ready?! a an of") == ["longsword", "ready"]
    hostile = 'sword" OR NEAR(a b) * ^hilt AND NOT "} {col: x'
    with blacksmith.reading() as conn:
        relevance = read_relevance(conn, "brom", hostile)  # no FTS5 syntax error
    assert relevance.memories[0] == 1.0  # "hilt" matched the order, as a plain word
    with blacksmith.reading() as conn:
        assert read_relevance(conn, "brom", "a an of to").memories == ()  # nothing to search


def test_the_index_follows_every_change(blacksmith):
    def matches(term: str) -> int:
        with blacksmith.reading() as conn:
            memories = conn.execute("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?", (term,)).fetchone()[0]
            world = conn.execute("SELECT count(*) FROM world_facts_fts WHERE world_facts_fts MATCH ?", (term,)).fetchone()[0]
        return memories + world

    assert matches("longsword") == 1
    blacksmith.add_memory("brom", "Aria paid for the longsword.", 0.9)
    assert matches("longsword") == 2 and matches("paid") == 1
    blacksmith.set_world_fact("market", "Market day is Tuesday.")
    blacksmith.set_world_fact("market", "Market day moved to Friday.")
    assert matches("tuesday") == 0 and matches("friday") == 1
    blacksmith.delete_world_fact("market")
    assert matches("friday") == 0
    blacksmith.delete_character("brom")  # memories go by cascade: so do their index rows
    assert matches("longsword") == 0 and matches("paid") == 0
    assert blacksmith.integrity_check() == "ok"


def test_an_older_database_gets_its_index_on_upgrade(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn, MIGRATIONS[:2])  # the schema before relevance
    conn.execute("INSERT INTO characters VALUES ('brom', 'Brom', 'A smith.', '', '[]', 'calm', '{}', 0)")
    conn.execute("INSERT INTO memories (character_id, text, salience, created_ms) VALUES ('brom', ?, 0.1, 0)", (ORDER,))
    conn.execute("INSERT INTO world_facts VALUES ('siege', 'Raiders besiege the gate.', 0.5)")
    conn.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        with store.reading() as conn:
            relevance = read_relevance(conn, "brom", "my longsword, and the siege raiders")
        assert relevance.memories == (1.0,) or relevance.memories[0] > 0
        assert relevance.world["siege"] > 0


def test_a_say_ranks_facts_against_its_own_line(engine, blacksmith):
    from npc_engine import Dialogue

    budget = prompt_for(engine, blacksmith, "Is my longsword ready yet?").num_tokens + 8
    with Dialogue(engine, blacksmith, max_prompt_tokens=budget) as dialogue:
        built, _ = dialogue.prepare("brom", "player", "Is my   longsword ready yet?")
    assert built.num_facts_dropped > 450 and ORDER in built.prompt

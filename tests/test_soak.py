"""The soak (bench/soak.py): its ledger catches every kind of violation it reports (so a clean run
means something), and a 60-second run against a real `serve`, killed with SIGKILL and restarted,
finds none."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from soak_ledger import Outcome, Seen, check_after, check_load, expected_after_reply  # noqa: E402

BEFORE = Seen(trust=5, mood="neutral", flags=(), turns=(("player", "old question?", "line"), ("brom", "Old.", "line")))
FIELDS = {"say": "Aye, the mill.", "emotion": "happy", "trust_delta": 2, "ends_conversation": False}
QUESTION = "brom question 7?"


def _kinds(violations) -> list[str]:
    return [v.kind for v in violations]


def test_an_applied_reply_must_be_in_the_state_exactly():
    applied = expected_after_reply(BEFORE, "brom", QUESTION, FIELDS, is_event=False)
    assert applied.turns[-2:] == (("player", QUESTION, "line"), ("brom", "Aye, the mill.", "line"))
    assert (applied.trust, applied.mood, dict(applied.flags)) == (7, "happy", {"conversation_over": False})
    assert check_after("brom", BEFORE, applied, Outcome.APPLIED, text=QUESTION, fields=FIELDS) == []
    assert _kinds(check_after("brom", BEFORE, BEFORE, Outcome.APPLIED, text=QUESTION, fields=FIELDS)) == ["lost"]
    other_line = dataclasses.replace(applied, turns=(*applied.turns[:-1], ("brom", "Something else.", "line")))
    assert _kinds(check_after("brom", BEFORE, other_line, Outcome.APPLIED, text=QUESTION, fields=FIELDS)) \
        == ["contradicted"]
    no_trust = dataclasses.replace(applied, trust=BEFORE.trust)
    assert _kinds(check_after("brom", BEFORE, no_trust, Outcome.APPLIED, text=QUESTION, fields=FIELDS)) \
        == ["half_applied"]


def test_a_cancelled_or_refused_reply_must_leave_no_trace():
    applied = expected_after_reply(BEFORE, "brom", QUESTION, FIELDS, is_event=False)
    assert check_after("brom", BEFORE, BEFORE, Outcome.UNCHANGED, text=QUESTION) == []
    assert _kinds(check_after("brom", BEFORE, applied, Outcome.UNCHANGED, text=QUESTION)) == ["contradicted"]
    assert check_after("brom", BEFORE, dataclasses.replace(BEFORE, mood="angry"), Outcome.UNCHANGED, text=QUESTION)


def test_an_unanswered_reply_is_all_or_nothing_and_once():
    applied = expected_after_reply(BEFORE, "brom", QUESTION, FIELDS, is_event=False)
    assert check_after("brom", BEFORE, BEFORE, Outcome.UNKNOWN, text=QUESTION) == []
    assert check_after("brom", BEFORE, applied, Outcome.UNKNOWN, text=QUESTION) == []
    no_flag = dataclasses.replace(applied, flags=())
    assert _kinds(check_after("brom", BEFORE, no_flag, Outcome.UNKNOWN, text=QUESTION)) == ["half_applied"]
    trust_only = dataclasses.replace(BEFORE, trust=9)
    assert _kinds(check_after("brom", BEFORE, trust_only, Outcome.UNKNOWN, text=QUESTION)) == ["half_applied"]
    twice = expected_after_reply(applied, "brom", QUESTION, FIELDS, is_event=False)
    assert _kinds(check_after("brom", applied, twice, Outcome.UNKNOWN, text=QUESTION)) == ["applied_twice"]


def test_a_load_must_restore_its_slot():
    slot = dataclasses.replace(BEFORE, trust=-4, mood="sad")
    assert check_load("brom", BEFORE, slot, slot, Outcome.APPLIED) == []
    assert _kinds(check_load("brom", BEFORE, BEFORE, slot, Outcome.APPLIED)) == ["lost"]
    assert check_load("brom", BEFORE, BEFORE, slot, Outcome.UNKNOWN) == []
    assert check_load("brom", BEFORE, slot, slot, Outcome.UNKNOWN) == []
    assert _kinds(check_load("brom", BEFORE, slot, slot, Outcome.UNCHANGED)) == ["contradicted"]


def test_a_sixty_second_soak_of_serve_with_kills_finds_no_violation():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "60", "--clients", "32",
                          "--kill-every", "15", "30"], capture_output=True, text=True, timeout=540)
    table = run.stdout
    assert run.returncode == 0, table[-4000:] + run.stderr[-4000:]
    for kind in ("lost", "contradicted", "half_applied", "applied_twice"):
        assert f"| violations: {kind} | 0 |" in table
    assert "kills" in table and ", 0 kills" not in table  # the server really was killed
    assert "| ops say:applied |" in table and "| ops load:applied |" in table

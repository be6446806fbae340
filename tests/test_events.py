"""Game events as a turn, NPC-to-NPC lines, and the per-character event gate (coalescing, minimum
interval), through `Dialogue` with the real tiny model and store, and over the wire."""

from __future__ import annotations

import pytest

from npc_engine import PromptError, RateLimitedError, RequestError, UnknownSpeakerError
from npc_engine.client import Client
from npc_engine.dialogue import SayHandle
from npc_engine.dialogue.events import CoalescedEvent, EventGate
from npc_engine.engine import FinishReason
from npc_engine.errors import ServerError
from npc_engine.protocol import Limits

from .server_helpers import Raw, make_server, running
from .test_say import REPLY, make_engine

ENTERS = "Aria walks into the forge."


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def world(backend):
    engine, store, dialogue = make_engine(backend)
    store.upsert_character({"id": "mira", "name": "Mira", "persona": "A sharp-eyed baker."})
    clock = Clock()
    dialogue.events = EventGate(1000.0, clock=clock)
    yield engine, store, dialogue, clock
    dialogue.close()
    engine.close()


def test_an_event_is_laid_out_as_an_event_and_recorded_as_one(world):
    engine, store, dialogue, _ = world
    built, text = dialogue.prepare("brom", "player", "  Aria walks\ninto the forge. ", is_event=True)
    assert text == ENTERS  # normalized as a line is: no forged layout lines
    assert built.prompt.endswith(f"Event: {text}") and "says:" not in built.prompt
    assert "How you feel about Aria:" in built.prompt  # the causer
    reply = dialogue.react("brom", ENTERS, causer_id="player", template="reply", seed=1)
    assert reply.finish_reason == FinishReason.COMPLETE and not reply.coalesced
    turns = store.get_character("brom").recent_turns
    assert [(t.kind, t.speaker_id, t.text) for t in turns[:1]] == [("event", "player", ENTERS)]
    assert turns[1].kind == "line" and turns[1].speaker_id == "brom"
    assert any(c.path == "relationships.player.trust" for c in reply.changes)
    # The next prompt shows it in the conversation as an event.
    later, _ = dialogue.prepare("brom", "player", "Hello again.")
    assert f"Event: {ENTERS}" in later.prompt and "Aria says: Hello again." in later.prompt


def test_an_event_nobody_caused_changes_no_relationship(world):
    engine, store, dialogue, _ = world
    built, _ = dialogue.prepare("brom", None, "Thunder shakes the rafters.", is_event=True)
    assert "How you feel about" not in built.prompt and built.prompt.endswith("Event: Thunder shakes the rafters.")
    reply = dialogue.react("brom", "Thunder shakes the rafters.", template="reply", seed=2)
    assert reply.speaker_id is None
    assert not any(c.kind == "relationship" for c in reply.changes) and any(c.kind == "mood" for c in reply.changes)
    brom = store.get_character("brom")
    assert brom.relationships == {} and brom.recent_turns[0].speaker_id == "brom"  # witnessed by itself
    assert brom.recent_turns[0].kind == "event"


def test_two_npcs_talk_and_each_keeps_its_own_view(world):
    engine, store, dialogue, clock = world
    reply = dialogue.say("brom", "mira", "Your bread was late today.", template="reply", seed=3)
    line = reply.fields["line"]
    brom, mira = store.get_character("brom"), store.get_character("mira")
    assert [(t.speaker_id, t.text) for t in brom.recent_turns] == [("mira", "Your bread was late today."),
                                                                  ("brom", line)]
    assert [(t.speaker_id, t.text) for t in mira.recent_turns] == [("mira", "Your bread was late today."),
                                                                  ("brom", line)]
    assert "mira" in brom.relationships and mira.relationships == {}  # only the one who replied changed
    # Mira answers Brom's line: it is already in her turns (she heard it), so it is not recorded twice.
    answer = dialogue.say("mira", "brom", line, template="reply", seed=4)
    mira = store.get_character("mira")
    assert "brom" in mira.relationships and answer.fields is not None
    assert [(t.speaker_id, t.text) for t in mira.recent_turns] == [
        ("mira", "Your bread was late today."), ("brom", line), ("mira", answer.fields["line"])]
    assert [t.text for t in store.get_character("brom").recent_turns][-2:] == [line, answer.fields["line"]]
    prompt, _ = dialogue.prepare("mira", "brom", "And?")
    assert f"Brom: {line}" in prompt.prompt  # Mira remembers what Brom said to her


def test_bad_events_and_speakers_change_nothing(world):
    engine, store, dialogue, _ = world
    before = store.get_character("brom")
    with pytest.raises(RequestError, match="cannot speak to itself"):
        dialogue.submit("brom", "brom", "Hello, me.", template="reply")
    with pytest.raises(RequestError, match="only an event may have none"):
        dialogue.submit("brom", None, "Hello.", template="reply")
    with pytest.raises(PromptError, match="the event is 501 characters; at most 500"):
        dialogue.submit("brom", "player", "x" * 501, template="reply", is_event=True)
    with pytest.raises(PromptError, match="the event is empty"):
        dialogue.submit("brom", "player", " \n ", template="reply", is_event=True)
    with pytest.raises(UnknownSpeakerError):
        dialogue.submit("brom", "ghost", ENTERS, template="reply", is_event=True)
    assert store.get_character("brom") == before
    dialogue.react("brom", ENTERS, causer_id="player", template="reply", seed=5)  # the refusals left no debt


def test_events_while_one_is_answered_share_its_reply_and_floods_are_refused(world):
    engine, store, dialogue, clock = world
    first = dialogue.submit("brom", "player", ENTERS, template="reply", seed=6, is_event=True)
    second = dialogue.submit("brom", "player", "Aria waves.", template="reply", seed=7, is_event=True,
                             request_id="second")
    assert isinstance(first, SayHandle) and isinstance(second, CoalescedEvent)
    with pytest.raises(RateLimitedError, match="answering an event with template 'reply'"):
        dialogue.submit("brom", "player", ENTERS, template=OTHER, is_event=True)
    engine.wait(first.request, 60)
    shared, joined = first.result(60), second.result(60)
    assert joined.coalesced and not shared.coalesced and joined.request_id == "second"
    assert joined.fields == shared.fields and joined.changes == shared.changes
    assert [t.text for t in store.get_character("brom").recent_turns if t.kind == "event"] == [ENTERS]
    clock.now_s += 0.4
    with pytest.raises(RateLimitedError) as refused:
        dialogue.submit("brom", "player", ENTERS, template="reply", is_event=True)
    assert refused.value.retry_after_ms == pytest.approx(600.0, abs=1.0)
    dialogue.say("brom", "player", "A line is never rate limited.", template="reply", seed=8)
    clock.now_s += 0.7
    third = dialogue.react("brom", "Aria leaves.", causer_id="player", template="reply", seed=9)
    assert not third.coalesced and third.fields is not None
    other = dialogue.react("mira", ENTERS, causer_id="player", template="reply", seed=10)  # per character
    assert other.fields is not None


def test_a_cancelled_coalesced_event_leaves_the_shared_reply_running(world):
    engine, store, dialogue, clock = world
    first = dialogue.submit("brom", "player", ENTERS, template="reply", seed=11, is_event=True)
    second = dialogue.submit("brom", "player", ENTERS, template="reply", is_event=True)
    second.cancel()
    cancelled = second.result(1)
    assert cancelled.finish_reason == FinishReason.CANCELLED and cancelled.fields is None and cancelled.coalesced
    engine.wait(first.request, 60)
    assert first.result(60).finish_reason == FinishReason.COMPLETE


OTHER = {**REPLY, "name": "other_reply"}


@pytest.fixture
def server(backend):
    server = make_server(backend, limits=Limits(min_event_interval_ms=60_000))
    server.engine.register_template(REPLY)
    server.store.upsert_character({"id": "mira", "name": "Mira", "persona": "A sharp-eyed baker."})
    with running(server):
        yield server


def test_events_over_the_wire(server):
    with Client(server.endpoint, timeout_s=60) as client:
        hello = client.hello()
        assert "events" in hello.capabilities and hello.limits["min_event_interval_ms"] == 60_000
        reply = client.react("brom", ENTERS, causer_id="player", template="reply", seed=1)
        assert reply.finish_reason == "complete" and reply.speaker_id == "player" and reply.coalesced is False
        turns = client.get_character("brom").recent_turns
        assert turns[0].kind == "event" and turns[0].text == ENTERS
        with pytest.raises(ServerError) as refused:
            client.react("brom", "Aria waves.", template="reply")
        assert refused.value.code == "rate_limited" and 0 < refused.value.details["retry_after_ms"] <= 60_000
        nobody = client.react("mira", "The bell rings.", template="reply", seed=2)
        assert nobody.speaker_id is None and nobody.fields is not None
        npc = client.say("mira", "brom", "Morning, Brom.", template="reply", seed=3)
        assert npc.speaker_id == "brom"


def test_events_coalesce_over_the_wire(server):
    raw = Raw(server.endpoint)
    try:
        for request_id in ("e1", "e2", "e3"):  # in one burst: two of them join the one admitted first
            raw.request("say", request_id, character_id="brom", speaker_id="player", event=ENTERS,
                        template="reply", stream=False)
        replies = {r["request_id"]: r for r in raw.replies(3, timeout_s=60)}
        assert set(replies) == {"e1", "e2", "e3"} and all(r["ok"] for r in replies.values())
        # Workers may take them in any order: whichever was admitted first ran, the others joined it.
        assert sorted(r["result"]["coalesced"] for r in replies.values()) == [False, True, True]
        assert len({str(r["result"]["fields"]) for r in replies.values()}) == 1
    finally:
        raw.close()


@pytest.mark.parametrize("fields, code", [
    ({"speaker_id": "player", "text": "Hi.", "event": ENTERS}, "invalid_request"),
    ({"speaker_id": "player"}, "invalid_request"),
    ({"text": "Hi."}, "invalid_request"),
    ({"speaker_id": "brom", "text": "Hi."}, "invalid_request"),
    ({"speaker_id": "ghost", "event": ENTERS}, "unknown_speaker"),
    ({"speaker_id": "player", "event": "x" * 501}, "invalid_prompt"),
    ({"speaker_id": "player", "event": ""}, "invalid_prompt"),
])
def test_bad_event_requests_get_their_codes(server, fields, code):
    raw = Raw(server.endpoint)
    try:
        raw.request("say", "bad", character_id="brom", template="reply", **fields)
        [reply] = raw.replies(1)
        assert not reply["ok"] and reply["error"]["code"] == code, reply
    finally:
        raw.close()
    assert server.store.get_character("brom").recent_turns == []

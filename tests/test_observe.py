"""`observe` (protocol 1.2): the server's activity as a bounded, numbered stream, and
`template.check`. Real server on loopback, tiny model, the Python client."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from npc_engine import ConfigError, ServerError
from npc_engine.client import Client
from npc_engine.server.observe import ObserveHub

from .conftest import SHOPKEEPER_TEMPLATE
from .server_helpers import make_server, running


def _collect(client: Client, since: int, num_replies: int, *, debug: bool = False, timeout_s: float = 60.0):
    """Poll until `num_replies` say.reply events arrived; (events, next_seq)."""
    events, deadline = [], time.monotonic() + timeout_s
    while sum(e.kind == "say.reply" for e in events) < num_replies and time.monotonic() < deadline:
        result = client.observe(since, debug=debug)
        assert result.num_dropped == 0
        events += result.events
        since = result.next_seq
        time.sleep(0.05)
    return events, since


def test_events_arrive_in_order_per_say_and_match_the_replies(backend):
    with running(make_server(backend, max_steps=4)) as server, Client(server.endpoint) as client:
        client.upsert_character({"id": "mira", "name": "Mira", "persona": "A bard."})
        first = client.observe()  # from now on the server is observed
        assert (first.events, first.num_dropped) == ([], 0)
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda args: client.say(args[0], "player", args[1], template="shopkeeper_reply",
                                                            seed=args[2]),
                                    [("brom", "Any work?", 1), ("mira", "Sing for me.", 2), ("brom", "Rope?", 3)]))
        events, _ = _collect(client, first.next_seq, 3)
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # consecutive: nothing lost, nothing twice
    by_say: dict[str, list] = {}
    for event in events:
        if event.say_id is not None:
            by_say.setdefault(event.say_id, []).append(event)
    assert len(by_say) == 3
    texts = {}
    for say_events in by_say.values():
        kinds = [e.kind for e in say_events]
        assert kinds[0] == "say.start" and kinds[-1] == "say.reply" and set(kinds[1:-1]) <= {"say.draft"}
        assert kinds.count("say.draft") >= 1  # observed says stream drafts even though nobody asked
        steps = [e.draft.num_steps for e in say_events if e.kind == "say.draft"]
        assert steps == sorted(steps)
        start, reply = say_events[0].start, say_events[-1].reply
        texts[start.text] = reply
        assert start.speaker_id == "player" and start.template == "shopkeeper_reply"
        assert reply.prompt is not None and reply.prompt.num_tokens == reply.num_prompt_tokens
    for said, text in zip(replies, ["Any work?", "Sing for me.", "Rope?"]):
        observed = texts[text]
        assert observed.fields == said.fields and observed.num_steps == said.num_steps
        assert [c.model_dump() for c in observed.changes] == [c.model_dump() for c in said.changes]


def test_debug_records_every_step_of_the_canvas(backend):
    with running(make_server(backend, max_steps=4)) as server, Client(server.endpoint) as client:
        since = client.observe(debug=True).next_seq
        said = client.say("brom", "player", "Show me your wares.", template="shopkeeper_reply", seed=5)
        events, _ = _collect(client, since, 1, debug=True)
    canvas = [step for e in events if e.kind == "say.draft" for step in e.draft.canvas]
    # Every step but the last renders a draft (the last one finishes the say instead).
    assert [step.step for step in canvas] == list(range(1, said.num_steps))
    canvas_length = server.engine.backend.canvas_length
    for step in canvas:
        assert len(step.tokens) == len(step.states) == canvas_length
        assert set(step.states) <= {"s", "a", "r"} and "s" in step.states
    # The skeleton stays clamped at the same positions in every step.
    assert len({tuple(i for i, s in enumerate(step.states) if s == "s") for step in canvas}) == 1


def test_nothing_is_recorded_while_nobody_observes(backend):
    with running(make_server(backend)) as server, Client(server.endpoint) as client:
        client.say("brom", "player", "Hello.", template="shopkeeper_reply", seed=1)
        assert client.observe().events == []


def test_a_slow_observer_loses_the_oldest_events_and_nobody_waits(backend):
    with running(make_server(backend, max_steps=4, observe_capacity=8)) as server, Client(server.endpoint) as client:
        client.observe()
        for seed in range(4):  # each say: a start, drafts, a reply: well over 8 events in all
            assert client.say("brom", "player", "Again?", template="shopkeeper_reply", seed=seed).fields
        late = client.observe(0, max_events=1000)
    assert late.capacity == 8 and len(late.events) == 8
    newest = late.events[-1].seq
    assert [e.seq for e in late.events] == list(range(newest - 7, newest + 1))
    assert late.num_dropped == newest - 8  # 1 .. newest-8 are gone
    assert late.events[-1].kind == "say.reply"


def test_the_ring_reads_by_sequence_number():
    hub = ObserveHub(capacity=3)
    for index in range(5):
        hub.publish("say.error", f"s{index}", error={"code": "internal", "message": str(index)})
    result = hub.read(0, 10)
    assert [e.seq for e in result.events] == [3, 4, 5] and result.num_dropped == 2 and result.next_seq == 6
    assert [e.seq for e in hub.read(4, 10).events] == [4, 5] and hub.read(4, 10).num_dropped == 0
    assert [e.seq for e in hub.read(2, 1).events] == [3] and hub.read(2, 1).next_seq == 4
    future = hub.read(100, 10)  # a cursor from before a restart: read from now on
    assert future.events == [] and future.next_seq == 6
    with pytest.raises(ConfigError):
        ObserveHub(capacity=0)


def test_observe_refuses_bad_cursors(backend):
    with running(make_server(backend)) as server, Client(server.endpoint) as client:
        for fields in ({"since": -1}, {"max_events": 0}, {"max_events": 5000}, {"since": "3"}):
            with pytest.raises(ServerError) as info:
                client.request("observe", **fields)
            assert info.value.code == "invalid_request"
        assert client.ping()  # still serving


def test_template_check_validates_without_registering(backend):
    with running(make_server(backend)) as server, Client(server.endpoint) as client:
        shopkeeper = json.loads(Path(SHOPKEEPER_TEMPLATE).read_text())
        plan = client.check_template({**shopkeeper, "name": "draft_reply"})
        assert plan.name == "draft_reply" and plan.canvas_length == server.engine.backend.canvas_length
        assert [s.name for s in plan.slots] == [s["name"] for s in shopkeeper["slots"]]
        assert plan.num_slot_tokens == sum(s.num_tokens for s in plan.slots)
        with pytest.raises(ServerError) as info:
            client.check_template({"name": "broken", "slots": [{"name": "x", "kind": "choice", "options": []}]})
        assert info.value.code == "invalid_template"
        assert "draft_reply" not in [t.name for t in client.list_templates()]


def test_a_refused_say_is_observed_as_a_start_and_its_error(backend):
    with running(make_server(backend)) as server, Client(server.endpoint) as client:
        since = client.observe().next_seq
        with pytest.raises(ServerError) as info:
            client.say("nobody", "player", "Hello?", template="shopkeeper_reply")
        events = client.observe(since).events
    assert [e.kind for e in events] == ["say.start", "say.error"] and events[0].say_id == events[1].say_id
    assert events[0].start.character_id == "nobody"
    assert (events[1].error.code, events[1].error.message) == (info.value.code, info.value.server_message)

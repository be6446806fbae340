"""Pattern text slots end to end in-process: a template whose line must match a pattern, its
placeholders filled from state and per say, every draft and the reply matching it (tiny random
model and the built-in model), and the refusals at registration and at submit."""

from __future__ import annotations

import re

import pytest

from npc_engine import Dialogue, Store, TemplateError
from npc_engine.diffusion import DiffusionSettings
from npc_engine.engine import Engine
from npc_engine.templates.placeholders import fill_placeholders
from npc_engine.training.line_pattern import world_line_pattern

GREETING = r"(Hello|Bah|Well met), {player}\. (I am {name}\.|Welcome to {town}\.|Safe roads\.)"
TEMPLATE = {"name": "greeting", "slots": [
    {"name": "say", "kind": "text", "max_tokens": 24, "pattern": GREETING},
    {"name": "emotion", "kind": "choice", "options": ["glad", "cross"]}],
    "effects": [{"kind": "set_mood", "slot": "emotion"}]}


def _world(engine: Engine) -> tuple[Store, Dialogue]:
    store = Store(":memory:")
    store.upsert_speaker({"id": "player", "name": "Aria"})
    store.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."})
    store.set_world_fact("town", "Thornvale")
    return store, Dialogue(engine, store)


@pytest.fixture(scope="module")
def tiny(backend):
    settings = DiffusionSettings.from_generation_config(backend.model.generation_config)
    engine = Engine(backend, settings.with_overrides(max_denoising_steps=4))
    engine.register_template(TEMPLATE)
    return engine


def test_every_draft_and_the_reply_match_with_names_from_state(tiny):
    store, dialogue = _world(tiny)
    expected = fill_placeholders(GREETING, {"player": "Aria", "name": "Brom", "town": "Thornvale"})
    for seed in range(6):
        drafts = []
        handle = dialogue.submit("brom", "player", "Hi!", template="greeting", seed=seed,
                                 on_draft=lambda draft: drafts.append(draft.fields["say"]))
        tiny.wait(handle.request)
        result = handle.result(30)
        assert re.fullmatch(expected, result.fields["say"]), result.fields["say"]
        assert drafts and all(re.fullmatch(expected, line) for line in drafts), drafts
        assert store.get_character("brom").recent_turns[-1].text == result.fields["say"]


def test_a_say_overrides_values_and_refuses_bad_ones_before_queueing(tiny):
    store, dialogue = _world(tiny)
    result = dialogue.say("brom", "player", "Hi!", template="greeting", seed=1, values={"player": "Old Tom"})
    assert result.fields["say"].split(",")[0] in ("Hello", "Bah", "Well met") and ", Old Tom." in result.fields["say"]
    before = store.get_character("brom")
    with pytest.raises(TemplateError, match=r"value of \{player\}.*quote") as bad:
        dialogue.say("brom", "player", "Hi!", template="greeting", values={"player": 'Aria"'})
    assert bad.value.template == "greeting" and bad.value.slot == "say"
    store.delete_world_fact("town")
    with pytest.raises(TemplateError, match=r"placeholder \{town\} has no value"):
        dialogue.say("brom", "player", "Hi!", template="greeting")
    assert store.get_character("brom") == before  # nothing queued, nothing written


def test_patterns_are_refused_at_registration_when_they_cannot_fit(tiny):
    too_long = {"name": "long", "slots": [{"name": "say", "kind": "text", "max_tokens": 2,
                                           "pattern": r"Well met, traveller, and welcome to the forge\."}]}
    with pytest.raises(TemplateError, match="shortest line its pattern allows takes"):
        tiny.register_template(too_long)
    with pytest.raises(TemplateError, match="not a regular expression"):
        tiny.register_template({"name": "bad", "slots": [{"name": "say", "kind": "text", "pattern": "(Hi"}]})
    assert "long" not in tiny.templates and "bad" not in tiny.templates


def test_the_built_in_model_speaks_its_world_lines_with_the_right_names():
    engine = Engine.from_pretrained()
    authored = {"name": "authored", "slots": [
        {"name": "say", "kind": "text", "max_tokens": 32, "pattern": world_line_pattern()},
        {"name": "emotion", "kind": "choice", "options": ["happy", "angry", "afraid", "sad", "curious",
                                                          "neutral", "suspicious"]}]}
    engine.register_template(authored)
    store, dialogue = _world(engine)
    values = {"signature": "Steel never lies", "role": "the smith"}
    expected = fill_placeholders(world_line_pattern(), {"player": "Aria", "name": "Brom", "town": "Thornvale",
                                                       **values})
    lines = [dialogue.say("brom", "player", text, template="authored", seed=seed, values=values).fields["say"]
             for seed, text in enumerate(["Hello there.", "I want to buy rope.", "You are a fool.",
                                          "Heard any rumours?"])]
    assert all(re.fullmatch(expected, line) for line in lines), lines
    assert not any(name in line for line in lines for name in ("Lira", "Bram", "Cass"))  # other players' names
    engine.close()


def test_pattern_templates_and_values_over_the_wire(backend):
    from npc_engine import ServerError
    from npc_engine.client import Client

    from .server_helpers import make_server, running

    with running(make_server(backend)) as server, Client(server.endpoint, timeout_s=60) as client:
        assert "patterns" in client.hello().capabilities
        client.register_template(TEMPLATE)
        stream = client.say_stream("brom", "player", "Hi!", template="greeting", seed=2,
                                   values={"town": "Ashford"})
        drafts = [draft.fields["say"] for draft in stream]
        expected = fill_placeholders(GREETING, {"player": "Aria", "name": "Brom", "town": "Ashford"})
        assert re.fullmatch(expected, stream.result().fields["say"])
        assert drafts and all(re.fullmatch(expected, line) for line in drafts), drafts
        with pytest.raises(ServerError) as missing:
            client.say("brom", "player", "Hi!", template="greeting")  # no town in the world, none given
        assert missing.value.code == "invalid_template" and "{town}" in missing.value.server_message
        with pytest.raises(ServerError) as bad:
            client.say("brom", "player", "Hi!", template="greeting", values={"town": "a" * 65})
        assert bad.value.code == "invalid_request"  # over the wire's 64 characters: refused at the boundary
        with pytest.raises(ServerError) as too_many:
            client.say("brom", "player", "Hi!", template="greeting", values={f"v{n}": "x" for n in range(33)})
        assert too_many.value.code == "invalid_request"  # at most 32 values a say
        assert client.ping()


def test_the_onnx_runner_resolves_patterns_the_same_way():
    from npc_engine.models import default_model_dir, default_onnx_dir

    engine = Engine.from_pretrained(default_onnx_dir(), backend="onnx", num_threads=1)
    engine.register_template(default_model_dir() / "templates" / "shopkeeper_authored.json")
    values = {"player": "Aria", "name": "Brom"}
    expected = fill_placeholders(engine.templates["shopkeeper_authored"].slots[0].pattern, values)
    for seed in range(3):
        fill = engine.fill("shopkeeper_authored", "Aria says: I want to buy rope.", prefix="You are Brom, a smith.",
                           seed=seed, values=values)
        assert re.fullmatch(expected, fill.fields["say"]), fill.fields["say"]
    engine.close()


GIVE = {"name": "give", "slots": [
    {"name": "say", "kind": "text", "max_tokens": 28, "pattern": r"Here, {player}\. Take it\."},
    {"name": "give_item", "kind": "choice", "options": ["nothing"]}],
    "effects": [{"kind": "remember", "slot": "give_item", "salience": 0.9}]}


GIVE_TOLD = {**GIVE, "name": "give_told", "effects": [
    {"kind": "remember", "slot": "give_item", "text": "gave {give_item} to {player} in {town}"}]}


def test_a_says_options_choose_from_the_games_current_items(tiny):
    tiny.register_template(GIVE)
    store, dialogue = _world(tiny)
    for seed in range(3):
        result = dialogue.say("brom", "player", "Give me something.", template="give", seed=seed,
                              options={"give_item": ["rope", "a lantern", "bread"]})
        assert result.fields["give_item"] in ("rope", "a lantern", "bread")
    memories = [m.text for m in store.get_character("brom").memories]
    assert memories and set(memories) <= {"rope", "a lantern", "bread"}  # the effect used the chosen value
    tiny.register_template(GIVE_TOLD)
    result = dialogue.say("brom", "player", "Give me something.", template="give_told", seed=4,
                          options={"give_item": ["rope", "bread"]}, values={"town": "Ashford"})
    told = f"gave {result.fields['give_item']} to Aria in Ashford"  # a slot, a name from state, a say's value
    assert [c.new for c in result.changes if c.kind == "memory"] == [told]
    assert store.get_character("brom").memories[-1].text == told
    before = store.get_character("brom")
    with pytest.raises(TemplateError, match=r"placeholder \{town\} has no value") as missing:
        store.delete_world_fact("town")
        dialogue.say("brom", "player", "Give.", template="give_told")
    assert missing.value.slot == "give_item" and store.get_character("brom") == before  # nothing queued
    with pytest.raises(TemplateError, match="not a choice slot") as wrong:
        dialogue.say("brom", "player", "Give.", template="give", options={"say": ["x"]})
    assert wrong.value.slot == "say"
    with pytest.raises(TemplateError, match="duplicate options"):
        dialogue.say("brom", "player", "Give.", template="give", options={"give_item": ["rope", "rope"]})


def test_options_over_the_wire(backend):
    from npc_engine import ServerError
    from npc_engine.client import Client

    from .server_helpers import make_server, running

    with running(make_server(backend)) as server, Client(server.endpoint, timeout_s=60) as client:
        client.register_template(GIVE)
        reply = client.say("brom", "player", "Give.", template="give", seed=1, options={"give_item": ["rope", "nails"]})
        assert reply.fields["give_item"] in ("rope", "nails") and reply.fields["say"] == "Here, Aria. Take it."
        client.register_template(GIVE_TOLD)
        told = client.say("brom", "player", "Give.", template="give_told", seed=1, options={"give_item": ["rope"]},
                          values={"town": "Ashford"})
        assert [c.new for c in told.changes if c.kind == "memory"] == ["gave rope to Aria in Ashford"]
        with pytest.raises(ServerError) as too_many:
            client.say("brom", "player", "Give.", template="give", options={"give_item": [f"i{n}" for n in range(257)]})
        assert too_many.value.code == "invalid_request"
        with pytest.raises(ServerError) as unknown:
            client.say("brom", "player", "Give.", template="give", options={"nope": ["x"]})
        assert unknown.value.code == "invalid_template" and "nope" in unknown.value.server_message


def _running(engine: Engine, plan, automata, seeds: list[int], *, is_traced: bool):
    from npc_engine.diffusion import RequestNoise
    from npc_engine.engine.request import Request, RequestStatus

    requests = []
    for seed in seeds:
        prefix_ids, turn_ids = engine.prompts.encode("Aria says: I want to buy rope.", "You are Brom, a smith.")
        request = Request(request_id=f"r{seed}-{bool(automata)}", plan=plan, prefix_ids=prefix_ids,
                          turn_ids=turn_ids, seed=seed, generator=RequestNoise(seed), automata=automata,
                          is_traced=is_traced)
        while request.status != RequestStatus.RUNNING:
            engine.core.runner.prefill(request)
        requests.append(request)
    return requests


@pytest.mark.parametrize("runner", ["fast", "static", "onnx"])
def test_every_step_holds_the_canvas_to_the_pattern(runner):
    """After each step, on every runner: the slot's argmax is a line the pattern accepts, then
    padding, and every position the step accepted holds that line's token (the next step denoises
    around it); the same requests without the pattern get other canvases."""
    import numpy as np

    from npc_engine.models import default_model_dir, default_onnx_dir

    engine = Engine.from_pretrained(default_onnx_dir(), backend="onnx", num_threads=1) if runner == "onnx" \
        else Engine.from_pretrained(default_model_dir(), runner=runner)
    plan = engine.compiler.compile(engine.resolve_template(default_model_dir() / "templates" / "shopkeeper_authored.json"))
    automata = engine.compiler.slot_automata(plan, {"player": "Aria", "name": "Brom"})
    slot = next(s for s in plan.slots if s.name in automata)
    span, pad = slice(slot.start, slot.start + slot.length), plan.pad_token_id
    held = _running(engine, plan, automata, [0, 1], is_traced=True)
    free = _running(engine, plan, {}, [0, 1], is_traced=False)
    num_differing = 0
    for _ in range(6):
        engine.core.runner.step(held)
        engine.core.runner.forget_batch()
        engine.core.runner.step(free)
        engine.core.runner.forget_batch()
        for request, twin in zip(held, free):
            line = np.asarray(engine.core.runner._host_ids(request.argmax_canvas))[span].tolist()
            text = line[: line.index(pad)] if pad in line else line
            assert automata[slot.name].accepts(text) and all(t == pad for t in line[len(text):]), line
            _, canvas, states = request.trace_rows[-1]
            accepted = [p for p in range(span.start, span.stop) if states[p] == "a"]
            assert accepted and all(canvas[p] == line[p - span.start] for p in accepted)
            twin_canvas = np.asarray(engine.core.runner._host_ids(twin.canvas)).tolist()
            num_differing += canvas[span] != twin_canvas[span]
    assert num_differing > 0
    engine.close()

"""The Ray Serve cluster on one machine: `ray.init(num_cpus=2)`, 2 replicas with half a CPU each,
the tiny random model. Affinity, spread, exactly-once state, backpressure, a lost replica,
scaling to 3, and the Python, Unity and Godot clients against its gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
from ray import serve

from npc_engine import BusyError, ClientTimeoutError, ServerError
from npc_engine.characters import Store
from npc_engine.characters.schema import SCHEMA_VERSION
from npc_engine.client import AsyncClient, Client
from npc_engine.cluster import APP_NAME, ClusterOptions, ReplicaOptions, deploy, start_cluster
from npc_engine.cluster.state import StateService
from npc_engine.demo.server_process import free_port
from npc_engine.server import write_curve_keys
from npc_engine.templates import load_template

from .attack_helpers import RawZmtp3, send_cross_protocol_posts
from .conftest import SHOPKEEPER_TEMPLATE
from .studio_helpers import call, studio
from .test_godot_bridge import run_godot_suite
from .test_unity_bridge import run_unity_suite

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = str(ROOT / "schemas" / "templates")
PERSONA = "A gruff smith of Thornvale."


@pytest.fixture(scope="module")
def cluster(tiny_model_dir, tmp_path_factory):
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    options = ClusterOptions(
        num_replicas=2, bind="tcp://127.0.0.1:0", db_path=str(tmp_path_factory.mktemp("cluster") / "state.db"),
        # Slowed (about one step per 50 ms frame) as for the bridge suites: a cancel sent right
        # after its say arrives first.
        replica=ReplicaOptions(model=str(tiny_model_dir), max_denoising_steps=4, frame_budget_ms=1, target_fps=20),
        template_dirs=(TEMPLATES,), num_cpus_per_replica=0.5, max_ongoing_requests=4, max_queued_requests=4)
    gateway, endpoint = start_cluster(options)
    with Client(endpoint, timeout_s=120) as client:
        client.upsert_speaker("player", "Aria")
    yield SimpleNamespace(endpoint=endpoint, options=options, address=context.address_info["address"],
                          replicas=serve.get_deployment_handle("NpcEngineReplica", app_name=APP_NAME))
    serve.shutdown()
    ray.shutdown()


def _replica_of(cluster, character_id: str) -> str:
    return cluster.replicas.options(session_id=character_id).whoami.remote(character_id).result()


def _replica_stats(client: Client) -> dict[str, dict]:
    time.sleep(2.5)  # replicas report every second
    return client.stats().engine["cluster"]["replicas"]


def test_one_character_stays_on_one_replica_and_its_second_turn_hits_the_prefix_cache(cluster):
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "brom", "name": "Brom", "persona": PERSONA})
        before = _replica_stats(client)
        replies = [client.say("brom", "player", f"Turn {turn}?", template="shopkeeper_reply", seed=turn)
                   for turn in range(20)]
        after = _replica_stats(client)
        stats = client.stats().engine
    assert all(r.finish_reason == "complete" for r in replies)
    assert replies[0].num_cached_prompt_tokens == 0
    assert all(r.num_cached_prompt_tokens > 0 for r in replies[1:])  # the persona prefix, cached
    grown = {rid: sum(s["num_finished"].values()) - sum(before.get(rid, {}).get("num_finished", {}).values())
             for rid, s in after.items()}
    assert sorted(grown.values()) == [0, 20], grown  # all 20 on one replica
    served_by = max(grown, key=grown.get)
    assert after[served_by]["prefix_cache"]["num_hits"] - before.get(served_by, {}).get(
        "prefix_cache", {}).get("num_hits", 0) >= 19
    assert {_replica_of(cluster, "brom") for _ in range(5)} == {served_by}
    assert stats["cluster"]["router"] == "consistent_hash" and stats["cluster"]["num_replicas"] == 2


def test_a_hundred_characters_land_on_both_replicas(cluster):
    homes = Counter(_replica_of(cluster, f"npc-{i}") for i in range(100))
    assert len(homes) == 2 and min(homes.values()) >= 20, homes


def test_a_reply_changes_state_exactly_once(cluster, tmp_path):
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "mara", "name": "Mara", "persona": PERSONA})
        client.say("mara", "player", "Hello?", template="shopkeeper_reply", seed=3)
        assert len(client.get_character("mara").recent_turns) == 2  # the player's line and hers
    # A retried apply (same idempotency key) changes nothing more and returns the first changes.
    state = StateService(str(tmp_path / "s.db"))
    state.call("upsert_speaker", ({"id": "player", "name": "Aria"},))
    state.call("upsert_character", ({"id": "mara", "name": "Mara", "persona": PERSONA},))
    template = load_template(SHOPKEEPER_TEMPLATE)
    fields = {"say": "Welcome.", "emotion": "happy", "action": "nod", "trust_delta": 2, "ends_conversation": False}
    first = state.apply_reply("key-1", "mara", "player", template, fields, "Hi")
    again = state.apply_reply("key-1", "mara", "player", template, {**fields, "say": "Another line."}, "Hi")
    assert (again.fields, again.changes, again.turns) == (first.fields, first.changes, first.turns)
    assert again.is_repeat and not first.is_repeat and again.fields["say"] == "Welcome."
    assert len(state.call("get_character", ("mara",)).recent_turns) == 2
    state.apply_reply("key-2", "mara", "player", template, fields, "Hi")
    assert len(state.call("get_character", ("mara",)).recent_turns) == 4
    state.close()
    assert Store(str(tmp_path / "s.db")).schema_version == SCHEMA_VERSION


def test_cluster_state_is_a_file_by_default_and_keeps_run_time_templates(tmp_path, monkeypatch, caplog):
    """A restart of the state service (no --db) keeps characters, keys and registered templates;
    `:memory:` has to be asked for, and warns."""
    monkeypatch.setenv("NPC_ENGINE_DATA_DIR", str(tmp_path))
    state = StateService(template_dirs=[TEMPLATES])
    assert state.db_path() == str(tmp_path / "cluster-state.db")
    state.call("upsert_speaker", ({"id": "player", "name": "Aria"},))
    state.call("upsert_character", ({"id": "mara", "name": "Mara", "persona": PERSONA},))
    greeting = load_template({"name": "greeting", "slots": [{"name": "line", "kind": "text", "max_tokens": 8}]})
    state.register_template(greeting)
    template = load_template(SHOPKEEPER_TEMPLATE)
    fields = {"say": "Welcome.", "emotion": "happy", "action": "nod", "trust_delta": 2, "ends_conversation": False}
    first = state.apply_reply("key-1", "mara", "player", template, fields, "Hi")
    state.close()

    restarted = StateService(template_dirs=[TEMPLATES])
    assert restarted.get_templates()["greeting"] == greeting and "shopkeeper_reply" in restarted.get_templates()
    assert restarted.call("get_character", ("mara",)).relationship("player").trust == 2
    again = restarted.apply_reply("key-1", "mara", "player", template, {**fields, "say": "Other."}, "Hi")
    assert again.is_repeat and again.fields == first.fields  # the key survived the restart too
    restarted.close()

    with caplog.at_level("WARNING", logger="npc_engine.cluster"):
        StateService(":memory:").close()
    assert "restart of its state service loses every character" in caplog.text


def test_a_cancel_is_reported_only_when_nothing_was_applied(cluster):
    """Cancels land at random points of says, some after the reply finished on its replica: a
    reply says `cancelled` exactly when nothing was recorded, and otherwise is the recorded line."""
    rng = random.Random(7)
    outcomes = Counter()
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "vela", "name": "Vela", "persona": PERSONA})
        for number in range(24):
            question = f"Question {number}?"
            stream = client.say_stream("vela", "player", question, template="shopkeeper_reply", seed=number)
            time.sleep(rng.uniform(0.0, 0.5))  # a say takes about 4 frames of 50 ms here, plus round trips
            try:
                stream.cancel()
            except ServerError as exc:  # its reply came first: nothing left to cancel
                assert exc.code == "unknown_request"
            reply = stream.result()
            turns = [t.text for t in client.get_character("vela").recent_turns]
            if reply.finish_reason == "cancelled":
                assert question not in turns and reply.fields is None
            else:
                assert turns[-2:] == [question, reply.fields["say"]]
            outcomes[reply.finish_reason] += 1
    assert outcomes["cancelled"] >= 3 and outcomes["complete"] >= 3, outcomes  # both sides of the race ran


def test_a_save_loaded_under_a_say_is_answered_state_changed(cluster):
    """As in serve: a say in flight on a replica when a save is loaded applies nothing."""
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "ione", "name": "Ione", "persona": PERSONA})
        client.save_snapshot("ione_slot", character_id="ione")
        saved = client.get_character("ione")
        codes = []
        for attempt in range(3):  # the load must land while the say denoises (4 frames of 50 ms)
            stream = client.say_stream("ione", "player", f"Any news {attempt}?", template="shopkeeper_reply")
            next(iter(stream))
            client.load_snapshot("ione_slot")
            try:
                codes.append(stream.result().finish_reason)  # finished before the load: the load wiped it
            except ServerError as exc:
                codes.append(exc.code)
                assert exc.details["scopes"] == ["character:ione"]
            assert client.get_character("ione") == saved
            if "state_changed" in codes:
                break
    assert "state_changed" in codes, codes


def test_a_flood_gets_busy_not_a_hang(cluster):
    async def flood() -> list:
        async with AsyncClient(cluster.endpoint, timeout_s=120) as client:
            await client.upsert_character({"id": "flood", "name": "Flo", "persona": PERSONA})
            says = [client.say("flood", "player", f"{i}", template="shopkeeper_reply") for i in range(40)]
            return await asyncio.wait_for(asyncio.gather(*says, return_exceptions=True), 300)

    started = time.monotonic()
    outcomes = asyncio.run(flood())
    busy = [o for o in outcomes if isinstance(o, BusyError)]
    done = [o for o in outcomes if not isinstance(o, Exception) and o.finish_reason == "complete"]
    others = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, BusyError)]
    assert busy and done and not others, (len(busy), len(done), others[:3])
    assert time.monotonic() - started < 300


def test_python_client_ops_through_the_gateway(cluster):
    with Client(cluster.endpoint, timeout_s=120) as client:
        hello = client.hello()
        assert hello.model.path.endswith(Path(cluster.options.replica.model).name)
        # The replicas' own frame budget, not a stand-in's default.
        assert (hello.frame_budget_ms, hello.target_fps) == (cluster.options.replica.frame_budget_ms,
                                                             cluster.options.replica.target_fps) == (1, 20)
        assert client.set_world_fact("season", "It is winter.", 0.5).key == "season"
        assert client.register_template({"name": "greeting", "slots": [
            {"name": "line", "kind": "text", "max_tokens": 8},
            {"name": "mood", "kind": "choice", "options": ["calm", "wary"]}],
            "effects": [{"kind": "set_mood", "slot": "mood"}]}) == "greeting"
        client.upsert_character({"id": "tam", "name": "Tam", "persona": PERSONA})
        stream = client.say_stream("tam", "player", "Fresh bread?", template="greeting", seed=1)
        drafts = list(stream)
        final = stream.result()
        assert drafts and final.finish_reason == "complete" and [c.path for c in final.changes] == ["mood"]
        assert client.get_character("tam").mood == final.fields["mood"]
        info = client.save_snapshot("slot")
        client.delete_character("tam")
        assert client.load_snapshot("slot").name == info.name and client.get_character("tam").mood
        assert "slot" in [s.name for s in client.list_snapshots()]
        with pytest.raises(Exception, match="unknown_template|no template"):
            client.say("tam", "player", "x", template="nope")


def test_a_pattern_line_with_values_through_the_gateway(cluster):
    template = {"name": "cluster_pattern", "slots": [
        {"name": "say", "kind": "text", "max_tokens": 16, "pattern": r"(Hello|Bah), {player}\. I have {item}\."},
        {"name": "give_item", "kind": "choice", "options": ["nothing"]}]}
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "patterned", "name": "Pat", "persona": PERSONA})
        client.register_template(template)
        reply = client.say("patterned", "player", "Hello?", template="cluster_pattern", seed=1,
                           values={"item": "rope"}, options={"give_item": ["rope", "nails"]})
    assert reply.fields["say"] in ("Hello, Aria. I have rope.", "Bah, Aria. I have rope.")
    assert reply.fields["give_item"] in ("rope", "nails")


def test_the_gateway_refuses_cross_protocol_posts_and_endless_messages(cluster):
    send_cross_protocol_posts(cluster.endpoint, "world.set", lambda i: {"key": f"web-{i}", "text": "pwned"})
    attacker, num_sent = RawZmtp3(cluster.endpoint), 0
    try:
        for _ in range(128):  # 128 MiB if nothing stopped it; the gateway's limit is 4 MiB a message
            attacker.send_frame(b"x" * (1 << 20), has_more=True)
            num_sent += 1
    except OSError:
        pass
    assert attacker.is_closed_by_peer()
    attacker.close()
    assert num_sent < 64, num_sent  # the rest of what was sent before the close sat in socket buffers
    with Client(cluster.endpoint, timeout_s=60) as client:  # a real client, right after
        assert [f.key for f in client.get_world_facts() if f.key.startswith("web-")] == []
        assert client.ping()


def test_a_curve_gateway_admits_only_clients_with_its_keys(cluster, tmp_path):
    keys = write_curve_keys(tmp_path / "keys")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    process = subprocess.Popen([sys.executable, "-m", "npc_engine.cli", "cluster", "gateway", "--address",
                                cluster.address, "--bind", endpoint, "--curve-keys", str(keys)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert f"serving on {endpoint}" in process.stdout.readline()
        with Client(endpoint, timeout_s=30, curve_keys=keys) as allowed:
            assert "curve" in allowed.hello().capabilities
        with Client(endpoint, timeout_s=1.0) as plain:
            with pytest.raises(ClientTimeoutError):
                plain.ping()
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def _fresh_world(cluster) -> None:
    """The bridge suites expect the world `serve` starts them with: no characters left over from
    the tests before (a mood or a turn they assert on)."""
    with Client(cluster.endpoint, timeout_s=60) as client:
        for character_id in client.list_characters():
            client.delete_character(character_id)


def test_unity_suite_against_a_gateway(cluster, tmp_path):
    _fresh_world(cluster)
    run_unity_suite(["-m", "npc_engine.cli", "cluster", "gateway", "--address", cluster.address], tmp_path)


def test_godot_suite_against_a_gateway(cluster):
    _fresh_world(cluster)
    run_godot_suite(["-m", "npc_engine.cli", "cluster", "gateway", "--address", cluster.address])


def test_losing_a_replica_costs_a_cold_prefill_not_a_failure(cluster):
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "vin", "name": "Vin", "persona": PERSONA})
        assert client.say("vin", "player", "Warm?", template="shopkeeper_reply").finish_reason == "complete"
        home = _replica_of(cluster, "vin")
        name = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["name"].endswith(home) and "NpcEngineReplica" in a["name"])
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        reply = client.say("vin", "player", "Still there?", template="shopkeeper_reply")
        assert reply.finish_reason == "complete" and reply.num_cached_prompt_tokens == 0
        for i in range(3):
            client.upsert_character({"id": f"npc-{i}", "name": "N", "persona": PERSONA})
            assert client.say(f"npc-{i}", "player", "Hi", template="shopkeeper_reply").finish_reason == "complete"
    _wait_for_replicas(cluster, 2)


def test_scaling_from_two_to_three_moves_about_a_third(cluster):
    _wait_for_replicas(cluster, 2)
    ids = [f"npc-{i}" for i in range(150)]
    before = {cid: _replica_of(cluster, cid) for cid in ids}
    deploy(dataclasses.replace(cluster.options, num_replicas=3))
    _wait_for_replicas(cluster, 3)
    assert set(before.values()) <= set(after_ids := {_replica_of(cluster, f"probe-{i}") for i in range(60)}), after_ids
    after = {cid: _replica_of(cluster, cid) for cid in ids}
    new_replica = (set(after.values()) - set(before.values())).pop()
    moved = [cid for cid in ids if after[cid] != before[cid]]
    assert all(after[cid] == new_replica for cid in moved)  # consistent hashing: only to the newcomer
    assert 0.15 <= len(moved) / len(ids) <= 0.55, len(moved)


def _wait_for_replicas(cluster, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = serve.status().applications[APP_NAME].deployments["NpcEngineReplica"]
        if status.status == "HEALTHY" and status.replica_states.get("RUNNING", 0) == count:
            if len({_replica_of(cluster, f"probe-{i}") for i in range(60)}) == count:
                return
        time.sleep(1.0)
    raise AssertionError(f"the cluster did not reach {count} running replicas: {serve.status()}")


def test_the_studio_through_the_gateway(cluster):
    """`npc-engine studio --connect <gateway>`: state, a say, its observed events and the template
    check all go through the gateway like any client's requests."""
    with Client(cluster.endpoint, timeout_s=120) as client:
        client.upsert_character({"id": "studio_npc", "name": "Wren", "persona": PERSONA})
    with studio(cluster.endpoint) as url:
        status, listed = call(url, "/api/characters")
        assert status == 200 and "studio_npc" in [c["id"] for c in listed["characters"]]
        since = call(url, "/api/observe", {"debug": True})[1]["next_seq"]
        status, reply = call(url, "/api/say", {"character_id": "studio_npc", "speaker_id": "player",
                                               "text": "Hello?", "template": "shopkeeper_reply", "seed": 2})
        assert status == 200 and reply["finish_reason"] == "complete"
        events = call(url, "/api/observe", {"since": since, "max_events": 1000})[1]["events"]
        kinds = [e["kind"] for e in events if e["say_id"] is not None]
        assert kinds[0] == "say.start" and kinds[-1] == "say.reply" and "say.draft" in kinds
        final = [e for e in events if e["kind"] == "say.reply"][-1]["reply"]
        assert final["fields"] == reply["fields"] and final["prompt"]["num_tokens"] == reply["num_prompt_tokens"]
        # Debug tracing reaches the replica: the drafts carry the canvas.
        assert any(e["draft"]["canvas"] for e in events if e["kind"] == "say.draft")
        status, error = call(url, "/api/template/check", {"template": {"name": "bad", "slots": []}})
        assert status == 400 and error["error"]["code"] == "invalid_template"
        status, plan = call(url, "/api/template/check", {"template": load_template(SHOPKEEPER_TEMPLATE)
                                                         .model_dump(mode="json")})
        assert status == 200 and plan["name"] == "shopkeeper_reply"

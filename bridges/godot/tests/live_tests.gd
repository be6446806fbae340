extends RefCounted
## The addon against a real `npc-engine serve` (tiny model) on loopback.

const TEMPLATE := "shopkeeper_reply"

var h  # the runner (run_tests.gd)


func _setup() -> NpcClient:
	if not h.check(await h.ensure_server(), "the server started (NPC_ENGINE_PYTHON set?)"):
		return null
	var client: NpcClient = h.make_client()
	await client.upsert_speaker("player", "Aria")
	var brom := {"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale."}
	await client.upsert_character(brom)
	return client


func test_hello_checks_the_version_and_describes_the_server() -> void:
	var client := await _setup()
	if client == null:
		return
	var connected := []
	client.connected.connect(func(hello: Dictionary) -> void: connected.append(hello))
	var reply: NpcReply = await client.hello()
	h.check(reply.ok, "hello: %s" % reply)
	h.check(reply.result.get("protocol_version") == NpcConnection.PROTOCOL_VERSION, "version")
	h.check(reply.result.get("model", {}).get("num_parameters", 0) > 0, "model described")
	h.check("say" in reply.result.get("ops", []), "ops listed")
	h.check(not client.hello_result.is_empty(), "the automatic hello ran on connect")
	var ping: NpcReply = await client.ping()
	h.check(ping.ok and ping.result.server_time_ms > 0, "ping")
	h.free_client(client)


func test_characters_speakers_world_snapshots_stats() -> void:
	var client := await _setup()
	if client == null:
		return
	var mira := {
		"id": "mira",
		"name": "Mira",
		"persona": "A herbalist.",
		"flags": {"met_player": true, "coins": 12, "title": "healer"}
	}
	h.check((await client.upsert_character(mira)).ok, "upsert")
	await client.upsert_character({"id": "mira", "mood": "happy"})
	var got: NpcReply = await client.get_character("mira")
	var character: Dictionary = got.result.get("character", {})
	h.check(character.get("persona") == "A herbalist.", "fields left out keep their values")
	h.check(character.get("mood") == "happy", "mood set")
	h.check(typeof(character.get("flags", {}).get("coins")) == TYPE_INT, "int flag stays int")
	h.check("mira" in (await client.list_characters()).result.character_ids, "listed")
	h.check((await client.delete_character("mira")).ok, "deleted")
	h.check((await client.get_character("mira")).code == "unknown_character", "gone")
	var speakers: Array = (await client.list_speakers()).result.speakers
	h.check(speakers.any(func(s: Dictionary) -> bool: return s.id == "player"), "speaker listed")
	h.check((await client.set_world_fact("bridge", "The bridge is out.", 0.9)).ok, "world.set")
	var facts: Array = (await client.get_world_facts("bridge")).result.facts
	h.check(facts.size() == 1 and facts[0].text == "The bridge is out.", "world.get")
	h.check((await client.delete_world_fact("bridge")).result.is_deleted, "world.delete")
	var saved: NpcReply = await client.save_snapshot("slot_gd", "brom")
	h.check(saved.ok and saved.result.snapshot.scope == "character", "snapshot.save")
	await client.upsert_character({"id": "brom", "mood": "angry"})
	h.check((await client.load_snapshot("slot_gd")).ok, "snapshot.load")
	var brom: Dictionary = (await client.get_character("brom")).result.character
	h.check(brom.mood != "angry", "loading restores the saved state")
	var slots: Array = (await client.list_snapshots()).result.snapshots
	h.check(slots.any(func(s: Dictionary) -> bool: return s.name == "slot_gd"), "listed")
	h.check((await client.delete_snapshot("slot_gd")).ok, "snapshot.delete")
	var stats: NpcReply = await client.stats()
	h.check(stats.ok and stats.result.has("engine") and stats.result.has("server"), "stats")
	h.free_client(client)


func test_templates_register_and_list() -> void:
	var client := await _setup()
	if client == null:
		return
	var path: String = h.schemas_dir.path_join("templates").path_join("shopkeeper_reply.json")
	var registered: NpcReply = await client.register_template_file(path)
	h.check(registered.ok and registered.result.name == TEMPLATE, "from a file: %s" % registered)
	var template := {"name": "yes_no", "slots": [{"name": "answer", "kind": "boolean"}]}
	h.check((await client.register_template(template)).ok, "from a Dictionary")
	var names: Array = (await client.list_templates()).result.templates.map(
		func(t: Dictionary) -> String: return t.name
	)
	h.check("yes_no" in names and TEMPLATE in names, "listed: %s" % [names])
	var bad: NpcReply = await client.register_template({"name": "broken", "slots": []})
	h.check(bad.code == "invalid_template", "invalid template refused: %s" % bad)
	var missing: NpcReply = await client.register_template_file("res://no/such.json")
	h.check(missing.code == "invalid_template", "missing file: %s" % missing)
	h.free_client(client)


func test_a_pattern_line_takes_the_says_values() -> void:
	var client := await _setup()
	if client == null:
		return
	var template := {
		"name": "pattern_greeting",
		"slots":
		[
			{
				"name": "say",
				"kind": "text",
				"max_tokens": 16,
				"pattern": "(Hello|Bah), {player}\\. I have {item}\\."
			},
			{"name": "give_item", "kind": "choice", "options": ["nothing"]}
		]
	}
	var registered: NpcReply = await client.register_template(template)
	h.check(registered.ok, "registered: %s" % registered)
	var request := client.say(
		"brom",
		"player",
		"Hello?",
		"pattern_greeting",
		{"seed": 4, "values": {"item": "rope"}, "options": {"give_item": ["rope", "nails"]}}
	)
	var drafts := []
	request.draft_received.connect(
		func(fields: Dictionary, _steps: int) -> void: drafts.append(fields.get("say", ""))
	)
	var reply: NpcReply = await request.wait()
	var line := RegEx.create_from_string("^(Hello|Bah), Aria\\. I have rope\\.$")
	var said: String = reply.result.get("fields", {}).get("say", "") if reply.ok else ""
	h.check(line.search(said) != null, "the line matches with the say's values: %s" % reply)
	var given: String = reply.result.get("fields", {}).get("give_item", "") if reply.ok else ""
	h.check(given in ["rope", "nails"], "the choice is one of the say's options: %s" % given)
	var bad := drafts.filter(func(d: String) -> bool: return line.search(d) == null)
	h.check(not drafts.is_empty() and bad.is_empty(), "every draft matches: %s" % [drafts])
	var missing: NpcReply = await client.say_and_wait(
		"brom", "player", "Hello?", "pattern_greeting"
	)
	h.check(
		missing.code == "invalid_template" and "{item}" in missing.message,
		"a missing value is refused: %s" % missing
	)
	h.free_client(client)


func test_say_streams_drafts_then_the_line() -> void:
	var client := await _setup()
	if client == null:
		return
	var drafts := []
	var lines := []
	client.draft.connect(
		func(id: String, who: String, fields: Dictionary) -> void: drafts.append(fields)
	)
	client.line_ready.connect(
		func(id: String, who: String, result: Dictionary) -> void: lines.append([who, result])
	)
	var request := client.say("brom", "player", "Any work for me?", TEMPLATE, {"seed": 3})
	var own_drafts := []
	request.draft_received.connect(
		func(fields: Dictionary, steps: int) -> void: own_drafts.append(steps)
	)
	var frame_ms := []
	var last := Time.get_ticks_usec()
	while not request.is_done:
		await h.process_frame
		var now := Time.get_ticks_usec()
		frame_ms.append((now - last) / 1000.0)
		last = now
	var reply: NpcReply = request.reply
	h.check(reply.ok and reply.result.finish_reason == "complete", "say: %s" % reply)
	var fields: Dictionary = reply.result.get("fields", {})
	h.check(fields.has("say") and typeof(fields.get("trust_delta")) == TYPE_INT, "fields typed")
	h.check(drafts.size() > 0 and own_drafts.size() == drafts.size(), "drafts: %d" % drafts.size())
	h.check(lines.size() == 1 and lines[0][0] == "brom", "line_ready once, for brom")
	var changes: Array = reply.result.get("changes", [])
	h.check(changes.any(func(c: Dictionary) -> bool: return c.kind == "mood"), "state changed")
	var brom: Dictionary = (await client.get_character("brom")).result.character
	h.check(brom.mood == fields.get("emotion"), "the reply's effects are applied")
	frame_ms.sort()
	print("  say: %d frames while waiting, longest %.1f ms" % [frame_ms.size(), frame_ms[-1]])
	var plain: NpcReply = await client.say_and_wait(
		"brom", "player", "Hi.", TEMPLATE, {"stream": false}
	)
	h.check(plain.ok, "say_and_wait without drafts")
	h.free_client(client)


func test_react_answers_an_event_and_two_at_once_share_one_reply() -> void:
	var client := await _setup()
	if client == null:
		return
	var id := "smith%d" % Time.get_ticks_usec()
	await client.upsert_character({"id": id, "name": "Hale", "persona": "A quiet smith."})
	var options := {"stream": false, "seed": 2}
	var first := client.react(id, "Aria walks into the forge.", TEMPLATE, "player", options)
	var second := client.react(id, "Aria walks into the forge.", TEMPLATE, "player", options)
	var one: NpcReply = await first.wait()
	var two: NpcReply = await second.wait()
	h.check(one.ok and two.ok, "both answered: %s / %s" % [one, two])
	if not (one.ok and two.ok):
		h.free_client(client)
		return
	h.check(
		one.result.coalesced != two.result.coalesced, "one answered, the other shared its reply"
	)
	h.check(one.result.fields == two.result.fields, "the same reply")
	var turns: Array = (await client.get_character(id)).result.character.recent_turns
	var events := turns.filter(func(t: Dictionary) -> bool: return t.get("kind") == "event")
	h.check(events.size() == 1 and events[0].speaker_id == "player", "one event turn: %s" % [turns])
	var itself: NpcReply = await client.say_and_wait(id, id, "Hello, me.", TEMPLATE)
	h.check(not itself.ok and itself.code == "invalid_request", "never to itself: %s" % itself)
	h.free_client(client)


func test_a_snapshot_goes_into_the_games_save_file_and_comes_back() -> void:
	var client := await _setup()
	if client == null:
		return
	var id := "keeper%d" % Time.get_ticks_usec()
	await client.upsert_character(
		{"id": id, "name": "Ione", "persona": "A keeper.", "mood": "calm"}
	)
	await client.save_snapshot("save_" + id, id)
	var exported: NpcReply = await client.export_snapshot("save_" + id)
	h.check(exported.ok and exported.result.data.size() > 0, "exported: %s" % exported)
	if not exported.ok:
		h.free_client(client)
		return
	var save_file: PackedByteArray = exported.result.data
	await client.upsert_character({"id": id, "mood": "angry"})
	var imported: NpcReply = await client.import_snapshot(save_file, "file_" + id)
	h.check(
		imported.ok and imported.result.snapshot.name == "file_" + id, "imported: %s" % imported
	)
	await client.load_snapshot("file_" + id)
	var back: Dictionary = (await client.get_character(id)).result.character
	h.check(back.mood == "calm", "the save file's state is back: %s" % back.mood)
	var damaged := save_file.duplicate()
	var middle := damaged.size() >> 1
	damaged[middle] = damaged[middle] ^ 0xFF
	var refused: NpcReply = await client.import_snapshot(damaged, "broken_" + id)
	h.check(not refused.ok and refused.code == "snapshot_error", "damaged: %s" % refused)
	h.free_client(client)


func test_cancel_stops_a_say() -> void:
	var client := await _setup()
	if client == null:
		return
	var request := client.say("brom", "player", "Tell me a long story.", TEMPLATE, {"seed": 1})
	var cancelled: NpcReply = await client.cancel(request.request_id)
	h.check(cancelled.ok, "cancel: %s" % cancelled)
	var reply: NpcReply = await request.wait()
	h.check(reply.ok and reply.result.finish_reason == "cancelled", "cancelled: %s" % reply)
	h.check((await client.cancel("never-sent")).code == "unknown_request", "unknown request")
	h.free_client(client)


func test_server_errors_carry_their_codes() -> void:
	var client := await _setup()
	if client == null:
		return
	var unknown: NpcReply = await client.send_request("no.such.op").wait()
	h.check(unknown.code == "unknown_op" and unknown.details.has("supported_ops"), "unknown_op")
	var invalid: NpcReply = await client.send_request("character.get", {"character_id": 5}).wait()
	h.check(invalid.code == "invalid_request", "invalid_request: %s" % invalid)
	var errors := []
	client.error.connect(func(code: String, _m: String, _id: String) -> void: errors.append(code))
	var say: NpcReply = await client.say_and_wait("nobody", "player", "hi", TEMPLATE)
	h.check(say.code == "unknown_character" and "unknown_character" in errors, "say error signal")
	h.check(
		(await client.say_and_wait("brom", "player", "hi", "nope")).code == "unknown_template",
		"template"
	)
	var raw := {"protocol_version": "9.0", "op": "ping", "request_id": "v9"}
	var version: NpcReply = await client.send_raw(raw).wait()
	h.check(version.code == "unsupported_version", "version refused: %s" % version)
	h.check((await client.ping()).ok, "the connection keeps serving after errors")
	h.free_client(client)


func test_oversized_reply_fails_its_request_only() -> void:
	var client := await _setup()
	if client == null:
		return
	await client.upsert_character({"id": "big", "name": "Big", "persona": "p".repeat(3000)})
	var small := NpcClient.new()
	small.max_reply_bytes = 1000
	h.root.add_child(small)
	small.connect_to_server(h.endpoint)
	var reply: NpcReply = await small.get_character("big")
	h.check(reply.code == "reply_too_large" and reply.request_id != "", "too large: %s" % reply)
	h.check((await small.ping()).ok and small.num_connects == 1, "the connection is kept")
	h.free_client(small)
	h.free_client(client)


func test_heartbeats_keep_an_idle_connection() -> void:
	var client := await _setup()
	if client == null:
		return
	await h.wait_seconds(6.5)  # the server drops a connection silent for 5 s
	h.check(client.num_pings_answered >= 5, "pings answered: %d" % client.num_pings_answered)
	h.check((await client.ping()).ok and client.num_connects == 1, "no reconnect was needed")
	h.free_client(client)


func test_reconnects_after_a_server_restart() -> void:
	var client := await _setup()
	if client == null:
		return
	var events := []
	client.disconnected.connect(func(reason: String) -> void: events.append("disconnected"))
	client.connected.connect(func(_hello: Dictionary) -> void: events.append("connected"))
	var in_flight := client.say("brom", "player", "Are you there?", TEMPLATE)
	await h.wait_seconds(0.1)
	h.stop_server()
	var lost: NpcReply = await in_flight.wait()
	h.check(lost.code == "connection_lost", "the say in flight fails: %s" % lost)
	var queued := client.send_request("ping")
	h.check(await h.start_server(), "restarted")
	var reply: NpcReply = await queued.wait()
	h.check(reply.ok, "a request made while down is sent after the reconnect: %s" % reply)
	h.check(
		await h.wait_until(func() -> bool: return "connected" in events, 20.0), "connected again"
	)
	h.check(events[0] == "disconnected" and client.num_connects >= 2, "events: %s" % [events])
	h.free_client(client)


func test_demo_scene_shows_drafts_settling_into_the_line() -> void:
	if not h.check(await h.ensure_server(), "server"):
		return
	NpcEngine.close()
	NpcEngine.connect_to_server(h.endpoint)
	var scene: Node = load("res://demo/tavern.tscn").instantiate()
	h.root.add_child(scene)
	var is_ready := func() -> bool: return scene.is_ready_to_talk
	h.check(await h.wait_until(is_ready, 240.0), "the demo set up its NPC")
	var stored: NpcReply = await NpcEngine.get_character("brom")
	h.check(
		stored.ok and "Short sentences" in str(stored.result) and "floods" in str(stored.result),
		"Brom is the demo's resource (brom.tres) on the server: %s" % stored
	)
	h.check(NpcEngine.characters.has(scene.character), "kept for reconnects")
	var broken := NpcCharacter.new()
	broken.id = "no spaces allowed"
	var refused: NpcReply = await NpcEngine.add_character(broken)
	h.check(
		refused.code == "invalid_asset" and "id" in refused.message,
		"an invalid resource is refused before sending: %s" % refused
	)
	h.check(not NpcEngine.characters.has(broken), "and not kept")
	var has_greeting := func() -> bool: return scene.last_line != ""
	h.check(
		await h.wait_until(has_greeting, 240.0), "Brom greets the player who walks in (an event)"
	)
	scene.talk("Good morning! Any work?")
	var bubbles := []
	var has_line := func() -> bool:
		if bubbles.is_empty() or bubbles[-1] != scene.bubble.text:
			bubbles.append(scene.bubble.text)
		return scene.last_line != ""
	h.check(await h.wait_until(has_line, 240.0), "a line arrived")
	h.check(scene.bubble.text == scene.last_line, "the bubble ends on the line")
	h.check(bubbles.size() >= 2, "the bubble changed while denoising: %s" % [bubbles])
	NpcEngine.characters.erase(scene.character)
	scene.queue_free()
	NpcEngine.close()

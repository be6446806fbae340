extends RefCounted
## Character and template resources against a real `npc-engine serve`: checked before connecting,
## on the server when [signal NpcConnection.connected] fires.

var h  # the runner (run_tests.gd)


func test_resources_are_on_the_server_when_connected_fires() -> void:
	if not h.check(await h.ensure_server(), "the server started"):
		return
	var greeting := NpcTemplate.new()
	greeting.template_name = "resource_greeting"
	greeting.slots = [
		{"name": "say", "kind": "text", "max_tokens": 8},
		{"name": "mood", "kind": "choice", "options": ["calm", "wary"]},
	]
	greeting.effects = [{"kind": "set_mood", "slot": "mood"}]
	var no_options := NpcTemplate.new()
	no_options.template_name = "no_options"
	no_options.slots = [{"name": "pick", "kind": "choice"}]
	var hale := NpcCharacter.new()
	hale.id = "res_hale"
	hale.display_name = "Hale"
	hale.persona = "A ferryman who knows the river."
	hale.knowledge = PackedStringArray(["The river floods in spring."])
	hale.starting_mood = "wary"
	var broken := NpcCharacter.new()
	broken.id = "not an id!"
	broken.display_name = "Broken"
	var client := NpcClient.new()
	client.request_timeout_s = 240.0
	client.templates = [greeting, no_options]
	client.characters = [hale, broken]
	var errors := []
	client.error.connect(
		func(code: String, message: String, _id: String) -> void:
			errors.append(code + ": " + message)
	)
	var at_connect := []
	client.connected.connect(
		func(_hello: Dictionary) -> void: at_connect.append(await client.get_character("res_hale"))
	)
	h.root.add_child(client)
	client.connect_to_server(h.endpoint)
	h.check(
		(
			(
				"invalid_asset: NPC template resource 'no_options': slots[0] 'pick': "
				+ "a choice needs at least one option"
			)
			in errors
		),
		"a bad template named before connecting: %s" % [errors]
	)
	var bad_id := "invalid_asset: NPC character resource 'not an id!': id"
	h.check(_has_prefix(errors, bad_id), "a bad character named before connecting")
	h.check(
		await h.wait_until(func() -> bool: return not at_connect.is_empty(), 240.0), "connected"
	)
	var character: Dictionary = at_connect[0].result.get("character", {})
	h.check(
		character.get("name") == "Hale" and character.get("mood") == "wary",
		"upserted: %s" % character
	)
	h.check(character.get("knowledge") == ["The river floods in spring."], "knowledge")
	var names: Array = (await client.list_templates()).result.templates.map(
		func(t: Dictionary) -> String: return t.name
	)
	h.check("resource_greeting" in names and not "no_options" in names, "registered: %s" % [names])
	await client.upsert_character({"id": "res_hale", "mood": "calm"})
	at_connect.clear()
	client.close()
	client.connect_to_server(h.endpoint)
	h.check(
		await h.wait_until(func() -> bool: return not at_connect.is_empty(), 240.0), "reconnected"
	)
	h.check(
		at_connect[0].result.character.mood == "calm",
		"the starting mood is for a new character only"
	)
	var farewell := NpcTemplate.new()
	farewell.template_name = "resource_farewell"
	farewell.slots = [{"name": "say", "kind": "text", "max_tokens": 6}]
	var added: NpcReply = await client.add_template(farewell)
	var refused: NpcReply = await client.add_template(no_options)
	names = (await client.list_templates()).result.templates.map(
		func(t: Dictionary) -> String: return t.name
	)
	h.check(added.ok and "resource_farewell" in names, "added while connected: %s" % added)
	h.check(refused.code == "invalid_asset", "a bad one refused at once: %s" % refused)
	h.check(client.templates.count(no_options) == 1, "and not kept twice")
	h.free_client(client)


func _has_prefix(lines: Array, prefix: String) -> bool:
	for line in lines:
		if str(line).begins_with(prefix):
			return true
	return false

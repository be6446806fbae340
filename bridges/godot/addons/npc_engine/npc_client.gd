class_name NpcClient
extends NpcConnection
## Talks to `npc-engine serve` (schemas/PROTOCOL.md). Every op is a coroutine returning an
## [NpcReply]: [code]var reply := await NpcEngine.get_character("brom")[/code], then
## [code]reply.ok[/code] / [code]reply.result[/code] or [code]reply.code[/code] /
## [code]reply.message[/code]. [method say] returns its [NpcRequest] at once (drafts through
## [signal NpcConnection.draft], the line through [signal NpcConnection.line_ready]).
## [method NpcConnection.hello] (with its protocol check) is inherited: the connection sends it
## on every (re)connect.

## Bytes per base64 chunk of a snapshot on the wire (schemas/PROTOCOL.md): 48 KiB of text each.
const SNAPSHOT_CHUNK_BYTES := 36 * 1024

## Template resources registered on every connect, before [signal NpcConnection.connected].
@export var templates: Array[NpcTemplate] = []
## Character resources upserted on every connect (after the templates), before
## [signal NpcConnection.connected]; the starting mood only for a new character.
@export var characters: Array[NpcCharacter] = []

var _valid_templates: Array[NpcTemplate] = []
var _valid_characters: Array[NpcCharacter] = []


## An invalid resource is an [signal NpcConnection.error] with code "invalid_asset" (naming the
## resource and field) now, before connecting, and is left out; the others still go.
func _check_before_connecting() -> void:
	_valid_templates.clear()
	_valid_characters.clear()
	for template in templates:
		if template != null and _is_valid(template.problems()):
			_valid_templates.append(template)
	for character in characters:
		if character != null and _is_valid(character.problems()):
			_valid_characters.append(character)


func _is_valid(found: PackedStringArray) -> bool:
	for problem in found:
		error.emit("invalid_asset", problem, "")
	return found.is_empty()


func _prepare_connected() -> void:
	for template in _valid_templates:
		var reply: NpcReply = await register_template(template.to_dict())
		if not reply.ok:
			var label := "NPC template resource '%s'" % template._label()
			error.emit(reply.code, "%s: %s" % [label, reply.message], reply.request_id)
	for character in _valid_characters:
		var reply: NpcReply = await _upsert_resource(character)
		if not reply.ok:
			var label := "NPC character resource '%s'" % character._label()
			error.emit(reply.code, "%s: %s" % [label, reply.message], reply.request_id)


## A character resource added while the game runs: checked now (an invalid one is a failure
## with code "invalid_asset" naming the resource and field, and is not kept), kept in
## [member characters] so every reconnect upserts it again, and upserted now (sent once the
## connection is up). Returns the upsert's reply.
func add_character(character: NpcCharacter) -> NpcReply:
	var refused := _keep(character, characters, _valid_characters)
	if refused != null:
		return refused
	return await _upsert_resource(character)


## A template resource added while the game runs, as [method add_character]: checked now, kept in
## [member templates] for reconnects, registered now. Returns the registration's reply.
func add_template(template: NpcTemplate) -> NpcReply:
	var refused := _keep(template, templates, _valid_templates)
	if refused != null:
		return refused
	return await register_template(template.to_dict())


## The invalid_asset failure for a resource with problems; else keeps it (once) and returns null.
func _keep(resource: Resource, listed: Array, valid: Array) -> NpcReply:
	var found: PackedStringArray = resource.problems()
	if not found.is_empty():
		return NpcReply.failure("", "invalid_asset", "; ".join(found))
	if not listed.has(resource):
		listed.append(resource)
		valid.append(resource)
	return null


func _upsert_resource(character: NpcCharacter) -> NpcReply:
	var is_new: bool = (await get_character(character.id)).code == "unknown_character"
	return await upsert_character(character.to_dict(is_new))


func ping() -> NpcReply:
	return await send_request("ping").wait()


## Fields left out keep their stored values; only "id" is required.
func upsert_character(character: Dictionary) -> NpcReply:
	return await send_request("character.upsert", {"character": character}).wait()


func get_character(character_id: String) -> NpcReply:
	return await send_request("character.get", {"character_id": character_id}).wait()


func list_characters() -> NpcReply:
	return await send_request("character.list").wait()


func delete_character(character_id: String) -> NpcReply:
	return await send_request("character.delete", {"character_id": character_id}).wait()


func upsert_speaker(speaker_id: String, speaker_name: String, description := "") -> NpcReply:
	var speaker := {"id": speaker_id, "name": speaker_name, "description": description}
	return await send_request("speaker.upsert", {"speaker": speaker}).wait()


func list_speakers() -> NpcReply:
	return await send_request("speaker.list").wait()


func delete_speaker(speaker_id: String) -> NpcReply:
	return await send_request("speaker.delete", {"speaker_id": speaker_id}).wait()


func set_world_fact(key: String, text: String, salience := 0.5) -> NpcReply:
	var fields := {"key": key, "text": text, "salience": float(salience)}
	return await send_request("world.set", fields).wait()


## All facts, or the one under [param key].
func get_world_facts(key := "") -> NpcReply:
	return await send_request("world.get", {"key": key} if key != "" else {}).wait()


func delete_world_fact(key: String) -> NpcReply:
	return await send_request("world.delete", {"key": key}).wait()


## [param template]: a Dictionary (see schemas/protocol/template.json).
func register_template(template: Dictionary) -> NpcReply:
	return await send_request("template.register", {"template": template}).wait()


## A template from a JSON file (res:// or user://), read with [NpcJson] so integers stay integers.
func register_template_file(path: String) -> NpcReply:
	if not FileAccess.file_exists(path):
		return NpcReply.failure("", "invalid_template", "no file at %s" % path)
	var parsed := NpcJson.parse(FileAccess.get_file_as_string(path))
	if parsed[1] != "" or not parsed[0] is Dictionary:
		var why: String = parsed[1] if parsed[1] != "" else "a template is a JSON object"
		return NpcReply.failure("", "invalid_template", "%s: %s" % [path, why])
	return await register_template(parsed[0])


func list_templates() -> NpcReply:
	return await send_request("template.list").wait()


## Starts a say. [param options]: seed (int), priority (float), deadline_ms (float),
## stream (bool, default true: send drafts), timeout_s (float), values (Dictionary of String to
## String, protocol 1.3: the template's pattern placeholders, over those read from state),
## options (Dictionary of slot name to Array of String, protocol 1.3: this say's choices for a
## choice slot, e.g. the items the NPC has now).
func say(
	character_id: String, speaker_id: String, text: String, template: String, options := {}
) -> NpcRequest:
	return _start_say(character_id, speaker_id, "text", text, template, options)


## Protocol 1.1: the character reacts to a game event ("Aria walks into the forge"), caused by
## [param causer_id] (a speaker or another character; "" for no one). An event while the
## character answers another gets that reply (result.coalesced); one within the server's
## limits.min_event_interval_ms fails with code "rate_limited". Options as for [method say].
func react(
	character_id: String, event_text: String, template: String, causer_id := "", options := {}
) -> NpcRequest:
	return _start_say(character_id, causer_id, "event", event_text, template, options)


func _start_say(
	character_id: String,
	speaker_id: String,
	text_field: String,
	text: String,
	template: String,
	options: Dictionary
) -> NpcRequest:
	var fields := {
		"character_id": character_id,
		text_field: text,
		"template": template,
		"priority": float(options.get("priority", 0.0)),
		"stream": bool(options.get("stream", true)),
	}
	if speaker_id != "":
		fields["speaker_id"] = speaker_id
	if options.has("seed"):
		fields["seed"] = int(options.seed)
	if options.has("deadline_ms"):
		fields["deadline_ms"] = float(options.deadline_ms)
	if not options.get("values", {}).is_empty():
		fields["values"] = options.values
	if not options.get("options", {}).is_empty():
		fields["options"] = options.options
	var request := send_request("say", fields, float(options.get("timeout_s", -1.0)))
	request.character_id = character_id
	return request


## [method say], waiting for the reply.
func say_and_wait(
	character_id: String, speaker_id: String, text: String, template: String, options := {}
) -> NpcReply:
	return await say(character_id, speaker_id, text, template, options).wait()


## Cancels an outstanding say; its reply then has finish_reason "cancelled".
func cancel(request_id: String) -> NpcReply:
	return await send_request("cancel", {"target_request_id": request_id}).wait()


## Saves the whole world, or one character when [param character_id] is given.
func save_snapshot(snapshot_name: String, character_id := "") -> NpcReply:
	var fields := {"name": snapshot_name}
	if character_id != "":
		fields["character_id"] = character_id
	return await send_request("snapshot.save", fields).wait()


func load_snapshot(snapshot_name: String) -> NpcReply:
	return await send_request("snapshot.load", {"name": snapshot_name}).wait()


func list_snapshots() -> NpcReply:
	return await send_request("snapshot.list").wait()


func delete_snapshot(snapshot_name: String) -> NpcReply:
	return await send_request("snapshot.delete", {"name": snapshot_name}).wait()


## Protocol 1.1: a save slot's bytes for the game's own save file, as result.data
## (a PackedByteArray; keep it as it is). The wire carries them as base64 chunks.
func export_snapshot(snapshot_name: String) -> NpcReply:
	var reply: NpcReply = await send_request("snapshot.export", {"name": snapshot_name}).wait()
	if reply.ok:
		var data := PackedByteArray()
		for chunk in reply.result.get("chunks", []):
			data.append_array(Marshalls.base64_to_raw(str(chunk)))
		reply.result["data"] = data
	return reply


## Protocol 1.1: stores bytes from [method export_snapshot] as a slot (under [param snapshot_name],
## default its own); [method load_snapshot] then applies it. A damaged or foreign payload fails
## with code "snapshot_error" and changes nothing.
func import_snapshot(data: PackedByteArray, snapshot_name := "") -> NpcReply:
	var chunks := []
	for offset in range(0, data.size(), SNAPSHOT_CHUNK_BYTES):
		chunks.append(Marshalls.raw_to_base64(data.slice(offset, offset + SNAPSHOT_CHUNK_BYTES)))
	var fields := {"chunks": chunks if not chunks.is_empty() else [""]}
	if snapshot_name != "":
		fields["name"] = snapshot_name
	return await send_request("snapshot.import", fields).wait()


func stats() -> NpcReply:
	return await send_request("stats").wait()

extends Control
## The demo: talk to Brom the smith. He greets you as you walk in; type a line and press Enter;
## the speech bubble shows the drafts settling into his line while the model denoises, then his
## mood and trust.
## Needs `npc-engine serve --templates schemas/templates` (./npc serve ...) on the endpoint.

@export var endpoint := "tcp://127.0.0.1:5555"
## Who the player talks to: a character resource (demo/brom.tres), edited in the Inspector.
@export var character: NpcCharacter = preload("res://demo/brom.tres")
@export var speaker_id := "player"
## shopkeeper_authored: lines from the built-in model's corpus with the right names;
## shopkeeper_reply: the model writes the line itself.
@export var template := "shopkeeper_authored"

var is_ready_to_talk := false
var last_line := ""
var _current: NpcRequest

@onready var bubble: Label = $Bubble
@onready var status: Label = $Status
@onready var input: LineEdit = $Input


func _ready() -> void:
	NpcEngine.connected.connect(_on_connected)
	NpcEngine.disconnected.connect(
		func(_reason: String) -> void: _set_status("server gone; reconnecting...")
	)
	NpcEngine.error.connect(
		func(code: String, message: String, _id: String) -> void:
			_set_status("%s: %s" % [code, message])
	)
	NpcEngine.draft.connect(_on_draft)
	NpcEngine.line_ready.connect(_on_line)
	input.text_submitted.connect(talk)
	if not NpcEngine.hello_result.is_empty():
		_on_connected(NpcEngine.hello_result)
	elif not NpcEngine.is_open():
		NpcEngine.connect_to_server(endpoint)


## Sends what the player said; a line still being generated is cancelled (the player moved on).
func talk(text: String) -> void:
	if not is_ready_to_talk or text.strip_edges() == "":
		return
	if _current != null and not _current.is_done:
		NpcEngine.cancel(_current.request_id)
	input.clear()
	bubble.text = "..."
	last_line = ""
	_current = NpcEngine.say(character.id, speaker_id, text, template)


func _on_connected(hello: Dictionary) -> void:
	var model: Dictionary = hello.get("model", {})
	_set_status(
		"model: %d parameters on %s" % [model.get("num_parameters", 0), model.get("device", "?")]
	)
	await NpcEngine.upsert_speaker(speaker_id, "Traveller")
	var reply: NpcReply = await NpcEngine.add_character(character)
	is_ready_to_talk = reply.ok
	if not reply.ok:
		_set_status("%s: %s" % [reply.code, reply.message])
	elif "events" in hello.get("capabilities", []):
		# The player walks in: Brom greets them (a game event, protocol 1.1), before a word is said.
		bubble.text = "..."
		_current = NpcEngine.react(
			character.id, "A traveller walks into the forge.", template, speaker_id
		)


func _on_draft(request_id: String, _who: String, fields: Dictionary) -> void:
	if _current != null and request_id == _current.request_id:
		bubble.text = str(fields.get("say", "")) + " ..."


func _on_line(request_id: String, _who: String, result: Dictionary) -> void:
	if _current == null or request_id != _current.request_id:
		return
	if result.get("finish_reason") == "cancelled":
		return
	var fields: Dictionary = result.get("fields", {})
	last_line = str(fields.get("say", ""))
	bubble.text = last_line
	var changes := ""
	for change in result.get("changes", []):
		changes += "  %s -> %s" % [change.path, change.new]
	_set_status("%s, %s%s" % [fields.get("emotion"), fields.get("action"), changes])


func _set_status(text: String) -> void:
	status.text = text

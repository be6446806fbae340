class_name NpcCharacter
extends Resource
## A character as a resource ([code].tres[/code]): persona, speaking style, knowledge and
## starting mood, edited in the Inspector. List it in an [NpcClient]'s [member
## NpcClient.characters]: on every connect it is upserted before [signal
## NpcConnection.connected] fires. Only what it declares changes (memories, relationships and
## turns stay the server's); the starting mood is set only when the character is new.

const MAX_PERSONA_CHARS := 4000
const MAX_STYLE_CHARS := 1000

## Unique id the game talks to: 1-64 letters, digits, _ . : -
@export var id := ""
## The name others call the character (1-64 characters).
@export var display_name := ""
## Who the character is, in a few sentences.
@export_multiline var persona := ""
## How the character talks (optional).
@export var speaking_style := ""
## Facts the character knows, one per entry (optional).
@export var knowledge: PackedStringArray = []
## The mood a new character starts in.
@export var starting_mood := "neutral"


## What is wrong with the resource, each naming it and the field; empty when it is fine.
func problems() -> PackedStringArray:
	var found: PackedStringArray = []
	var label := "NPC character resource '%s'" % _label()
	var id_pattern := RegEx.create_from_string("^[A-Za-z0-9_.:-]{1,64}$")
	if id_pattern.search(id) == null:
		found.append("%s: id '%s' must be 1-64 letters, digits, _ . : -" % [label, id])
	if display_name.strip_edges() == "" or display_name.length() > 64:
		found.append("%s: display_name must be 1-64 characters" % label)
	if persona.strip_edges() == "":
		found.append("%s: persona is empty; say who the character is" % label)
	elif persona.length() > MAX_PERSONA_CHARS:
		found.append(
			(
				"%s: persona is %d characters; at most %d"
				% [label, persona.length(), MAX_PERSONA_CHARS]
			)
		)
	if speaking_style.length() > MAX_STYLE_CHARS:
		found.append("%s: speaking_style is over %d characters" % [label, MAX_STYLE_CHARS])
	for fact in knowledge:
		if fact.strip_edges() == "":
			found.append("%s: knowledge has an empty entry" % label)
			break
	if starting_mood.strip_edges() == "" or starting_mood.length() > 32:
		found.append("%s: starting_mood must be 1-32 characters" % label)
	return found


## The character to upsert; [param is_new]: with its starting mood.
func to_dict(is_new: bool) -> Dictionary:
	var character := {
		"id": id, "name": display_name, "persona": persona, "knowledge": Array(knowledge)
	}
	if speaking_style != "":
		character["speaking_style"] = speaking_style
	if is_new:
		character["mood"] = starting_mood
	return character


func _label() -> String:
	return resource_path.get_file() if resource_path != "" else id

class_name NpcTemplate
extends Resource
## A dialogue template as a resource ([code].tres[/code]). [member slots] and [member effects] are
## dictionaries in the protocol's shape (docs/templates.md): a slot {name, kind ("text",
## "choice", "integer", "boolean"), max_tokens, options, min, max, pattern}; an effect {kind
## ("set_mood", "add_to_relationship", "remember", "set_flag"), slot, dimension, salience, flag}.
## List it in an [NpcClient]'s [member NpcClient.templates]: on every connect it is registered
## before [signal NpcConnection.connected] fires; [method problems] catches the common mistakes
## before connecting, and the server names the rest.

const SLOT_KINDS := ["text", "choice", "integer", "boolean"]
const EFFECT_KINDS := ["set_mood", "add_to_relationship", "remember", "set_flag"]

## The name a say uses (1-64 letters, digits, _ . -).
@export var template_name := ""
@export_multiline var description := ""
@export var slots: Array[Dictionary] = []
@export var effects: Array[Dictionary] = []
## The text slot recorded as the character's line (empty: the first text slot).
@export var line_slot := ""


## What is wrong with the resource, each naming it and the field; empty when it is fine.
func problems() -> PackedStringArray:
	var found: PackedStringArray = []
	var label := "NPC template resource '%s'" % _label()
	if RegEx.create_from_string("^[A-Za-z0-9_.-]{1,64}$").search(template_name) == null:
		found.append(
			"%s: template_name '%s' must be 1-64 letters, digits, _ . -" % [label, template_name]
		)
	if slots.is_empty():
		found.append("%s: slots is empty; a template fills at least one" % label)
		return found
	var names := {}
	var slot_name := RegEx.create_from_string("^[A-Za-z_][A-Za-z0-9_]{0,63}$")
	for i in slots.size():
		var slot: Dictionary = slots[i]
		var where := "%s: slots[%d] '%s'" % [label, i, slot.get("name", "")]
		if slot_name.search(str(slot.get("name", ""))) == null:
			found.append("%s: name must be an identifier" % where)
		elif names.has(slot.name):
			found.append("%s: another slot has this name" % where)
		names[slot.get("name", "")] = true
		var kind := str(slot.get("kind", ""))
		if not kind in SLOT_KINDS:
			found.append("%s: kind must be one of %s" % [where, ", ".join(SLOT_KINDS)])
		elif kind == "choice" and Array(slot.get("options", [])).is_empty():
			found.append("%s: a choice needs at least one option" % where)
		elif kind == "integer" and int(slot.get("min", 0)) > int(slot.get("max", 0)):
			found.append("%s: min is above max" % where)
	for i in effects.size():
		var effect: Dictionary = effects[i]
		var where := "%s: effects[%d]" % [label, i]
		if not str(effect.get("kind", "")) in EFFECT_KINDS:
			found.append("%s: kind must be one of %s" % [where, ", ".join(EFFECT_KINDS)])
		if not names.has(effect.get("slot", "")):
			found.append(
				"%s: slot '%s' is not one of the template's slots" % [where, effect.get("slot", "")]
			)
	if line_slot != "" and not names.has(line_slot):
		found.append("%s: line_slot '%s' is not one of the template's slots" % [label, line_slot])
	return found


## The template as the protocol sends it (schemas/protocol/template.json).
func to_dict() -> Dictionary:
	var template := {"name": template_name, "slots": slots.duplicate(true)}
	if description != "":
		template["description"] = description
	if not effects.is_empty():
		template["effects"] = effects.duplicate(true)
	if line_slot != "":
		template["line_slot"] = line_slot
	return template


func _label() -> String:
	return resource_path.get_file() if resource_path != "" else template_name

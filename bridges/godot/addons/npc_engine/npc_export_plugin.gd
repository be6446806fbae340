@tool
extends EditorExportPlugin
## Puts the server bundle (`npc-engine bundle --out DIR`) next to every exported desktop game, where
## [NpcServer] looks for it ([member NpcServer.bundle_path]): beside the executable, or in
## `Contents/MacOS/` inside a macOS `.app`. The bundle is read from the project setting
## `npc_engine/export/bundle_folder` (default `res://npc-engine`; keep a `.gdignore` in it so the
## editor does not scan it). A bundle built for another OS or CPU stops the export with a message
## that names the bundle needed; mobile and web exports leave it out (they cannot run it).

const SETTING := "npc_engine/export/bundle_folder"
const DEFAULT_FOLDER := "res://npc-engine"
const MANIFEST := "bundle.json"
const FOLDER_NAME := "npc-engine"
const CATEGORY := "NPC Engine"

var _source := ""  # the bundle to copy once the export has written the game, or ""
var _destination := ""


func _get_name() -> String:
	return "NpcEngineBundle"


func _export_begin(features: PackedStringArray, _is_debug: bool, path: String, _flags: int) -> void:
	_source = ""
	var plan := plan_export(features, path, bundle_folder())
	if plan.has("note"):
		print("npc-engine: ", plan["note"])
	if plan.has("warning"):
		_message(EditorExportPlatform.EXPORT_MESSAGE_WARNING, plan["warning"])
	if plan.has("error"):
		_message(EditorExportPlatform.EXPORT_MESSAGE_ERROR, plan["error"])
		# An export plugin cannot return an error; a shared object that does not exist fails the
		# export (measured on Godot 4.6: exit code 1, "export ... failed"), its name the reason.
		add_shared_object(
			bundle_folder().path_join("missing (%s)" % plan["needed"]), PackedStringArray(), ""
		)
		return
	if plan.has("destination"):
		_source = bundle_folder()
		_destination = plan["destination"]


func _export_end() -> void:
	if _source == "":
		return
	var error := copy_bundle(_source, _destination)
	if error != "":
		_message(EditorExportPlatform.EXPORT_MESSAGE_ERROR, error)
	else:
		print("npc-engine: server bundle copied to ", _destination)
	_source = ""


func _message(kind: int, text: String) -> void:
	var platform := get_export_platform()
	if platform != null:
		platform.add_message(kind, CATEGORY, text)
	if kind == EditorExportPlatform.EXPORT_MESSAGE_ERROR:
		push_error("npc-engine: " + text)
	else:
		push_warning("npc-engine: " + text)


## The bundle folder to export, as an absolute path.
static func bundle_folder() -> String:
	var folder: String = ProjectSettings.get_setting(SETTING, DEFAULT_FOLDER)
	return ProjectSettings.globalize_path(folder)


## What an export does with the bundle: a Dictionary with "destination" (copy it there), or
## "error" and "needed" (stop), and perhaps "note" or "warning". Pure: the export hooks and the
## tests call it alike.
static func plan_export(features: PackedStringArray, path: String, folder: String) -> Dictionary:
	var os := os_of(features)
	if os == "":
		return {
			"note": "not a desktop export (%s): the server bundle is left out" % ", ".join(features)
		}
	var manifest_path := folder.path_join(MANIFEST)
	if not FileAccess.file_exists(manifest_path):
		return {
			"warning":
			(
				"no server bundle at %s (set %s): the exported game has no server to start"
				% [folder, SETTING]
			)
		}
	var manifest = JSON.parse_string(FileAccess.get_file_as_string(manifest_path))
	var machine := machine_of(features)
	var needed := "a %s %s bundle" % [os, machine]
	if not manifest is Dictionary or int(manifest.get("format", -1)) != 1:
		return {
			"error": "%s is not a bundle manifest this addon reads" % manifest_path,
			"needed": needed
		}
	var problem := problem_for(manifest, os, machine)
	if problem != "":
		return {"error": "%s: %s" % [folder, problem], "needed": needed}
	var base := ProjectSettings.globalize_path(path)
	if base.is_relative_path():  # `godot --export-release PRESET out/game`: relative to the project
		base = ProjectSettings.globalize_path("res://").path_join(base)
	if os == "macos":
		if not base.ends_with(".app"):
			return {
				"error": "export to a .app folder to have the server bundle put inside it",
				"needed": "a .app export"
			}
		return {"destination": base.path_join("Contents/MacOS").path_join(FOLDER_NAME)}
	return {"destination": base.get_base_dir().path_join(FOLDER_NAME)}


## "linux", "windows" or "macos" for a desktop export's features; "" for the others.
static func os_of(features: PackedStringArray) -> String:
	for os in ["linux", "windows", "macos"]:
		if features.has(os):
			return os
	return ""


## The export's CPU in a bundle's spelling (x86_64, arm64, x86), "universal", or "".
static func machine_of(features: PackedStringArray) -> String:
	for machine in ["x86_64", "arm64", "universal"]:
		if features.has(machine):
			return machine
	return "x86" if features.has("x86_32") else ""


## Why a bundle with this manifest cannot run on `os`/`machine`, or "".
static func problem_for(manifest: Dictionary, os: String, machine: String) -> String:
	var built_os := str(manifest.get("os", ""))
	if built_os != os:
		return (
			(
				"the server bundle was built on %s and runs there only, not on %s: build it with "
				% [built_os, os]
			)
			+ "`npc-engine bundle` on %s" % os
		)
	var built := normalize_machine(str(manifest.get("machine", "")))
	if built == "" or machine == "" or built == machine:
		return ""
	if os == "macos" and built == "x86_64" and machine in ["arm64", "universal"]:
		return ""  # Rosetta runs x86_64 on Apple silicon
	return (
		(
			"the server bundle was built for %s CPUs and does not run on %s: build it with "
			% [built, machine]
		)
		+ "`npc-engine bundle` on a %s %s machine" % [os, machine]
	)


## A CPU architecture in one spelling, as the Unity bridge's NpcServerBundle.NormalizeMachine.
static func normalize_machine(machine: String) -> String:
	var lower := machine.to_lower()
	if lower in ["x86_64", "amd64", "x64"]:
		return "x86_64"
	if lower in ["arm64", "aarch64"]:
		return "arm64"
	if lower in ["x86", "i386", "i686"]:
		return "x86"
	return lower


## Copies `source` into `destination` (replaced), keeping executable bits and links; "" or why not.
static func copy_bundle(source: String, destination: String) -> String:
	if DirAccess.dir_exists_absolute(destination):
		var removed := _remove_tree(destination)
		if removed != OK:
			return "cannot replace %s (%s)" % [destination, error_string(removed)]
	return _copy_tree(source, destination)


static func _copy_tree(source: String, destination: String) -> String:
	var made := DirAccess.make_dir_recursive_absolute(destination)
	if made != OK:
		return "cannot create %s (%s)" % [destination, error_string(made)]
	var dir := DirAccess.open(source)
	if dir == null:
		return "cannot read %s (%s)" % [source, error_string(DirAccess.get_open_error())]
	dir.include_hidden = true
	for name in dir.get_files() + dir.get_directories():
		if name == ".gdignore":
			continue
		var from := source.path_join(name)
		var to := destination.path_join(name)
		if dir.is_link(name):
			if dir.create_link(dir.read_link(name), to) != OK:
				return "cannot link %s" % to
		elif DirAccess.dir_exists_absolute(from):
			var nested := _copy_tree(from, to)
			if nested != "":
				return nested
		elif DirAccess.copy_absolute(from, to, _mode_of(from)) != OK:
			return "cannot copy %s to %s" % [from, to]
	return ""


static func _remove_tree(folder: String) -> int:
	var dir := DirAccess.open(folder)
	if dir == null:
		return DirAccess.get_open_error()
	dir.include_hidden = true
	for name in dir.get_files():
		var removed := DirAccess.remove_absolute(folder.path_join(name))
		if removed != OK:
			return removed
	for name in dir.get_directories():
		var nested := (
			DirAccess.remove_absolute(folder.path_join(name))
			if dir.is_link(name)
			else _remove_tree(folder.path_join(name))
		)
		if nested != OK:
			return nested
	return DirAccess.remove_absolute(folder)


static func _mode_of(path: String) -> int:
	# Unix permission bits carry the executable's +x; Windows has none to keep.
	return -1 if OS.get_name() == "Windows" else FileAccess.get_unix_permissions(path)

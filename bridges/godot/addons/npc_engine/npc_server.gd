class_name NpcServer
extends Node
## Starts `npc-engine serve` with the game and stops it with the game. In an exported game it
## runs the bundle beside the executable ([member bundle_path]); in the editor set
## [member development_command] (a Python with npc-engine installed) and keep
## [member development_args]. The server listens on a free port and writes its endpoint to a
## status file under user://, which this node reads; it then connects [member client] (the
## NpcEngine autoload unless set) and emits [signal started]. Quitting, or freeing this node,
## stops the server; it also ends by itself if the game process dies (--parent-pid).

signal started(endpoint: String)
signal failed(code: String, message: String)

## The server executable, relative to the game's executable folder (the `npc-engine bundle`).
@export var bundle_path := "npc-engine/npc-engine-server"
## Editor/development: run this instead of the bundle (e.g. res://../.venv/bin/python, globalized).
@export var development_command := ""
@export var development_args := PackedStringArray(["-m", "npc_engine.cli", "serve"])
## More serve flags, e.g. --db with ProjectSettings.globalize_path("user://npc.db"), --templates.
@export var server_args := PackedStringArray()
@export var start_on_ready := true
@export var start_timeout_s := 120.0

## The client to connect (default: the NpcEngine autoload, when there is one).
var client: NpcClient
var endpoint := ""
var pid := -1
var _status_path := ""


func _ready() -> void:
	if client == null and has_node("/root/NpcEngine"):
		client = get_node("/root/NpcEngine") as NpcClient
	if start_on_ready:
		start_server()


## Starts the server; [signal started] or [signal failed] follows.
func start_server() -> void:
	if pid > 0:
		return
	var command := development_command
	var args := PackedStringArray()
	if command != "":
		args.append_array(development_args)
	else:
		command = OS.get_executable_path().get_base_dir().path_join(bundle_path)
		if OS.get_name() == "Windows" and not command.ends_with(".exe"):
			command += ".exe"
		if not FileAccess.file_exists(command):
			var why := (
				"no server bundle at %s: build one with `npc-engine bundle --out DIR`" % command
			)
			failed.emit(
				"bad_bundle", why + " and put it beside the game's executable as npc-engine/"
			)
			return
	_status_path = ProjectSettings.globalize_path("user://npc-engine-%d.json" % OS.get_process_id())
	DirAccess.remove_absolute(_status_path)
	args.append_array(server_args)
	args.append_array(
		["--port", "0", "--parent-pid", str(OS.get_process_id()), "--status-file", _status_path]
	)
	pid = OS.create_process(command, args)
	if pid <= 0:
		pid = -1
		failed.emit("server_start_failed", "cannot start the server %s" % command)
		return
	_wait_for_endpoint()


func _wait_for_endpoint() -> void:
	var deadline := Time.get_ticks_msec() + int(start_timeout_s * 1000.0)
	while not FileAccess.file_exists(_status_path):
		if not OS.is_process_running(pid):
			pid = -1
			failed.emit("server_start_failed", "the server exited before listening")
			return
		if Time.get_ticks_msec() > deadline:
			stop_server()
			failed.emit(
				"server_start_failed", "the server did not listen within %.0f s" % start_timeout_s
			)
			return
		await get_tree().create_timer(0.1).timeout
	var status: Variant = JSON.parse_string(FileAccess.get_file_as_string(_status_path))
	if not status is Dictionary or not status.has("endpoint"):
		stop_server()
		failed.emit("server_start_failed", "unreadable status file %s" % _status_path)
		return
	endpoint = status["endpoint"]
	if client != null:
		client.connect_to_server(endpoint)
	started.emit(endpoint)


## Ends the server (state it acknowledged is already on disk).
func stop_server() -> void:
	if pid > 0 and OS.is_process_running(pid):
		OS.kill(pid)
	pid = -1
	endpoint = ""


func is_running() -> bool:
	return pid > 0 and OS.is_process_running(pid)


func _notification(what: int) -> void:
	if what == NOTIFICATION_WM_CLOSE_REQUEST or what == NOTIFICATION_PREDELETE:
		stop_server()

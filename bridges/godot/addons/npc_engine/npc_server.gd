class_name NpcServer
extends Node
## Starts `npc-engine serve` with the game and stops it with the game. In an exported game it
## runs the bundle beside the executable ([member bundle_path]); in the editor set
## [member development_command] (a Python with npc-engine installed) and keep
## [member development_args]. The server listens on a free port and writes its endpoint to a
## status file under user://, which this node reads; it then connects [member client] (the
## NpcEngine autoload unless set) and emits [signal started]. Quitting, or freeing this node,
## stops the server as Unity's NpcServer does: its stdin is closed (it was started with
## --exit-on-stdin-eof), a bounded wait ([member stop_timeout_s]), then a kill, and only while it is
## still this game's running child. It also ends by itself if the game process dies (--parent-pid,
## and its stdin closing with the game). A failure to start says what the server wrote on stderr.

signal started(endpoint: String)
signal failed(code: String, message: String)

const STDERR_TAIL_BYTES := 4096

## The server executable, relative to the game's executable folder (the `npc-engine bundle`).
@export var bundle_path := "npc-engine/npc-engine-server"
## Editor/development: run this instead of the bundle (e.g. res://../.venv/bin/python, globalized).
@export var development_command := ""
@export var development_args := PackedStringArray(["-m", "npc_engine.cli", "serve"])
## More serve flags, e.g. --db with ProjectSettings.globalize_path("user://npc.db"), --templates.
@export var server_args := PackedStringArray()
@export var start_on_ready := true
@export var start_timeout_s := 120.0
## How long [method stop_server] waits for the server to end by itself before killing it.
@export var stop_timeout_s := 5.0

## The client to connect (default: the NpcEngine autoload, when there is one).
var client: NpcClient
var endpoint := ""
var pid := -1
var _status_path := ""
var _stdio: FileAccess  # the server's stdin and stdout; closing it asks the server to end
var _stderr: FileAccess
var _stderr_tail := PackedByteArray()
var _has_exited := true  # no child, or one seen ended: never signalled again


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
		[
			"--port",
			"0",
			"--parent-pid",
			str(OS.get_process_id()),
			"--status-file",
			_status_path,
			"--exit-on-stdin-eof"
		]
	)
	_stderr_tail = PackedByteArray()
	var launched := OS.execute_with_pipe(command, args, false)  # non-blocking pipes
	if launched.is_empty() or int(launched.get("pid", -1)) <= 0:
		pid = -1
		failed.emit("server_start_failed", "cannot start the server %s" % command)
		return
	pid = launched["pid"]
	_stdio = launched["stdio"]
	_stderr = launched["stderr"]
	_has_exited = false
	_wait_for_endpoint()


func _wait_for_endpoint() -> void:
	# Never report from inside start_server(): a caller sees pid, and connects to [signal failed],
	# before a server that exits at once is reported (it used to race the first check).
	await get_tree().process_frame
	var deadline := Time.get_ticks_msec() + int(start_timeout_s * 1000.0)
	while not FileAccess.file_exists(_status_path):
		_drain_pipes()
		if not is_running():
			_fail_start("the server exited before listening")
			return
		if Time.get_ticks_msec() > deadline:
			_fail_start("the server did not listen within %.0f s" % start_timeout_s)
			return
		await get_tree().create_timer(0.1).timeout
	var status: Variant = JSON.parse_string(FileAccess.get_file_as_string(_status_path))
	if not status is Dictionary or not status.has("endpoint"):
		_fail_start("unreadable status file %s" % _status_path)
		return
	endpoint = status["endpoint"]
	print(
		(
			(
				"npc-engine server listening on %s (status file %s; inspect it with "
				+ "`npc-engine studio --status-file %s`)"
			)
			% [endpoint, _status_path, _status_path]
		)
	)
	if client != null:
		client.connect_to_server(endpoint)
	started.emit(endpoint)


## Ends the server (state it acknowledged is already on disk): closes its stdin, waits up to
## [member stop_timeout_s] for it to exit, then kills it if it is still this game's child.
func stop_server() -> void:
	if _stdio != null:
		_stdio.close()  # --exit-on-stdin-eof: the server ends cleanly
		_stdio = null
	var deadline := Time.get_ticks_msec() + int(stop_timeout_s * 1000.0)
	while is_running() and Time.get_ticks_msec() < deadline:
		_drain_pipes()
		OS.delay_msec(20)  # at shutdown only, never in a frame
	if is_running():  # still our running child (a reaped or reused pid never gets here)
		OS.kill(pid)
	_has_exited = true
	if _stderr != null:
		_stderr.close()
		_stderr = null
	pid = -1
	endpoint = ""


## True while the server this node started is running.
func is_running() -> bool:
	if pid <= 0 or _has_exited:
		return false
	if not OS.is_process_running(pid):
		_has_exited = true
	return not _has_exited


## The last bytes the server wrote on stderr (its errors and log lines).
func stderr_tail() -> String:
	_drain_pipes()
	return _stderr_tail.get_string_from_utf8()


func _process(_delta: float) -> void:
	if _stderr != null:
		_drain_pipes()  # a full pipe would stall the server


func _drain_pipes() -> void:
	if _stderr != null:
		var got := _stderr.get_buffer(65536)
		if not got.is_empty():
			_stderr_tail.append_array(got)
			if _stderr_tail.size() > STDERR_TAIL_BYTES:
				_stderr_tail = _stderr_tail.slice(_stderr_tail.size() - STDERR_TAIL_BYTES)
	if _stdio != null:
		_stdio.get_buffer(65536)  # its start line; read so the pipe never fills


func _fail_start(why: String) -> void:
	_drain_pipes()
	var tail := _stderr_tail.get_string_from_utf8().strip_edges()
	stop_server()
	if tail != "":
		why += "; the server wrote:\n" + tail
	failed.emit("server_start_failed", why)


func _notification(what: int) -> void:
	if what == NOTIFICATION_WM_CLOSE_REQUEST or what == NOTIFICATION_PREDELETE:
		stop_server()

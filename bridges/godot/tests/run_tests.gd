extends SceneTree
## Headless test runner: godot --headless --path bridges/godot -s res://tests/run_tests.gd
## Runs every test_* coroutine of the suites below, prints one line per test and
## "N passed, N failed", and quits with 0 only when all passed.
## The live tests start `npc-engine serve` themselves from NPC_ENGINE_PYTHON and
## NPC_ENGINE_SERVE_ARGS_JSON (a JSON array), on a free port, and kill/restart it for the
## reconnect test; NPC_ENGINE_SCHEMAS points at the repository's schemas/ folder.

const SUITES := [
	"res://tests/codec_tests.gd",
	"res://tests/export_tests.gd",
	"res://tests/fake_server_tests.gd",
	"res://tests/live_tests.gd",
	"res://tests/npc_server_tests.gd",
	"res://tests/resource_tests.gd",
]

var endpoint := ""
var schemas_dir := ""
var _server_pid := -1
var _failures: Array[String] = []


func _initialize() -> void:
	_run()


func _run() -> void:
	schemas_dir = OS.get_environment("NPC_ENGINE_SCHEMAS")
	var only := OS.get_environment("NPC_GODOT_TEST_FILTER")
	var num_passed := 0
	var num_failed := 0
	for path in SUITES:
		var script: Script = load(path)
		if script == null or not script.can_instantiate():
			num_failed += 1
			print("FAIL ", path, ": the suite does not load (see the errors above)")
			continue
		var suite: RefCounted = script.new()
		suite.set("h", self)
		for method in suite.get_method_list():
			var name: String = method.name
			if not name.begins_with("test_") or (only != "" and not name.contains(only)):
				continue
			_failures.clear()
			var started := Time.get_ticks_msec()
			await suite.call(name)
			var seconds := (Time.get_ticks_msec() - started) / 1000.0
			var label := "%s.%s (%.1f s)" % [path.get_file().get_basename(), name, seconds]
			if _failures.is_empty():
				num_passed += 1
				print("PASS ", label)
			else:
				num_failed += 1
				print("FAIL ", label, ": ", "; ".join(_failures))
	stop_server()
	print("%d passed, %d failed" % [num_passed, num_failed])
	quit(0 if num_failed == 0 and num_passed > 0 else 1)


## Records a failure (the test goes on, so one run shows every problem).
func check(condition: bool, what: String) -> bool:
	if not condition:
		_failures.append(what)
	return condition


## Waits frame by frame until [param condition] holds; false after [param timeout_s].
func wait_until(condition: Callable, timeout_s: float) -> bool:
	var deadline := Time.get_ticks_msec() + int(timeout_s * 1000.0)
	while not condition.call():
		if Time.get_ticks_msec() > deadline:
			return false
		await process_frame
	return true


func wait_seconds(seconds: float) -> void:
	await create_timer(seconds).timeout


## A client in the tree (so it is polled every frame), with quick reconnects for tests.
func make_client(at := "") -> NpcClient:
	var client := NpcClient.new()
	client.min_reconnect_delay_s = 0.05
	client.max_reconnect_delay_s = 0.5
	client.request_timeout_s = 240.0
	root.add_child(client)
	client.connect_to_server(at if at != "" else endpoint)
	return client


func free_client(client: NpcClient) -> void:
	client.close()
	client.queue_free()


func can_start_server() -> bool:
	return OS.get_environment("NPC_ENGINE_PYTHON") != ""


## Starts the server (same port on a restart) and returns once a client got its hello.
func start_server() -> bool:
	if not can_start_server():
		return false
	if endpoint == "":
		var probe := TCPServer.new()
		probe.listen(0, "127.0.0.1")
		endpoint = "tcp://127.0.0.1:%d" % probe.get_local_port()
		probe.stop()
	var parsed: Variant = JSON.parse_string(OS.get_environment("NPC_ENGINE_SERVE_ARGS_JSON"))
	var args := PackedStringArray(parsed if parsed is Array else [])
	args.append_array(["--bind", endpoint])
	_server_pid = OS.create_process(OS.get_environment("NPC_ENGINE_PYTHON"), args)
	if _server_pid <= 0:
		return false
	var probe_client := make_client()
	var is_up: bool = await wait_until(
		func() -> bool: return not probe_client.hello_result.is_empty(), 300.0
	)
	free_client(probe_client)
	return is_up


func ensure_server() -> bool:
	if _server_pid > 0 and OS.is_process_running(_server_pid):
		return true
	return await start_server()


func stop_server() -> void:
	if _server_pid > 0:
		OS.kill(_server_pid)
		var deadline := Time.get_ticks_msec() + 10000
		while OS.is_process_running(_server_pid) and Time.get_ticks_msec() < deadline:
			OS.delay_msec(20)
	_server_pid = -1

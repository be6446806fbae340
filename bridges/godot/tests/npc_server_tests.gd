extends RefCounted
## NpcServer, the launcher: starts `serve` (or a bundle), connects, reports failures with the
## server's stderr, and stops it (stdin closed, a bounded wait, then a kill of its own child only).

const TEMPLATE := "shopkeeper_reply"

var h  # the runner (run_tests.gd)


func test_npc_server_starts_the_server_connects_and_stops() -> void:
	var parsed: Variant = JSON.parse_string(OS.get_environment("NPC_ENGINE_SERVE_ARGS_JSON"))
	if not parsed is Array or not "serve" in parsed:
		return  # a cluster gateway suite: NpcServer launches `serve` only
	var client := NpcClient.new()
	client.request_timeout_s = 240.0
	h.root.add_child(client)
	var server := NpcServer.new()
	server.start_on_ready = false
	server.client = client
	server.development_command = OS.get_environment("NPC_ENGINE_PYTHON")
	server.development_args = PackedStringArray(parsed)
	var db := ProjectSettings.globalize_path("user://npc-server-test-%d.db" % Time.get_ticks_usec())
	server.server_args = PackedStringArray(["--db", db])
	h.root.add_child(server)
	var seen := []
	server.started.connect(func(at: String) -> void: seen.append(at))
	server.start_server()
	var is_up: bool = await h.wait_until(
		func() -> bool: return not client.hello_result.is_empty(), 240.0
	)
	h.check(is_up and seen == [server.endpoint], "started on %s, connected: %s" % [seen, is_up])
	h.check(
		server.endpoint.begins_with("tcp://127.0.0.1:"), "a loopback endpoint: " + server.endpoint
	)
	await client.upsert_speaker("player", "Aria")
	await client.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith."})
	var reply: NpcReply = await client.say_and_wait("brom", "player", "Any work?", TEMPLATE)
	h.check(
		reply.ok and reply.result.get("fields", {}).has("say"),
		"the launched server answers a say: %s" % reply
	)
	var server_pid := server.pid
	server.stop_server()
	var is_gone: bool = await h.wait_until(
		func() -> bool: return not OS.is_process_running(server_pid), 10.0
	)
	h.check(is_gone and not server.is_running(), "stopping ended the process")
	h.free_client(client)
	server.queue_free()


func test_npc_server_reports_a_server_that_cannot_start() -> void:
	var server := NpcServer.new()
	server.start_on_ready = false
	server.development_command = "/nonexistent/npc-engine-server"
	h.root.add_child(server)
	var errors := []
	server.failed.connect(
		func(code: String, message: String) -> void: errors.append([code, message])
	)
	server.start_server()
	await h.wait_until(func() -> bool: return not errors.is_empty(), 20.0)
	h.check(errors.size() == 1 and errors[0][0] == "server_start_failed", "failed: %s" % [errors])
	server.queue_free()


func test_npc_server_reports_what_the_server_wrote_when_it_cannot_start() -> void:
	var parsed: Variant = JSON.parse_string(OS.get_environment("NPC_ENGINE_SERVE_ARGS_JSON"))
	if not parsed is Array or not "serve" in parsed:
		return  # a cluster gateway suite: NpcServer launches `serve` only
	var server := NpcServer.new()
	server.start_on_ready = false
	server.development_command = OS.get_environment("NPC_ENGINE_PYTHON")
	server.development_args = PackedStringArray(parsed)
	server.server_args = PackedStringArray(["--no-such-flag"])
	h.root.add_child(server)
	var errors := []
	server.failed.connect(
		func(code: String, message: String) -> void: errors.append([code, message])
	)
	server.start_server()
	await h.wait_until(func() -> bool: return not errors.is_empty(), 120.0)
	h.check(
		(
			errors.size() == 1
			and errors[0][0] == "server_start_failed"
			and "--no-such-flag" in errors[0][1]
		),
		"the server's stderr in the failure: %s" % [errors]
	)
	h.check(not server.is_running() and server.pid == -1, "nothing left running")
	server.queue_free()


func test_npc_server_never_signals_a_server_that_already_ended() -> void:
	var server := NpcServer.new()
	server.start_on_ready = false
	server.development_command = "/bin/sh"
	server.development_args = PackedStringArray(["-c", "exit 0"])  # ends at once, before listening
	server.start_timeout_s = 5.0
	h.root.add_child(server)
	var errors := []
	server.failed.connect(
		func(code: String, message: String) -> void: errors.append([code, message])
	)
	server.start_server()
	var child_pid := server.pid
	await h.wait_until(func() -> bool: return not errors.is_empty(), 20.0)
	h.check(child_pid > 0 and errors.size() == 1, "it ended: %s" % [errors])
	h.check(not OS.is_process_running(child_pid), "the child is gone (reaped)")
	server.stop_server()  # again: nothing to signal
	h.check(server.pid == -1 and not server.is_running(), "stop after the end is a no-op")
	server.queue_free()


func test_npc_server_reports_a_missing_bundle() -> void:
	var server := NpcServer.new()
	server.start_on_ready = false
	server.bundle_path = "no-such-folder/npc-engine-server"
	h.root.add_child(server)
	var errors := []
	server.failed.connect(
		func(code: String, message: String) -> void: errors.append([code, message])
	)
	server.start_server()
	h.check(
		errors.size() == 1 and errors[0][0] == "bad_bundle" and "npc-engine bundle" in errors[0][1],
		"a missing bundle: %s" % [errors]
	)
	h.check(server.pid == -1 and not server.is_running(), "nothing started")
	server.queue_free()

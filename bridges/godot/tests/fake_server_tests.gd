extends RefCounted
## The addon against a scripted peer: heartbeats, malformed input, another version, no server.

const FakeServer := preload("res://tests/fake_server.gd")

var h  # the runner (run_tests.gd)


func _errors_of(client: NpcClient) -> Array:
	var errors := []
	client.error.connect(
		func(code: String, message: String, _id: String) -> void: errors.append([code, message])
	)
	return errors


func test_ping_is_answered_with_pong_carrying_its_context() -> void:
	var fake := FakeServer.new()
	var client: NpcClient = h.make_client(fake.endpoint())
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	fake.send_frame(0x04, PackedByteArray([4, 80, 73, 78, 71, 0, 50, 0xca, 0xfe]))
	var pong: Array = await fake.read_frame(h)
	while pong[0] & 0x04 == 0 and not pong[1].is_empty():  # skip the automatic hello
		pong = await fake.read_frame(h)
	h.check(pong[0] == 0x04, "PONG is a command frame")
	h.check(pong[1] == PackedByteArray([4, 80, 79, 78, 71, 0xca, 0xfe]), "PONG echoes the context")
	h.check(client.num_pings_answered == 1, "counted")
	h.free_client(client)
	fake.stop()


func test_long_frames_round_trip() -> void:
	var fake := FakeServer.new()
	var client: NpcClient = h.make_client(fake.endpoint())
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	await fake.read_request(h)  # the automatic hello; left unanswered
	var big := "w".repeat(5000)
	var request := client.send_request("world.set", {"key": "k", "text": big})
	var got: Dictionary = await fake.read_request(h)
	var version: String = got.get("protocol_version", "")
	h.check(got.get("text") == big and version == NpcConnection.PROTOCOL_VERSION, "long frame out")
	fake.reply(request.request_id, {"echo": big})
	var reply: NpcReply = await request.wait()
	h.check(reply.ok and reply.result.echo == big, "long frame in")
	h.free_client(client)
	fake.stop()


func test_malformed_frames_are_errors_and_the_client_recovers() -> void:
	var fake := FakeServer.new()
	var client: NpcClient = h.make_client(fake.endpoint())
	var errors := _errors_of(client)
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	await fake.read_request(h)  # hello
	fake.send_frame(0, PackedByteArray([0xc1]))
	fake.send_frame(0x01, NpcMsgPack.encode({}))
	fake.send_frame(0, NpcMsgPack.encode({}))
	h.check(
		await h.wait_until(func() -> bool: return errors.size() >= 2, 10.0), "two error signals"
	)
	h.check(errors.size() >= 2 and errors[0][0] == "bad_message", "bad body: %s" % [errors])
	h.check(errors.size() >= 2 and errors[1][0] == "malformed_frame", "multipart: %s" % [errors])
	var ping := client.send_request("ping")
	var got: Dictionary = await fake.read_request(h)
	fake.reply(got.request_id, {"server_time_ms": 7})
	var reply: NpcReply = await ping.wait()
	h.check(
		reply.ok and reply.result.server_time_ms == 7 and client.num_connects == 1, "kept going"
	)
	var lost := client.send_request("ping")
	await fake.read_request(h)
	fake.peer.put_data(PackedByteArray([0xf0, 0]))
	var failed: NpcReply = await lost.wait()
	h.check(failed.code == "connection_lost", "in-flight request fails: %s" % failed)
	h.check(await fake.accept(h) == "", "the client reconnects")
	h.check(
		await h.wait_until(func() -> bool: return client.num_connects == 2, 10.0), "connected again"
	)
	var reserved := errors.filter(func(e: Array) -> bool: return e[1].contains("reserved"))
	h.check(not reserved.is_empty(), "reserved bits reported: %s" % [errors])
	h.free_client(client)
	fake.stop()


func test_hostile_frames_are_skipped_unbuffered_and_the_next_reply_arrives() -> void:
	var fake := FakeServer.new()
	var client := NpcClient.new()
	client.max_reply_bytes = 1000
	h.root.add_child(client)
	client.connect_to_server(fake.endpoint())
	var errors := _errors_of(client)
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	await fake.read_request(h)  # hello
	# A frame with MORE, over the cap, half sent: skipped as it streams, never held.
	var ping := client.send_request("ping")
	var got: Dictionary = await fake.read_request(h)
	var size := 2 << 20
	var header := PackedByteArray([0x01 | 0x02])
	for i in range(7, -1, -1):
		header.append((size >> (8 * i)) & 0xff)
	fake.peer.put_data(header)
	var half := PackedByteArray()
	half.resize(size / 2)
	fake.peer.put_data(half)
	var most := [0]
	var watch := func() -> bool:
		most[0] = maxi(most[0], client._zmtp.num_buffered_bytes())
		return false
	await h.wait_until(watch, 1.0)
	h.check(most[0] < 65536, "an oversized frame is not buffered: %d bytes held" % most[0])
	fake.peer.put_data(half)
	fake.send_frame(0, PackedByteArray([1, 2, 3]))  # the multi-frame message's last frame
	fake.reply(got.request_id, {"server_time_ms": 1})
	var reply: NpcReply = await ping.wait()
	h.check(reply.ok, "the reply after a skipped multi-frame message arrives: %s" % reply)
	# A multi-frame message whose last frame is over the cap: the next reply still arrives.
	var second := client.send_request("ping")
	got = await fake.read_request(h)
	fake.send_frame(0x01, PackedByteArray([9]))
	var oversized := PackedByteArray()
	oversized.resize(5000)
	fake.send_frame(0, oversized)
	fake.reply(got.request_id, {"server_time_ms": 2})
	reply = await second.wait()
	h.check(
		reply.ok and reply.result.server_time_ms == 2, "not stuck in multipart mode: %s" % reply
	)
	var skipped := errors.filter(func(e: Array) -> bool: return e[1].contains("multi-frame"))
	h.check(skipped.size() == 2, "each skipped message reported once: %s" % [errors])
	h.free_client(client)
	fake.stop()


func test_hello_refuses_another_protocol_major() -> void:
	var fake := FakeServer.new()
	var client: NpcClient = h.make_client(fake.endpoint())
	var errors := _errors_of(client)
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	var hello: Dictionary = await fake.read_request(h)
	h.check(
		hello.get("op") == "hello" and hello.get("client_name") == "npc-engine-godot", "hello sent"
	)
	fake.reply(hello.request_id, {"protocol_version": "2.0", "server": "npc-engine"})
	var refused := func() -> bool:
		return errors.any(func(e: Array) -> bool: return e[0] == "unsupported_version")
	h.check(await h.wait_until(refused, 10.0), "version error signalled: %s" % [errors])
	h.check(not client.is_connected_to_server(), "the client stops talking")
	h.free_client(client)
	fake.stop()


func test_no_server_means_errors_and_a_clean_close() -> void:
	var probe := TCPServer.new()
	probe.listen(0, "127.0.0.1")
	var port := probe.get_local_port()
	probe.stop()
	var client: NpcClient = h.make_client("tcp://127.0.0.1:%d" % port)
	var errors := _errors_of(client)
	var ping := client.send_request("ping")
	h.check(await h.wait_until(func() -> bool: return errors.size() >= 3, 10.0), "retries reported")
	h.check(not errors.is_empty() and errors[0][0] == "connect_failed", "code: %s" % [errors])
	h.check(not ping.is_done, "a request waits for the server")
	client.close()
	var reply: NpcReply = await ping.wait()
	h.check(reply.code == "closed", "close finishes it: %s" % reply)
	var after: NpcReply = await client.ping()
	h.check(after.code == "closed", "calls after close fail cleanly")
	h.check(
		client.connect_to_server("localhost:1") == ERR_INVALID_PARAMETER, "bad endpoint refused"
	)
	h.free_client(client)


func test_requests_time_out() -> void:
	var fake := FakeServer.new()
	var client: NpcClient = h.make_client(fake.endpoint())
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	var request := client.send_request("ping", {}, 0.2)
	var reply: NpcReply = await request.wait()
	h.check(reply.code == "timeout", "timed out: %s" % reply)
	h.free_client(client)
	fake.stop()


func test_fields_and_event_kinds_of_a_newer_minor_are_ignored() -> void:
	var fake := FakeServer.new()
	var client: NpcClient = h.make_client(fake.endpoint())
	var errors := _errors_of(client)
	var handshake: String = await fake.accept(h)
	h.check(handshake == "", "handshake: " + handshake)
	await fake.read_request(h)  # the automatic hello; left unanswered
	var request := client.say("brom", "player", "Hi", "shopkeeper_reply")
	var drafts := []
	request.draft_received.connect(
		func(fields: Dictionary, num_steps: int) -> void: drafts.append([fields, num_steps])
	)
	var got: Dictionary = await fake.read_request(h)
	var id: String = got.request_id
	var added := {"note": "a field this client has never heard of", "count": 3}
	var thought := {
		"type": "event",
		"event": "thought",
		"protocol_version": "1.4",
		"request_id": id,
		"thought": {"text": "hmm"}
	}
	fake.send_frame(0, NpcMsgPack.encode(thought))
	var draft := {
		"type": "event",
		"event": "draft",
		"protocol_version": "1.4",
		"request_id": id,
		"added_in_1_4": added,
		"draft": {"fields": {"say": "Wel"}, "num_steps": 1, "added_in_1_4": added}
	}
	fake.send_frame(0, NpcMsgPack.encode(draft))
	fake.send_frame(
		0, NpcMsgPack.encode({"type": "notice", "protocol_version": "1.4", "text": "new"})
	)
	var change := {
		"kind": "mood", "slot": "emotion", "path": "mood", "new": "glad", "added_in_1_4": added
	}
	var result := {
		"character_id": "brom",
		"speaker_id": "player",
		"finish_reason": "complete",
		"fields": {"say": "Welcome."},
		"changes": [change],
		"seed": 7,
		"num_steps": 3,
		"elapsed_ms": 12.5,
		"num_prompt_tokens": 40,
		"num_cached_prompt_tokens": 0,
		"added_in_1_4": added
	}
	var message := {
		"type": "reply",
		"protocol_version": "1.4",
		"request_id": id,
		"op": "say",
		"ok": true,
		"result": result,
		"added_in_1_4": added
	}
	fake.send_frame(0, NpcMsgPack.encode(message))
	var reply: NpcReply = await request.wait()
	h.check(reply.ok and reply.result.fields.say == "Welcome.", "the reply is read: %s" % reply)
	h.check(reply.result.changes[0].new == "glad", "its changes too")
	h.check(drafts.size() == 1 and drafts[0][0].say == "Wel", "one draft: %s" % [drafts])
	h.check(errors.is_empty(), "no errors: %s" % [errors])
	h.free_client(client)
	fake.stop()

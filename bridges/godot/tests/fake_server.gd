extends RefCounted
## A scripted ZMTP peer on loopback, for what a real server never does (malformed frames,
## another protocol version). It checks the client's greeting and READY byte for byte.

var port := 0
var peer: StreamPeerTCP
var _server := TCPServer.new()
var _peers: Array[StreamPeerTCP] = []
var _buffer := PackedByteArray()


func _init() -> void:
	_server.listen(0, "127.0.0.1")
	port = _server.get_local_port()


func endpoint() -> String:
	return "tcp://127.0.0.1:%d" % port


## Accepts a client and completes the handshake as a ROUTER; "" on success, else the problem.
func accept(tree: SceneTree) -> String:
	var deadline := Time.get_ticks_msec() + 10000
	while not _server.is_connection_available():
		if Time.get_ticks_msec() > deadline:
			return "no client connected"
		await tree.process_frame
	peer = _server.take_connection()
	_peers.append(peer)
	_buffer = PackedByteArray()
	var greeting: PackedByteArray = await read_bytes(tree, 64)
	if greeting != NpcZmtp.greeting():
		return "the client's greeting is not the ZMTP 3.1 NULL client greeting"
	var ours := NpcZmtp.greeting()
	ours[32] = 1
	peer.put_data(ours)
	var ready: Array = await read_frame(tree)
	var expected := NpcZmtp.ready_command("DEALER")
	if ready[0] != 0x04 or ready[1] != expected.slice(2):
		return "the client's READY is not a DEALER's: " + ready[1].hex_encode()
	peer.put_data(NpcZmtp.ready_command("ROUTER"))
	return ""


func read_bytes(tree: SceneTree, count: int) -> PackedByteArray:
	var deadline := Time.get_ticks_msec() + 10000
	while _buffer.size() < count and Time.get_ticks_msec() < deadline:
		peer.poll()
		var available := peer.get_available_bytes()
		if available > 0:
			_buffer.append_array(peer.get_partial_data(available)[1])
		else:
			await tree.process_frame
	var out := _buffer.slice(0, count)
	_buffer = _buffer.slice(count)
	return out


## [flags, body] of the next frame.
func read_frame(tree: SceneTree) -> Array:
	var flags: int = (await read_bytes(tree, 1))[0]
	var size := 0
	if flags & 0x02:
		for byte in await read_bytes(tree, 8):
			size = (size << 8) | byte
	else:
		size = (await read_bytes(tree, 1))[0]
	return [flags, await read_bytes(tree, size)]


## The next message (commands such as PONG are collected in [param commands]).
func read_request(tree: SceneTree, commands := []) -> Dictionary:
	while true:
		var got: Array = await read_frame(tree)
		if got[0] & 0x04 == 0:
			return NpcMsgPack.decode(got[1]).value
		commands.append(got[1])
	return {}


func send_frame(flags: int, body: PackedByteArray) -> void:
	peer.put_data(NpcZmtp.frame(flags, body))


func reply(request_id: String, result: Dictionary) -> void:
	var message := {
		"type": "reply",
		"protocol_version": "1.0",
		"request_id": request_id,
		"op": "x",
		"ok": true,
		"result": result
	}
	send_frame(0, NpcMsgPack.encode(message))


func stop() -> void:
	for each in _peers:
		each.disconnect_from_host()
	_server.stop()

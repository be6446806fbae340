class_name NpcZmtp
extends RefCounted
## ZMTP 3.1 for a DEALER with the NULL mechanism over a [StreamPeerTCP] (schemas/PROTOCOL.md
## section 1), driven by [method poll]: it never blocks. Each poll sends what the socket takes,
## reads what has arrived (bounded), answers PING with PONG, and returns what happened as
## events: [code]{"kind": "ready"}[/code], [code]{"kind": "message", "body": bytes}[/code],
## [code]{"kind": "oversized", "num_bytes": n, "request_id": id}[/code],
## [code]{"kind": "bad_frame", "message": text}[/code] (kept going), or
## [code]{"kind": "closed", "code": c, "message": text}[/code] (the stream is over).

enum State { CONNECTING, GREETING, HANDSHAKE, READY, CLOSED }

const FLAG_MORE := 0x01
const FLAG_LONG := 0x02
const FLAG_COMMAND := 0x04
const MAX_COMMAND_BYTES := 65536
const PEEK_BYTES := 512

var state := State.CONNECTING
var num_pings_answered := 0
var max_body_bytes := 16 << 20
var max_read_bytes_per_poll := 1 << 20

var _peer: StreamPeerTCP
var _in := PackedByteArray()
var _in_pos := 0  # bytes of _in already parsed; dropped once per poll, not per frame
var _out := PackedByteArray()
var _skip_left := 0
var _skip_prefix := PackedByteArray()
var _skip_size := 0
var _skip_is_part := false  # the frame being skipped belongs to a multi-frame message
var _is_multipart := false
var _has_received := false


func _init(peer: StreamPeerTCP, max_body: int) -> void:
	_peer = peer
	max_body_bytes = max_body


## The 64-byte greeting of a NULL client (as-server false).
static func greeting() -> PackedByteArray:
	var bytes := PackedByteArray()
	bytes.resize(64)
	bytes[0] = 0xff
	bytes[9] = 0x7f
	bytes[10] = 3
	bytes[11] = 1
	var mechanism := "NULL".to_ascii_buffer()
	for i in mechanism.size():
		bytes[12 + i] = mechanism[i]
	return bytes


## A frame: flags, a 1- or 8-byte size, the body.
static func frame(flags: int, body: PackedByteArray) -> PackedByteArray:
	var out := PackedByteArray()
	if body.size() > 255:
		out.append(flags | FLAG_LONG)
		for i in range(7, -1, -1):
			out.append((body.size() >> (8 * i)) & 0xff)
	else:
		out.append(flags)
		out.append(body.size())
	out.append_array(body)
	return out


static func command(name: String, payload: PackedByteArray) -> PackedByteArray:
	var body := PackedByteArray([name.length()])
	body.append_array(name.to_ascii_buffer())
	body.append_array(payload)
	return frame(FLAG_COMMAND, body)


static func ready_command(socket_type: String) -> PackedByteArray:
	var payload := PackedByteArray([11])
	payload.append_array("Socket-Type".to_ascii_buffer())
	payload.append_array(PackedByteArray([0, 0, 0, socket_type.length()]))
	payload.append_array(socket_type.to_ascii_buffer())
	return command("READY", payload)


func send_message(body: PackedByteArray) -> void:
	_out.append_array(frame(0, body))


## Bytes read and not yet parsed (bounded by what one frame under the cap needs).
func num_buffered_bytes() -> int:
	return _unread()


## True once per poll that read bytes (any byte, pings included, shows the server is alive).
func has_received() -> bool:
	var was := _has_received
	_has_received = false
	return was


func close() -> void:
	state = State.CLOSED
	_peer.disconnect_from_host()


func poll() -> Array:
	var events := []
	if state == State.CLOSED:
		return events
	_peer.poll()
	var status := _peer.get_status()
	if state == State.CONNECTING:
		if status == StreamPeerTCP.STATUS_CONNECTING:
			return events
		if status != StreamPeerTCP.STATUS_CONNECTED:
			return _closed(events, "connect_failed", "the connection was refused")
		state = State.GREETING
		_peer.set_no_delay(true)  # small requests go out at once
		_out.append_array(greeting())
	elif status != StreamPeerTCP.STATUS_CONNECTED:
		return _closed(events, "connection_lost", "the server closed the connection")
	if not _flush():
		return _closed(events, "connection_lost", "the connection broke while sending")
	var available := mini(_peer.get_available_bytes(), max_read_bytes_per_poll)
	if available > 0:
		var got := _peer.get_partial_data(available)
		if got[0] != OK:
			return _closed(events, "connection_lost", "the connection broke while reading")
		_in.append_array(got[1])
		_has_received = true
	_parse(events)
	if state != State.CLOSED and not _flush():
		return _closed(events, "connection_lost", "the connection broke while sending")
	return events


func _flush() -> bool:
	if _out.is_empty() or state == State.CONNECTING:
		return true
	var sent := _peer.put_partial_data(_out)
	if sent[0] != OK:
		return false
	_out = _out.slice(sent[1])
	return true


func _closed(events: Array, code: String, message: String) -> Array:
	state = State.CLOSED
	_peer.disconnect_from_host()
	events.append({"kind": "closed", "code": code, "message": message})
	return events


func _parse(events: Array) -> void:
	_parse_buffered(events)
	_in = _in.slice(_in_pos)
	_in_pos = 0


func _unread() -> int:
	return _in.size() - _in_pos


func _take(count: int) -> PackedByteArray:
	_in_pos += count
	return _in.slice(_in_pos - count, _in_pos)


func _parse_buffered(events: Array) -> void:
	while state != State.CLOSED:
		if _skip_left > 0 and not _skip_some(events):
			return
		if state == State.GREETING:
			if _unread() < 64:
				return
			var problem := _check_greeting(_take(64))
			if problem != "":
				_closed(events, "malformed_frame", problem)
				return
			_out.append_array(ready_command("DEALER"))
			state = State.HANDSHAKE
			continue
		if not _parse_frame(events):
			return


## Parses one frame if it is all here (or starts skipping an oversized one); false to wait for more.
func _parse_frame(events: Array) -> bool:
	if _unread() < 2:
		return false
	var flags := _in[_in_pos]
	if flags & 0xf8:
		_closed(events, "malformed_frame", "frame flags 0x%02x use reserved bits" % flags)
		return false
	var header := 9 if flags & FLAG_LONG else 2
	if _unread() < header:
		return false
	var size := _in[_in_pos + 1]
	if flags & FLAG_LONG:
		size = 0
		for i in 8:
			size = (size << 8) | _in[_in_pos + 1 + i]
		if size < 0:
			_closed(events, "malformed_frame", "a frame claims a negative size")
			return false
	var is_command := (flags & FLAG_COMMAND) != 0
	if not is_command and state == State.READY and size > max_body_bytes:
		# Skipped as it streams, never buffered, whether or not more frames follow.
		_in_pos += header
		_skip_left = size
		_skip_size = size
		_skip_prefix = PackedByteArray()
		_skip_is_part = _is_multipart or (flags & FLAG_MORE) != 0
		_is_multipart = (flags & FLAG_MORE) != 0
		return true
	if is_command and size > MAX_COMMAND_BYTES:
		_closed(events, "malformed_frame", "a command frame of %d bytes is too large" % size)
		return false
	if _unread() < header + size:
		return false
	_in_pos += header
	var body := _take(size)
	if is_command:
		_on_command(body, events)
	elif state != State.READY:
		_closed(events, "malformed_frame", "a message arrived before the server's READY")
	elif flags & FLAG_MORE or _is_multipart:
		_is_multipart = (flags & FLAG_MORE) != 0
		if not _is_multipart:
			events.append({"kind": "bad_frame", "message": "a multi-frame message was skipped"})
	else:
		events.append({"kind": "message", "body": body})
	return true


func _skip_some(events: Array) -> bool:
	var take := mini(_skip_left, _unread())
	if _skip_prefix.size() < PEEK_BYTES:
		var num_peek := mini(take, PEEK_BYTES - _skip_prefix.size())
		_skip_prefix.append_array(_in.slice(_in_pos, _in_pos + num_peek))
	_in_pos += take
	_skip_left -= take
	if _skip_left > 0:
		return false
	if _skip_is_part:
		if not _is_multipart:  # that was its last frame: the next frame starts a new message
			events.append({"kind": "bad_frame", "message": "a multi-frame message was skipped"})
		return true
	var request_id := NpcMsgPack.peek_string(_skip_prefix, "request_id")
	events.append({"kind": "oversized", "num_bytes": _skip_size, "request_id": request_id})
	return true


func _on_command(body: PackedByteArray, events: Array) -> void:
	if body.is_empty() or body[0] + 1 > body.size():
		_closed(events, "malformed_frame", "a command frame has no readable name")
		return
	var name := body.slice(1, 1 + body[0]).get_string_from_ascii()
	var rest := body.slice(1 + body[0])
	match name:
		"PING":
			# PING: a 2-byte TTL, then up to 16 bytes of context that PONG echoes.
			_out.append_array(
				command("PONG", rest.slice(2) if rest.size() > 2 else PackedByteArray())
			)
			num_pings_answered += 1
		"READY":
			if state != State.HANDSHAKE:
				return
			var socket_type := _property(rest, "Socket-Type")
			if socket_type != "ROUTER":
				_closed(events, "malformed_frame", "the server is a %s, not a ROUTER" % socket_type)
				return
			state = State.READY
			events.append({"kind": "ready"})
		"ERROR":
			var reason := rest.slice(1).get_string_from_ascii() if rest.size() > 1 else ""
			_closed(events, "connection_lost", "the server closed the connection: " + reason)


static func _property(payload: PackedByteArray, wanted: String) -> String:
	var pos := 0
	while pos < payload.size():
		var name_length := payload[pos]
		if pos + 1 + name_length + 4 > payload.size():
			return ""
		var name := payload.slice(pos + 1, pos + 1 + name_length).get_string_from_ascii()
		pos += 1 + name_length
		var value_length := 0
		for i in 4:
			value_length = (value_length << 8) | payload[pos + i]
		pos += 4
		if value_length > payload.size() - pos:
			return ""
		if name.to_lower() == wanted.to_lower():
			return payload.slice(pos, pos + value_length).get_string_from_ascii()
		pos += value_length
	return ""


static func _check_greeting(peer: PackedByteArray) -> String:
	if peer[0] != 0xff or (peer[9] & 0x01) != 0x01:
		return "the peer's greeting has no ZMTP signature (is this an npc-engine server?)"
	if peer[10] < 3:
		return "the peer speaks ZMTP %d.%d; 3.x is required" % [peer[10], peer[11]]
	var mechanism := peer.slice(12, 32).get_string_from_ascii()
	if mechanism != "NULL":
		return "the server asks for the %s mechanism; this addon speaks NULL only" % mechanism
	return ""

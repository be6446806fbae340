class_name NpcConnection
extends Node
## The transport half of [NpcClient]: a ZMTP DEALER polled from [method _process] (never blocking
## a frame), request bookkeeping by id, timeouts, heartbeat-silence detection and reconnection
## with backoff. Signals fire on the main thread, during this node's processing.

signal connected(hello: Dictionary)
signal disconnected(reason: String)
signal error(code: String, message: String, request_id: String)
signal draft(request_id: String, character_id: String, fields: Dictionary)
## A say finished with a line (not emitted for a cancelled say; its request still finishes).
signal line_ready(request_id: String, character_id: String, result: Dictionary)

const PROTOCOL_VERSION := "1.4"
const VERSION := "0.1.0"
const DEFAULT_ENDPOINT := "tcp://127.0.0.1:5555"

@export var endpoint := DEFAULT_ENDPOINT
@export var client_name := "npc-engine-godot"
@export var request_timeout_s := 30.0
## A live server pings every second; this much silence means it is gone.
@export var heartbeat_timeout_s := 5.0
## How long one connect attempt (TCP and the ZMTP handshake) may take before it is retried.
@export var connect_timeout_s := 5.0
@export var min_reconnect_delay_s := 0.1
@export var max_reconnect_delay_s := 5.0
## Replies larger than this are skipped; their request fails with reply_too_large.
@export var max_reply_bytes := 16 << 20

var hello_result := {}
var num_connects := 0
var num_pings_answered := 0

var _zmtp: NpcZmtp
var _is_open := false
var _is_ready := false
var _host := ""
var _port := 0
var _pending := {}
var _unsent: Array[NpcRequest] = []
var _next_id := 0
var _id_prefix := ""
var _num_failures := 0
var _reconnect_at_ms := 0
var _last_heard_ms := 0
var _connect_started_ms := 0
var _last_pings := 0


func _process(_delta: float) -> void:
	poll()


## Starts connecting (non-blocking); [signal connected] fires after the hello. Returns an error
## code for a malformed endpoint (also reported through [signal error]).
func connect_to_server(endpoint_override := "") -> Error:
	if endpoint_override != "":
		endpoint = endpoint_override
	var parsed := _parse_endpoint(endpoint)
	if parsed.is_empty():
		error.emit(
			"invalid_config", "endpoint must look like tcp://HOST:PORT, got '%s'" % endpoint, ""
		)
		return ERR_INVALID_PARAMETER
	_check_before_connecting()
	_host = parsed[0]
	_port = parsed[1]
	_id_prefix = "%06x-" % (randi() & 0xffffff)
	_is_open = true
	_num_failures = 0
	_start_connect()
	return OK


func is_connected_to_server() -> bool:
	return _is_ready


## True between [method connect_to_server] and [method close], connected or reconnecting.
func is_open() -> bool:
	return _is_open


## Closes the socket; outstanding requests finish with code "closed".
func close() -> void:
	_is_open = false
	_drop("closed", "the client was closed")
	var requests := _pending.values()
	_pending.clear()
	_unsent.clear()
	for request in requests:
		request.finish(NpcReply.failure(request.request_id, "closed", "the client was closed"))


## Sends any op; [code]await request.wait()[/code] gives the reply.
func send_request(op: String, fields := {}, timeout_s := -1.0) -> NpcRequest:
	_next_id += 1
	var request := NpcRequest.new()
	request.request_id = "%s%d" % [_id_prefix, _next_id]
	request.op = op
	var message := {
		"protocol_version": PROTOCOL_VERSION, "op": op, "request_id": request.request_id
	}
	message.merge(fields)
	return _enqueue(request, message, timeout_s)


## Sends [param message] exactly as given (tests send what a correct client never would).
func send_raw(message: Dictionary) -> NpcRequest:
	var request := NpcRequest.new()
	request.request_id = str(message.get("request_id", ""))
	request.op = str(message.get("op", ""))
	return _enqueue(request, message, -1.0)


func _enqueue(request: NpcRequest, message: Dictionary, timeout_s: float) -> NpcRequest:
	var timeout := request_timeout_s if timeout_s <= 0.0 else timeout_s
	request.deadline_ms = Time.get_ticks_msec() + int(timeout * 1000.0)
	var encoded := NpcMsgPack.try_encode(message)
	if encoded[1] != "":
		request.finish.call_deferred(
			NpcReply.failure(request.request_id, "invalid_request", encoded[1])
		)
		return request
	if not _is_open:
		var closed := NpcReply.failure(
			request.request_id, "closed", "call connect_to_server() first"
		)
		request.finish.call_deferred(closed)
		return request
	request.body = encoded[0]
	_pending[request.request_id] = request
	_unsent.append(request)
	_send_unsent()
	return request


## One round of IO; [method _process] calls it every frame.
func poll() -> void:
	if not _is_open:
		return
	var now := Time.get_ticks_msec()
	if _zmtp == null:
		if now >= _reconnect_at_ms:
			_start_connect()
	else:
		var was_ready := _is_ready
		for event in _zmtp.poll():
			_on_event(event)
			if _zmtp == null:
				break
		if _zmtp != null:
			num_pings_answered = _last_pings + _zmtp.num_pings_answered
			if _zmtp.has_received():
				_last_heard_ms = now
			if was_ready and now - _last_heard_ms > int(heartbeat_timeout_s * 1000.0):
				_lost("connection_lost", "the server was silent past the heartbeat timeout")
			elif not _is_ready and now - _connect_started_ms > int(connect_timeout_s * 1000.0):
				_connect_failed("no connection to %s within %.1f s" % [endpoint, connect_timeout_s])
	_check_timeouts(now)


func _start_connect() -> void:
	var peer := StreamPeerTCP.new()
	if peer.connect_to_host(_host, _port) != OK:
		_connect_failed("cannot start a connection to %s" % endpoint)
		return
	_zmtp = NpcZmtp.new(peer, max_reply_bytes)
	_last_heard_ms = Time.get_ticks_msec()
	_connect_started_ms = _last_heard_ms


func _on_event(event: Dictionary) -> void:
	match event.kind:
		"ready":
			_is_ready = true
			_num_failures = 0
			num_connects += 1
			_last_heard_ms = Time.get_ticks_msec()
			_send_unsent()
			_say_hello()
		"message":
			_on_message(event.body)
		"oversized":
			var text := (
				"a reply of %d bytes is over the client's cap of %d bytes"
				% [event.num_bytes, max_reply_bytes]
			)
			_fail(event.request_id, "reply_too_large", text, true)
		"bad_frame":
			error.emit("malformed_frame", event.message, "")
		"closed":
			if _is_ready:
				_lost(event.code, event.message)
			elif event.code == "malformed_frame":
				error.emit(event.code, event.message, "")
				_connect_failed(event.message)
			else:
				_connect_failed(
					(
						"cannot connect to %s: %s (is `npc-engine serve` running?)"
						% [endpoint, event.message]
					)
				)


## Sends hello and checks the protocol major; another major is an unsupported_version failure.
func hello() -> NpcReply:
	var fields := {"client_name": client_name, "client_version": VERSION}
	var reply: NpcReply = await send_request("hello", fields).wait()
	if reply.ok:
		var theirs := str(reply.result.get("protocol_version", ""))
		if theirs.get_slice(".", 0) != PROTOCOL_VERSION.get_slice(".", 0):
			var text := (
				"the server speaks protocol %s, this addon %s; update one of them"
				% [theirs, PROTOCOL_VERSION]
			)
			var details := {"client_version": PROTOCOL_VERSION, "server_version": theirs}
			return NpcReply.failure(reply.request_id, "unsupported_version", text, details)
	return reply


func _say_hello() -> void:
	var reply: NpcReply = await hello()
	if not reply.ok:
		if reply.code != "closed" and reply.code != "connection_lost":
			error.emit(reply.code, reply.message, reply.request_id)
		if reply.code == "unsupported_version":
			close()  # talking on would only produce more refusals
		return
	hello_result = reply.result
	for warning in reply.result.get("warnings", []):
		push_warning("npc-engine: %s" % warning)
	await _prepare_connected()
	connected.emit(hello_result)


## Called as [method connect_to_server] starts (a subclass checks its configuration here).
func _check_before_connecting() -> void:
	pass


## Awaited after each hello, before [signal connected] (a subclass puts its assets on the server).
func _prepare_connected() -> void:
	pass


func _on_message(body: PackedByteArray) -> void:
	var decoded := NpcMsgPack.decode(body)
	if decoded.error != "" or not decoded.value is Dictionary:
		var why := decoded.error if decoded.error != "" else "not a map"
		error.emit("bad_message", "a message from the server could not be read: " + why, "")
		return
	var message: Dictionary = decoded.value
	var request_id := str(message.get("request_id", ""))
	var request: NpcRequest = _pending.get(request_id)
	if message.get("type") == "event":
		var draft_body: Variant = message.get("draft")
		if request != null and message.get("event") == "draft" and draft_body is Dictionary:
			var fields: Dictionary = draft_body.get("fields", {})
			request.draft_received.emit(fields, int(draft_body.get("num_steps", 0)))
			draft.emit(request_id, request.character_id, fields)
		return
	if message.get("type") != "reply":
		return  # a kind a newer server may send; ignored by the protocol's rule
	if message.get("ok") == true:
		if request != null:
			_pending.erase(request_id)
			var result: Dictionary = message.get("result", {})
			if request.op == "say" and result.get("finish_reason") != "cancelled":
				line_ready.emit(request_id, request.character_id, result)
			request.finish(NpcReply.success(request_id, result))
		return
	var fault: Dictionary = message.get("error", {}) if message.get("error") is Dictionary else {}
	var code := str(fault.get("code", "internal"))
	var text := str(fault.get("message", ""))
	if request == null:
		if message.get("request_id") == null:
			error.emit(code, text, "")
		return
	_pending.erase(request_id)
	if request.op == "say":
		error.emit(code, text, request_id)
	request.finish(NpcReply.failure(request_id, code, text, fault.get("details", {})))


func _send_unsent() -> void:
	if not _is_ready:
		return
	for request in _unsent:
		if _pending.has(request.request_id):
			_zmtp.send_message(request.body)
			request.is_sent = true
	_unsent.clear()


func _fail(request_id: String, code: String, text: String, report_unmatched: bool) -> void:
	var request: NpcRequest = _pending.get(request_id)
	if request == null:
		if report_unmatched:
			error.emit(code, text, request_id)
		return
	_pending.erase(request_id)
	if request.op == "say":
		error.emit(code, text, request_id)
	request.finish(NpcReply.failure(request_id, code, text))


func _check_timeouts(now: int) -> void:
	for request in _pending.values():
		if now < request.deadline_ms:
			continue
		_fail(
			request.request_id, "timeout", "%s got no reply within its timeout" % request.op, false
		)
		_unsent.erase(request)
		if request.op == "say" and _is_ready:
			var cancel := {
				"protocol_version": PROTOCOL_VERSION,
				"op": "cancel",
				"request_id": request.request_id + ":cancel",
				"target_request_id": request.request_id
			}
			_zmtp.send_message(NpcMsgPack.encode(cancel))


## The connection was up and is gone: requests sent on it fail; unsent ones wait for the next.
func _lost(code: String, text: String) -> void:
	_drop(code, text)
	for request in _pending.values():
		if request.is_sent:
			_fail(request.request_id, "connection_lost", text, false)
	disconnected.emit(text)
	if code != "connection_lost":
		error.emit(code, text, "")
	_reconnect_at_ms = Time.get_ticks_msec() + int(min_reconnect_delay_s * 1000.0)


func _connect_failed(text: String) -> void:
	_drop("connect_failed", text)
	_num_failures += 1
	error.emit("connect_failed", text, "")
	var delay := minf(
		min_reconnect_delay_s * pow(2.0, mini(_num_failures - 1, 16)), max_reconnect_delay_s
	)
	_reconnect_at_ms = Time.get_ticks_msec() + int(delay * 1000.0)


func _drop(_code: String, _text: String) -> void:
	if _zmtp != null:
		_last_pings += _zmtp.num_pings_answered
		_zmtp.close()
	_zmtp = null
	_is_ready = false
	for request in _pending.values():
		if not request.is_sent and not _unsent.has(request):
			_unsent.append(request)


static func _parse_endpoint(text: String) -> Array:
	if not text.begins_with("tcp://"):
		return []
	var rest := text.substr(6)
	var colon := rest.rfind(":")
	if colon <= 0 or not rest.substr(colon + 1).is_valid_int():
		return []
	var port := rest.substr(colon + 1).to_int()
	if port <= 0 or port > 65535:
		return []
	return [rest.substr(0, colon).trim_prefix("[").trim_suffix("]"), port]

class_name NpcReply
extends RefCounted
## The outcome of one request: [member ok] with [member result], or an error [member code]
## (the server's wire code, see schemas/PROTOCOL.md section 6, or a local one:
## connect_failed, connection_lost, malformed_frame, bad_message, reply_too_large,
## unsupported_version, timeout, closed) with [member message] and [member details].

var ok := false
var result := {}
var code := ""
var message := ""
var details := {}
var request_id := ""


static func success(id: String, value: Dictionary) -> NpcReply:
	var reply := NpcReply.new()
	reply.ok = true
	reply.result = value
	reply.request_id = id
	return reply


static func failure(id: String, error_code: String, text: String, extra := {}) -> NpcReply:
	var reply := NpcReply.new()
	reply.code = error_code
	reply.message = text
	reply.details = extra
	reply.request_id = id
	return reply


func _to_string() -> String:
	if ok:
		return "NpcReply(ok, %s)" % str(result)
	return "NpcReply(%s: %s)" % [code, message]

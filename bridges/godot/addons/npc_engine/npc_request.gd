class_name NpcRequest
extends RefCounted
## One request in flight. [code]await request.wait()[/code] gives its [NpcReply]; a say also
## emits [signal draft_received] for each draft while it denoises.

signal finished(reply: NpcReply)
signal draft_received(fields: Dictionary, num_steps: int)

var request_id := ""
var op := ""
var character_id := ""
var body := PackedByteArray()
var deadline_ms := 0
var is_sent := false
var is_done := false
var reply: NpcReply


## The reply, waiting for it if it has not come yet.
func wait() -> NpcReply:
	if not is_done:
		await finished
	return reply


func finish(outcome: NpcReply) -> void:
	if is_done:
		return
	is_done = true
	reply = outcome
	finished.emit(outcome)

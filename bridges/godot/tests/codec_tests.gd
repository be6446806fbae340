extends RefCounted
## The GDScript codec against the shared vectors in schemas/vectors/, and its refusals.

var h  # the runner (run_tests.gd)


func test_every_codec_vector_round_trips() -> void:
	h.check(_check_vectors("codec.json", 50) == 0, "codec vectors failed (listed above)")


func test_every_message_vector_round_trips() -> void:
	h.check(_check_vectors("messages.json", 10) == 0, "message vectors failed (listed above)")


func test_refuses_what_the_protocol_does_not_carry() -> void:
	var bad := [
		"",
		"c1",
		"c4016100",
		"d40100",
		"c70100",
		"810101",
		"9201",
		"a36162",
		"cfffffffffffffffff",
		"dd7fffffff",
		"0102",
		"a2c328"
	]
	for hex in bad:
		var decoded := NpcMsgPack.decode(hex.hex_decode())
		h.check(decoded.error != "", "accepted " + hex)
	var limits := NpcMsgPack.Limits.new()
	limits.max_depth = 3
	limits.max_string_bytes = 4
	limits.max_array_length = 2
	limits.max_map_length = 1
	for hex in ["9191919101", "a56162636465", "93010203", "82a16101a16201"]:
		h.check(NpcMsgPack.decode(hex.hex_decode(), limits).error != "", "limit let through " + hex)
	h.check(NpcMsgPack.decode("920102".hex_decode(), limits).value == [1, 2], "within limits")
	var refused: Array = NpcMsgPack.try_encode({1: 2})
	h.check(refused[1] != "", "int map keys refused")
	h.check(NpcMsgPack.try_encode(PackedByteArray([1]))[1] != "", "bytes refused (no bin)")
	h.check(NpcMsgPack.encode(1.5).hex_encode() == "cb3ff8000000000000", "floats are float64")


func test_peek_finds_the_request_id_of_a_cut_message() -> void:
	var reply := {"type": "reply", "request_id": "abc-7", "result": "x".repeat(400)}
	var prefix := NpcMsgPack.encode(reply).slice(0, 40)
	h.check(NpcMsgPack.peek_string(prefix, "request_id") == "abc-7", "peeked the id")
	h.check(NpcMsgPack.peek_string("c1".hex_decode(), "request_id") == "", "nothing from junk")


func test_json_reader_keeps_types_and_order() -> void:
	var text := (
		'{"b": 1, "a": [1.5, "x\\u00e9\\n\\ud83d\\ude42", true, null],'
		+ ' "c": -9223372036854775808}'
	)
	var parsed := NpcJson.parse(text)
	h.check(parsed[1] == "", "parsed: " + str(parsed[1]))
	var map: Dictionary = parsed[0]
	h.check(map.keys() == ["b", "a", "c"], "order kept")
	h.check(typeof(map.b) == TYPE_INT and typeof(map.a[0]) == TYPE_FLOAT, "int vs float kept")
	h.check(map.a[1] == "x\u00e9\n\U01F642", "escapes: " + str(map.a[1]))
	h.check(map.c == -9223372036854775807 - 1, "int64 min")
	for bad in ["{", "[1,]", '{"a" 1}', "tru", '"a', "1 2", "{1: 2}"]:
		h.check(NpcJson.parse(bad)[1] != "", "accepted " + bad)


func _load_vectors(file: String) -> Array:
	var path: String = h.schemas_dir.path_join("vectors").path_join(file)
	var parsed := NpcJson.parse(FileAccess.get_file_as_string(path))
	if not h.check(parsed[1] == "" and parsed[0] is Array, "read %s: %s" % [path, parsed[1]]):
		return []
	return parsed[0]


func _check_vectors(file: String, min_count: int) -> int:
	var vectors := _load_vectors(file)
	h.check(vectors.size() >= min_count, "%s has %d vectors" % [file, vectors.size()])
	var num_failures := 0
	for vector in vectors:
		var bytes: PackedByteArray = vector.msgpack_hex.hex_decode()
		var expected: Variant = _from_typed(vector.typed)
		var decoded := NpcMsgPack.decode(bytes)
		var problem := ""
		if decoded.error != "":
			problem = "decode: " + decoded.error
		elif not _deep_equals(expected, decoded.value):
			problem = "decoded to a different value"
		elif not vector.get("decode_only", false) and NpcMsgPack.encode(expected) != bytes:
			problem = "encoded to " + NpcMsgPack.encode(expected).hex_encode().left(80)
		if problem != "":
			num_failures += 1
			print("  vector '%s' (%s): %s" % [vector.name, file, problem])
	return num_failures


## The vector's "typed" spelling: {"int": 1}, {"float": 1.0}, {"map": [[key, typed], ...]}...
func _from_typed(typed: Dictionary) -> Variant:
	var kind: String = typed.keys()[0]
	var value: Variant = typed[kind]
	match kind:
		"float":
			if typed.has("bits"):  # exact: Godot's decimal parsing is off by an ulp at times
				var bits: PackedByteArray = typed.bits.hex_decode()
				bits.reverse()
				return bits.decode_double(0)
			return float(value)
		"array":
			var items := []
			for item in value:
				items.append(_from_typed(item))
			return items
		"map":
			var map := {}
			for pair in value:
				map[pair[0]] = _from_typed(pair[1])
			return map
	return value


func _deep_equals(expected: Variant, actual: Variant) -> bool:
	if typeof(expected) != typeof(actual):
		return false
	if expected is Dictionary:
		if expected.keys() != actual.keys():
			return false
		for key in expected:
			if not _deep_equals(expected[key], actual[key]):
				return false
		return true
	if expected is Array:
		if expected.size() != actual.size():
			return false
		for i in expected.size():
			if not _deep_equals(expected[i], actual[i]):
				return false
		return true
	return expected == actual

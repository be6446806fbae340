class_name NpcMsgPack
extends RefCounted
## The protocol's msgpack subset (schemas/PROTOCOL.md section 2): nil, bool, int (64-bit),
## float (written as float64), UTF-8 str, array, map with string keys. Encodes the smallest
## forms; decodes every standard form; refuses bin, ext, non-string keys and uint64 past int64.
##
## GDScript has no exceptions: [method decode] returns a [NpcMsgPack.Decoded] whose
## [code]error[/code] is empty on success.

const MAX_ENCODE_DEPTH := 64


class Limits:
	extends RefCounted
	var max_depth := 64
	var max_string_bytes := 16 << 20
	var max_array_length := 1000000
	var max_map_length := 100000


class Decoded:
	extends RefCounted
	var value: Variant = null
	var error := ""


## Encodes [param value]; for values outside the protocol it pushes an error and returns an
## empty array.
static func encode(value: Variant) -> PackedByteArray:
	var out := PackedByteArray()
	var problem := _write(out, value, 0)
	if problem != "":
		push_error("NpcMsgPack.encode: " + problem)
		return PackedByteArray()
	return out


## Like [method encode] but returns the problem instead of pushing it: [code][bytes, error][/code].
static func try_encode(value: Variant) -> Array:
	var out := PackedByteArray()
	var problem := _write(out, value, 0)
	return [out if problem == "" else PackedByteArray(), problem]


static func decode(data: PackedByteArray, limits: Limits = null) -> Decoded:
	var reader := _Reader.new(data, limits if limits != null else Limits.new())
	var result := Decoded.new()
	result.value = reader.read_value(0)
	if reader.error == "" and reader.pos != data.size():
		reader.error = "%d bytes after the value" % (data.size() - reader.pos)
	result.error = reader.error
	if result.error != "":
		result.value = null
	return result


## The first string under [param key] in a map that may be cut short, or "".
static func peek_string(prefix: PackedByteArray, key: String) -> String:
	var reader := _Reader.new(prefix, Limits.new())
	var count := reader.read_map_header()
	for i in count:
		if reader.error != "":
			break
		var name: Variant = reader.read_value(1)
		var value: Variant = reader.read_value(1)
		if reader.error == "" and name is String and name == key and value is String:
			return value
	return ""


static func _write(out: PackedByteArray, value: Variant, depth: int) -> String:
	if depth > MAX_ENCODE_DEPTH:
		return "nests deeper than %d" % MAX_ENCODE_DEPTH
	match typeof(value):
		TYPE_NIL:
			out.append(0xc0)
		TYPE_BOOL:
			out.append(0xc3 if value else 0xc2)
		TYPE_INT:
			_write_int(out, value)
		TYPE_FLOAT:
			out.append(0xcb)
			var raw := PackedByteArray()
			raw.resize(8)
			raw.encode_double(0, value)
			raw.reverse()
			out.append_array(raw)
		TYPE_STRING, TYPE_STRING_NAME:
			_write_str(out, String(value))
		TYPE_ARRAY:
			_write_header(out, value.size(), 0x90, 0xdc, 0xdd)
			for item in value:
				var problem := _write(out, item, depth + 1)
				if problem != "":
					return problem
		TYPE_DICTIONARY:
			_write_header(out, value.size(), 0x80, 0xde, 0xdf)
			for key in value:
				if not (key is String or key is StringName):
					return "map keys must be strings, got %s" % type_string(typeof(key))
				_write_str(out, String(key))
				var problem := _write(out, value[key], depth + 1)
				if problem != "":
					return problem
		_:
			return (
				"cannot encode a %s (nil, bool, int, float, String, Array, Dictionary)"
				% [type_string(typeof(value))]
			)
	return ""


static func _write_int(out: PackedByteArray, value: int) -> void:
	if value >= 0:
		if value <= 0x7f:
			out.append(value)
		elif value <= 0xff:
			out.append(0xcc)
			out.append(value)
		elif value <= 0xffff:
			out.append(0xcd)
			_write_be(out, value, 2)
		elif value <= 0xffffffff:
			out.append(0xce)
			_write_be(out, value, 4)
		else:
			out.append(0xcf)
			_write_be(out, value, 8)
	elif value >= -32:
		out.append(value & 0xff)
	elif value >= -128:
		out.append(0xd0)
		out.append(value & 0xff)
	elif value >= -32768:
		out.append(0xd1)
		_write_be(out, value, 2)
	elif value >= -2147483648:
		out.append(0xd2)
		_write_be(out, value, 4)
	else:
		out.append(0xd3)
		_write_be(out, value, 8)


static func _write_str(out: PackedByteArray, text: String) -> void:
	var bytes := text.to_utf8_buffer()
	var size := bytes.size()
	if size <= 31:
		out.append(0xa0 | size)
	elif size <= 0xff:
		out.append(0xd9)
		out.append(size)
	elif size <= 0xffff:
		out.append(0xda)
		_write_be(out, size, 2)
	else:
		out.append(0xdb)
		_write_be(out, size, 4)
	out.append_array(bytes)


static func _write_header(
	out: PackedByteArray, count: int, fix: int, code16: int, code32: int
) -> void:
	if count <= 15:
		out.append(fix | count)
	elif count <= 0xffff:
		out.append(code16)
		_write_be(out, count, 2)
	else:
		out.append(code32)
		_write_be(out, count, 4)


static func _write_be(out: PackedByteArray, value: int, num_bytes: int) -> void:
	for i in range(num_bytes - 1, -1, -1):
		out.append((value >> (8 * i)) & 0xff)


class _Reader:
	extends RefCounted
	var data: PackedByteArray
	var limits: Limits
	var pos := 0
	var error := ""

	func _init(bytes: PackedByteArray, decode_limits: Limits) -> void:
		data = bytes
		limits = decode_limits

	func fail(message: String) -> Variant:
		if error == "":
			error = message
		return null

	func need(count: int) -> bool:
		if count > data.size() - pos:
			fail("truncated: needs %d more bytes, %d left" % [count, data.size() - pos])
			return false
		return true

	func read_byte() -> int:
		if not need(1):
			return -1
		pos += 1
		return data[pos - 1]

	## Big-endian unsigned of 1, 2 or 4 bytes; 8 bytes come back as int64 bits.
	func read_be(num_bytes: int) -> int:
		if not need(num_bytes):
			return 0
		var value := 0
		for i in num_bytes:
			value = (value << 8) | data[pos + i]
		pos += num_bytes
		return value

	func read_map_header() -> int:
		var code := read_byte()
		if code >= 0x80 and code <= 0x8f:
			return code & 0x0f
		if code == 0xde:
			return read_be(2)
		if code == 0xdf:
			return read_be(4)
		fail("expected a map")
		return 0

	func read_value(depth: int) -> Variant:
		if error != "":
			return null
		if depth > limits.max_depth:
			return fail("nested deeper than %d" % limits.max_depth)
		var code := read_byte()
		if code < 0:
			return null
		if code <= 0x7f:
			return code
		if code >= 0xe0:
			return code - 256
		if code >= 0xa0 and code <= 0xbf:
			return read_str(code & 0x1f)
		if code >= 0x90 and code <= 0x9f:
			return read_array(code & 0x0f, depth)
		if code >= 0x80 and code <= 0x8f:
			return read_map(code & 0x0f, depth)
		return read_tagged(code, depth)

	func read_tagged(code: int, depth: int) -> Variant:
		match code:
			0xc0:
				return null
			0xc2:
				return false
			0xc3:
				return true
			0xcc:
				return read_be(1)
			0xcd:
				return read_be(2)
			0xce:
				return read_be(4)
			0xcf:
				var big := read_be(8)
				if big < 0:
					return fail("a uint64 past the int64 range")
				return big
			0xd0:
				var v8 := read_be(1)
				return v8 - 256 if v8 >= 128 else v8
			0xd1:
				var v16 := read_be(2)
				return v16 - 65536 if v16 >= 32768 else v16
			0xd2:
				var v32 := read_be(4)
				return v32 - 4294967296 if v32 >= 2147483648 else v32
			0xd3:
				return read_be(8)
			0xca:
				return read_float(4)
			0xcb:
				return read_float(8)
			0xd9:
				return read_str(read_be(1))
			0xda:
				return read_str(read_be(2))
			0xdb:
				return read_str(read_be(4))
			0xdc:
				return read_array(read_be(2), depth)
			0xdd:
				return read_array(read_be(4), depth)
			0xde:
				return read_map(read_be(2), depth)
			0xdf:
				return read_map(read_be(4), depth)
			0xc4, 0xc5, 0xc6:
				return fail("bin values are not in the protocol")
			0xc1:
				return fail("0xc1 is never used in msgpack")
		return fail("ext types are not accepted (0x%02x)" % code)

	func read_float(num_bytes: int) -> Variant:
		if not need(num_bytes):
			return null
		var raw := data.slice(pos, pos + num_bytes)
		raw.reverse()
		pos += num_bytes
		return raw.decode_float(0) if num_bytes == 4 else raw.decode_double(0)

	func read_str(size: int) -> Variant:
		if error != "":
			return null
		if size > limits.max_string_bytes:
			return fail(
				"a string of %d bytes is over the limit of %d" % [size, limits.max_string_bytes]
			)
		if not need(size):
			return null
		var raw := data.slice(pos, pos + size)
		pos += size
		var text := raw.get_string_from_utf8()
		if text.to_utf8_buffer() != raw:
			return fail("a string is not valid UTF-8")
		return text

	func read_array(count: int, depth: int) -> Variant:
		if error != "":
			return null
		if count > limits.max_array_length:
			return fail(
				"an array of %d items is over the limit of %d" % [count, limits.max_array_length]
			)
		if not need(count):  # every item takes at least one byte
			return null
		var items := []
		for i in count:
			items.append(read_value(depth + 1))
			if error != "":
				return null
		return items

	func read_map(count: int, depth: int) -> Variant:
		if error != "":
			return null
		if count > limits.max_map_length:
			return fail(
				"a map of %d entries is over the limit of %d" % [count, limits.max_map_length]
			)
		if not need(count * 2):
			return null
		var map := {}
		for i in count:
			var key: Variant = read_value(depth + 1)
			if error != "":
				return null
			if not key is String:
				return fail("map keys must be strings")
			map[key] = read_value(depth + 1)
			if error != "":
				return null
		return map

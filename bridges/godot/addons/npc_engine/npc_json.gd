class_name NpcJson
extends RefCounted
## A strict JSON reader that keeps integers as [int] (Godot's [JSON] reads every number as a
## float, and the protocol tells 1 from 1.0), so templates kept as JSON files can be sent as is.
## Returns [code][value, error][/code]; [code]error[/code] is empty on success.

const MAX_DEPTH := 64


static func parse(text: String) -> Array:
	var parser := _Parser.new(text)
	var value: Variant = parser.value(0)
	parser.skip_space()
	if parser.error == "" and parser.pos != text.length():
		parser.fail("unexpected text after the value")
	return [null if parser.error != "" else value, parser.error]


class _Parser:
	extends RefCounted
	var text: String
	var pos := 0
	var error := ""

	func _init(source: String) -> void:
		text = source

	func fail(message: String) -> Variant:
		if error == "":
			error = "JSON: %s at character %d" % [message, pos]
		return null

	func skip_space() -> void:
		while pos < text.length() and text[pos] in [" ", "\t", "\n", "\r"]:
			pos += 1

	func peek() -> String:
		return text[pos] if pos < text.length() else ""

	func value(depth: int) -> Variant:
		if error != "":
			return null
		if depth > MAX_DEPTH:
			return fail("nested too deeply")
		skip_space()
		var c := peek()
		if c == "{":
			return object(depth)
		if c == "[":
			return array(depth)
		if c == '"':
			return string()
		if c == "-" or (c >= "0" and c <= "9" and c != ""):
			return number()
		for word in ["true", "false", "null"]:
			if text.substr(pos, word.length()) == word:
				pos += word.length()
				return {"true": true, "false": false, "null": null}[word]
		return fail("unexpected '%s'" % c)

	func object(depth: int) -> Variant:
		var map := {}
		pos += 1
		skip_space()
		if peek() == "}":
			pos += 1
			return map
		while error == "":
			skip_space()
			if peek() != '"':
				return fail("expected a string key")
			var key: Variant = string()
			skip_space()
			if peek() != ":":
				return fail("expected ':'")
			pos += 1
			map[key] = value(depth + 1)
			skip_space()
			if peek() == ",":
				pos += 1
				continue
			if peek() != "}":
				return fail("expected '}'")
			pos += 1
			return map
		return null

	func array(depth: int) -> Variant:
		var items := []
		pos += 1
		skip_space()
		if peek() == "]":
			pos += 1
			return items
		while error == "":
			items.append(value(depth + 1))
			skip_space()
			if peek() == ",":
				pos += 1
				continue
			if peek() != "]":
				return fail("expected ']'")
			pos += 1
			return items
		return null

	func string() -> Variant:
		pos += 1
		var out := ""
		while true:
			if pos >= text.length():
				return fail("unterminated string")
			var c := text[pos]
			pos += 1
			if c == '"':
				return out
			if c.unicode_at(0) < 0x20:
				return fail("control character in a string")
			if c != "\\":
				out += c
				continue
			var escape := peek()
			pos += 1
			match escape:
				'"', "\\", "/":
					out += escape
				"b":
					out += char(8)
				"f":
					out += char(12)
				"n":
					out += "\n"
				"r":
					out += "\r"
				"t":
					out += "\t"
				"u":
					var code := _hex4()
					if code < 0:
						return fail("bad \\u escape")
					if code >= 0xd800 and code <= 0xdbff and text.substr(pos, 2) == "\\u":
						pos += 2
						var low := _hex4()
						if low < 0xdc00 or low > 0xdfff:
							return fail("bad surrogate pair")
						code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
					out += char(code)
				_:
					return fail("bad escape \\%s" % escape)
		return null

	func _hex4() -> int:
		var digits := text.substr(pos, 4)
		if digits.length() != 4 or not digits.is_valid_hex_number():
			return -1
		pos += 4
		return digits.hex_to_int()

	func number() -> Variant:
		var start := pos
		var is_integer := true
		while pos < text.length():
			var c := text[pos]
			if c in [".", "e", "E", "+"]:
				is_integer = false
			elif not (c == "-" or (c >= "0" and c <= "9")):
				break
			pos += 1
		var token := text.substr(start, pos - start)
		if is_integer and token.is_valid_int():
			return token.to_int()
		if token.is_valid_float():
			return token.to_float()
		return fail("bad number '%s'" % token)

"""Shared test vectors: values and their exact msgpack bytes, read by the Python, C# and GDScript tests.

`value` is the plain JSON value. `typed` spells out every type for languages whose JSON reader
cannot tell 1 from 1.0 or loses map order: {"nil": null}, {"bool": b}, {"int": n},
{"float": x, "bits": "<16 hex digits>"}, {"str": s}, {"array": [typed...]}, {"map": [[key, typed], ...]}.
A float's `bits` are its IEEE-754 binary64 bits, big-endian, for readers whose decimal parsing is
not correctly rounded (Godot's is off by one ulp on some values). `decode_only` vectors are valid
msgpack a decoder must accept, though an encoder writes the same value in a shorter form.
"""

from __future__ import annotations

import struct
from typing import Any

from .codec import encode
from .version import PROTOCOL_VERSION

__all__ = ["codec_vectors", "message_vectors", "typed"]


def typed(value: Any) -> Any:
    if value is None:
        return {"nil": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"float": value, "bits": struct.pack(">d", value).hex()}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, list):
        return {"array": [typed(v) for v in value]}
    if isinstance(value, dict):
        return {"map": [[k, typed(v)] for k, v in value.items()]}
    raise TypeError(type(value).__name__)


def _vector(name: str, value: Any, hex_bytes: str | None = None) -> dict[str, Any]:
    vector = {"name": name, "value": value, "typed": typed(value),
              "msgpack_hex": hex_bytes if hex_bytes is not None else encode(value).hex()}
    if hex_bytes is not None:
        vector["decode_only"] = True
    return vector


def codec_vectors() -> list[dict[str, Any]]:
    ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2**63 - 1, -1, -32, -33, -128, -129,
            -32768, -32769, -2147483648, -2147483649, -(2**63)]
    vectors = [_vector("nil", None), _vector("true", True), _vector("false", False)]
    vectors += [_vector(f"int {n}", n) for n in ints]
    vectors += [_vector(f"float {x!r}", x) for x in (0.0, 0.5, -1.25, 0.1, 1.0, 1e300, -2.5e-300)]
    vectors += [_vector(f"str of {n} ascii", "x" * n) for n in (0, 1, 31, 32, 255, 256, 65536)]
    vectors += [_vector("str utf-8 2-byte", "héllo wörld"), _vector("str utf-8 3-byte", "日本語のテキスト"),
                _vector("str utf-8 4-byte", "smile 🙂 ok"), _vector("str with quotes and newline", 'a "b"\n{c}')]
    vectors += [_vector("array empty", []), _vector("array mixed", [1, "two", 3.0, None, True]),
                _vector("array of 15", list(range(15))), _vector("array of 16", list(range(16)))]
    vectors += [_vector("map empty", {}), _vector("map one", {"a": 1}),
                _vector("map of 15", {f"k{i:02d}": i for i in range(15)}),
                _vector("map of 16", {f"k{i:02d}": i for i in range(16)}),
                _vector("map nested", {"a": {"b": [1, {"c": None}], "d": -0.5}, "e": "f"})]
    vectors += [_vector("decode float32 0.5", 0.5, "ca3f000000"), _vector("decode uint16 1", 1, "cd0001"),
                _vector("decode int64 -1", -1, "d3ffffffffffffffff"), _vector("decode str8 a", "a", "d90161"),
                _vector("decode array16 [1]", [1], "dc000101"), _vector("decode array32 [1]", [1], "dd0000000101"),
                _vector("decode map16 a=1", {"a": 1}, "de0001a16101"),
                _vector("decode map32 a=1", {"a": 1}, "df00000001a16101"),
                _vector("decode str32 a", "a", "db0000000161"), _vector("decode str16 a", "a", "da000161")]
    return vectors


def message_vectors() -> list[dict[str, Any]]:
    v = PROTOCOL_VERSION
    messages = [
        ("request hello", {"protocol_version": v, "op": "hello", "request_id": "r1", "client_name": "unity"}),
        ("request ping", {"protocol_version": v, "op": "ping", "request_id": "r2"}),
        ("request character.upsert", {"protocol_version": v, "op": "character.upsert", "request_id": "r3",
                                      "character": {"id": "brom", "name": "Brom", "persona": "A smith.",
                                                    "flags": {"met": True, "gold": 12, "ratio": 0.5}}}),
        ("request say", {"protocol_version": v, "op": "say", "request_id": "r4", "character_id": "brom",
                         "speaker_id": "player", "text": "Any work?", "template": "shopkeeper_reply",
                         "seed": 7, "priority": 1.0, "deadline_ms": 250.0, "stream": True}),
        ("request cancel", {"protocol_version": v, "op": "cancel", "request_id": "r5", "target_request_id": "r4"}),
        ("reply ping", {"type": "reply", "protocol_version": v, "request_id": "r2", "op": "ping", "ok": True,
                        "result": {"server_time_ms": 1795756776773}}),
        ("event draft", {"type": "event", "protocol_version": v, "request_id": "r4", "event": "draft",
                         "draft": {"fields": {"say": "Wel", "emotion": "happy", "trust_delta": -1}, "num_steps": 2}}),
        ("event keepalive", {"type": "event", "protocol_version": v, "request_id": "r4", "event": "keepalive"}),
        ("reply say", {"type": "reply", "protocol_version": v, "request_id": "r4", "op": "say", "ok": True,
                       "result": {"character_id": "brom", "speaker_id": "player", "finish_reason": "complete",
                                  "fields": {"say": "Welcome.", "emotion": "happy", "trust_delta": 1},
                                  "changes": [{"kind": "mood", "slot": "emotion", "path": "mood", "old": "neutral",
                                               "new": "happy", "delta": None}],
                                  "seed": 7, "num_steps": 9, "elapsed_ms": 41.5, "num_prompt_tokens": 120,
                                  "num_cached_prompt_tokens": 80}}),
        ("reply error busy", {"type": "reply", "protocol_version": v, "request_id": "r6", "op": "say", "ok": False,
                              "error": {"code": "busy", "message": "too many outstanding requests",
                                        "details": {"limit": "max_outstanding_per_client", "value": 64}}}),
        ("reply error unreadable", {"type": "reply", "protocol_version": v, "request_id": None, "op": None,
                                    "ok": False, "error": {"code": "bad_message", "message": "not msgpack",
                                                           "details": {}}}),
    ]
    return [{"name": name, "value": value, "typed": typed(value), "msgpack_hex": encode(value).hex()}
            for name, value in messages]

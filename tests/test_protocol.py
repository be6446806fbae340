"""The wire protocol without a server: schemas in sync, shared vectors, codec limits, versions, codes."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from npc_engine import errors
from npc_engine.protocol import (
    ERROR_CODES,
    OPS,
    PROTOCOL_VERSION,
    Event,
    Limits,
    Reply,
    check_version,
    decode,
    encode,
    error_reply_fields,
    parse_request,
)
from npc_engine.protocol.export import check_schemas
from npc_engine.protocol.vectors import typed

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def load_vectors(name: str) -> list[dict]:
    return json.loads((SCHEMAS / "vectors" / name).read_text(encoding="utf-8"))


def test_schemas_and_vectors_match_the_code():
    assert check_schemas(SCHEMAS) == []


def test_drift_is_detected(tmp_path):
    from npc_engine.protocol.export import write_schemas

    write_schemas(tmp_path)
    assert check_schemas(tmp_path) == []
    path = tmp_path / "protocol" / "request.say.json"
    path.write_text(path.read_text().replace('"seed"', '"sead"'))
    (tmp_path / "protocol" / "request.old_op.json").write_text("{}")
    problems = check_schemas(tmp_path)
    assert any("stale" in p and "request.say.json" in p for p in problems)
    assert any("request.old_op.json" in p for p in problems)


@pytest.mark.parametrize("file", ["codec.json", "messages.json"])
def test_vectors_round_trip(file):
    vectors = load_vectors(file)
    assert len(vectors) >= 10 and len({v["name"] for v in vectors}) == len(vectors)
    for vector in vectors:
        data = bytes.fromhex(vector["msgpack_hex"])
        decoded = msgpack.unpackb(data, raw=False, strict_map_key=True)
        assert typed(decoded) == vector["typed"], vector["name"]  # exact types, not just ==
        assert typed(vector["value"]) == vector["typed"], vector["name"]
        if not vector.get("decode_only"):
            assert encode(vector["value"]).hex() == vector["msgpack_hex"], vector["name"]
        if isinstance(decoded, dict) and file == "messages.json":
            if decoded.get("type") == "reply":
                Reply.model_validate(decoded)
            elif decoded.get("type") == "event":
                Event.model_validate(decoded)
            else:
                parse_request(decode(data))


def test_vectors_cover_every_msgpack_format_we_write():
    prefixes = {bytes.fromhex(v["msgpack_hex"])[0] for v in load_vectors("codec.json") if not v.get("decode_only")}
    needed = {0xc0, 0xc2, 0xc3, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xde}
    assert needed <= prefixes
    assert any(p <= 0x7f for p in prefixes) and any(p >= 0xe0 for p in prefixes)  # fixints
    assert any(0xa0 <= p <= 0xbf for p in prefixes) and any(0x90 <= p <= 0x9f for p in prefixes)
    assert any(0x80 <= p <= 0x8f for p in prefixes)


DEEP = 1
for _ in range(40):
    DEEP = [DEEP]


@pytest.mark.parametrize("frame, code", [
    (b"\x00garbage", "bad_message"),
    (b"", "bad_message"),
    (b"\xc1", "bad_message"),
    (msgpack.packb([1, 2]), "bad_message"),
    (msgpack.packb("just a string"), "bad_message"),
    (msgpack.packb({1: 2}), "bad_message"),
    (msgpack.packb({"a": msgpack.ExtType(1, b"x")}), "bad_message"),
    (msgpack.packb({"a": 1}) + b"\x00", "bad_message"),
    (msgpack.packb({"a": DEEP}), "too_deep"),
    (b"\x91" * 5000 + b"\xc0", "too_deep"),
    (msgpack.packb({"a": "x" * 70_000}), "too_large"),
    (msgpack.packb({"a": list(range(20_000))}), "too_large"),
    (msgpack.packb({"a": b"x" * (2 << 20)}), "too_large"),
])
def test_codec_refuses_bad_frames(frame, code):
    with pytest.raises(errors.ProtocolError) as info:
        decode(frame, Limits())
    assert info.value.code == code


def test_versions():
    assert check_version(PROTOCOL_VERSION) is None
    major, minor = (int(p) for p in PROTOCOL_VERSION.split("."))
    assert "client" in check_version(f"{major}.{minor + 1}")
    with pytest.raises(errors.ProtocolError) as info:
        check_version(f"{major + 1}.0")
    assert info.value.code == "unsupported_version"
    assert f"speaks {PROTOCOL_VERSION}" in info.value.message and f"{major + 1}.0" in info.value.message
    for bad in ("1", "v1.0", 1.0, None, "1.0.0", "01.0"):
        with pytest.raises(errors.ProtocolError) as info:
            check_version(bad)
        assert info.value.code == "invalid_request"


@pytest.mark.parametrize("message, code", [
    ({"op": "ping", "request_id": "a"}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "request_id": "a"}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": 5, "request_id": "a"}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "explode", "request_id": "a"}, "unknown_op"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "ping"}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": ""}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": "a", "extra": 1}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "character.get", "request_id": "a"}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "character.get", "request_id": "a", "character_id": 7},
     "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "say", "request_id": "a", "character_id": "b",
      "speaker_id": "p", "text": "hi", "template": "t", "seed": "5"}, "invalid_request"),
    ({"protocol_version": PROTOCOL_VERSION, "op": "say", "request_id": "a", "character_id": "b",
      "speaker_id": "p", "text": "hi", "template": "t", "deadline_ms": -1.0}, "invalid_request"),
    ({"protocol_version": "9.0", "op": "ping", "request_id": "a"}, "unsupported_version"),
])
def test_requests_are_validated(message, code):
    with pytest.raises(errors.ProtocolError) as info:
        parse_request(message)
    assert info.value.code == code
    assert info.value.request_id == (message.get("request_id") or None)


@pytest.mark.parametrize("exc, code", [
    (errors.UnknownCharacterError("x"), "unknown_character"),
    (errors.UnknownSpeakerError("x", speaker_id="p"), "unknown_speaker"),
    (errors.UnknownSnapshotError("x"), "unknown_snapshot"),
    (errors.UnknownRequestError("x"), "unknown_request"),
    (errors.UnknownTemplateError("x", template="t"), "unknown_template"),
    (errors.DuplicateRequestError("x"), "duplicate_request"),
    (errors.QueueFullError("x", max_queued_requests=3), "busy"),
    (errors.EngineClosedError("x"), "shutting_down"),
    (errors.DeadlineError("x"), "invalid_request"),
    (errors.StateError("x", field="mood"), "invalid_state"),
    (errors.TemplateTooLargeError("x", template="t", num_required_tokens=9, canvas_length=8), "invalid_template"),
    (errors.PromptError("x"), "invalid_prompt"),
    (errors.SnapshotVersionError("x", snapshot_version=9, supported_version=1), "snapshot_error"),
    (errors.GenerationError("x"), "generation_failed"),
    (errors.StoreError("x", path="p"), "store_error"),
    (errors.ProtocolError("x", code="too_deep"), "too_deep"),
    (RuntimeError("boom"), "internal"),
])
def test_every_error_maps_to_a_documented_code(exc, code):
    fields = error_reply_fields(exc)
    assert fields["code"] == code and fields["code"] in ERROR_CODES and fields["message"]


def test_protocol_md_documents_every_op_and_code():
    text = (SCHEMAS / "PROTOCOL.md").read_text(encoding="utf-8")
    for op in OPS:
        assert f"`{op}`" in text, op
    for code in ERROR_CODES:
        assert f"`{code}`" in text, code
    assert PROTOCOL_VERSION in text

"""msgpack on the wire: one frame, one map with string keys; no ext types; bounded everything.

Encoding is msgpack's smallest form for every value (the shared vectors in schemas/vectors pin
the exact bytes): ints in the fewest bytes, floats as float64, strings as UTF-8 str, maps in
insertion order. Decoding refuses anything over `Limits` before it can cost memory or stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from ..errors import ProtocolError

__all__ = ["Limits", "encode", "decode", "depth_of"]


@dataclass(frozen=True)
class Limits:
    """What the server accepts from the wire. Messages between `max_message_bytes` and
    `hard_message_bytes` get a `too_large` reply; past the hard cap ZeroMQ drops the connection."""

    max_message_bytes: int = 1 << 20
    hard_message_bytes: int = 4 << 20
    max_depth: int = 32
    max_string_bytes: int = 64 << 10
    max_array_length: int = 10_000
    max_map_length: int = 1_000
    max_outstanding_per_client: int = 64
    # Since 1.1: the least time between the starts of two event replies of one character.
    min_event_interval_ms: int = 1000

    def as_dict(self) -> dict[str, int]:
        return {"max_message_bytes": self.max_message_bytes, "max_depth": self.max_depth,
                "max_string_bytes": self.max_string_bytes, "max_array_length": self.max_array_length,
                "max_map_length": self.max_map_length,
                "max_outstanding_per_client": self.max_outstanding_per_client,
                "min_event_interval_ms": self.min_event_interval_ms}


def encode(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True, use_single_float=False, strict_types=False)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack ext types are not accepted (got ext type {code})", code="bad_message")


def decode(frame: bytes, limits: Limits = Limits()) -> dict[str, Any]:
    """One wire frame -> a dict, or ProtocolError (bad_message, too_large, too_deep)."""
    if len(frame) > limits.max_message_bytes:
        raise ProtocolError(f"message is {len(frame)} bytes; the limit is {limits.max_message_bytes}",
                            code="too_large", details={"num_bytes": len(frame), "limit": limits.max_message_bytes})
    try:
        value = msgpack.unpackb(
            frame, raw=False, strict_map_key=True, ext_hook=_refuse_ext, use_list=True,
            max_str_len=limits.max_string_bytes, max_bin_len=limits.max_string_bytes,
            max_array_len=limits.max_array_length, max_map_len=limits.max_map_length,
            max_ext_len=limits.max_string_bytes)
    except ProtocolError:
        raise
    except msgpack.StackError:
        raise ProtocolError(f"message nests deeper than {limits.max_depth} levels", code="too_deep",
                            details={"limit": limits.max_depth}) from None
    except ValueError as exc:
        text = str(exc)
        if "exceeds max" in text:  # msgpack's own length limits
            raise ProtocolError(f"message has a string, array or map over the limits ({text})",
                                code="too_large", details=limits.as_dict()) from None
        raise ProtocolError(f"message is not valid msgpack ({type(exc).__name__}: {text})",
                            code="bad_message") from None
    except Exception as exc:  # ExtraData, FormatError, UnicodeDecodeError, TypeError, ...
        raise ProtocolError(f"message is not valid msgpack ({type(exc).__name__}: {exc})",
                            code="bad_message") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"a message must be a msgpack map, got {type(value).__name__}", code="bad_message")
    depth = depth_of(value)
    if depth > limits.max_depth:
        request_id = value.get("request_id")
        raise ProtocolError(f"message nests {depth} levels; the limit is {limits.max_depth}", code="too_deep",
                            details={"depth": depth, "limit": limits.max_depth},
                            request_id=request_id if isinstance(request_id, str) and len(request_id) <= 128 else None)
    return value


def depth_of(value: Any) -> int:
    """Nesting depth (a flat map is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest

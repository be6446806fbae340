"""The wire protocol: msgpack maps over ZeroMQ, validated by pydantic models (see schemas/)."""

from .codec import Limits, decode, depth_of, encode
from .codes import ERROR_CODES, error_reply_fields
from .messages import (
    OPS,
    RESULTS,
    DraftBody,
    ErrorBody,
    Event,
    Reply,
    Request,
    ServerMessage,
    draft_event,
    error_reply,
    keepalive_event,
    ok_reply,
    parse_request,
)
from .version import PROTOCOL_MAJOR, PROTOCOL_MINOR, PROTOCOL_VERSION, check_version, parse_version

__all__ = [
    "ERROR_CODES",
    "OPS",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "PROTOCOL_VERSION",
    "RESULTS",
    "DraftBody",
    "ErrorBody",
    "Event",
    "Limits",
    "Reply",
    "Request",
    "ServerMessage",
    "check_version",
    "decode",
    "depth_of",
    "draft_event",
    "encode",
    "error_reply",
    "error_reply_fields",
    "keepalive_event",
    "ok_reply",
    "parse_request",
    "parse_version",
]

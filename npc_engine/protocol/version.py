"""Protocol version: "MAJOR.MINOR". A major change breaks bridges; a minor one only adds.

Every request carries `protocol_version`. A different major is refused (`unsupported_version`,
naming both sides' versions); a different minor is served, with a warning in `hello`.
"""

from __future__ import annotations

import re

from ..errors import ProtocolError

__all__ = ["PROTOCOL_VERSION", "PROTOCOL_MAJOR", "PROTOCOL_MINOR", "parse_version", "check_version"]

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 4
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
VERSION_PATTERN = r"^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$"


def parse_version(text: object) -> tuple[int, int]:
    if not isinstance(text, str) or not re.fullmatch(VERSION_PATTERN, text):
        raise ProtocolError(f"protocol_version must be a string \"MAJOR.MINOR\" (this server speaks "
                            f"{PROTOCOL_VERSION}), got {text!r}", code="invalid_request",
                            details={"field": "protocol_version"})
    major, minor = text.split(".")
    return int(major), int(minor)


def check_version(text: object) -> str | None:
    """None when compatible, a warning for another minor; raises for another major."""
    major, minor = parse_version(text)
    if major != PROTOCOL_MAJOR:
        raise ProtocolError(
            f"protocol version {text} is not supported: this server speaks {PROTOCOL_VERSION} "
            f"(major {PROTOCOL_MAJOR}), the client speaks {text} (major {major}); use a client and "
            "server of the same major version",
            code="unsupported_version",
            details={"client_version": text, "server_version": PROTOCOL_VERSION,
                     "server_major": PROTOCOL_MAJOR})
    if minor != PROTOCOL_MINOR:
        newer = "client" if minor > PROTOCOL_MINOR else "server"
        return (f"protocol minor versions differ (client {text}, server {PROTOCOL_VERSION}); the {newer} "
                "is newer, so features it added may be missing on the other side")
    return None

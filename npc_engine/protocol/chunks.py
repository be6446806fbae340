"""Binary payloads on a wire that carries no bin type (PROTOCOL.md section 2): base64 text in
chunks, each under the server's per-string limit. `snapshot.export` answers with them and
`snapshot.import` takes them (protocol 1.1)."""

from __future__ import annotations

import base64
import binascii

from ..errors import SnapshotError

__all__ = ["CHUNK_BYTES", "from_chunks", "to_chunks"]

# 36 KiB of bytes is 48 KiB of base64: under the default max_string_bytes (64 KiB) with room.
CHUNK_BYTES = 36 * 1024


def to_chunks(data: bytes) -> list[str]:
    """`data` as base64 strings of consecutive CHUNK_BYTES slices (one empty string for no bytes)."""
    return [base64.b64encode(data[i:i + CHUNK_BYTES]).decode("ascii")
            for i in range(0, len(data), CHUNK_BYTES)] or [""]


def from_chunks(chunks: list[str]) -> bytes:
    """The bytes back; each chunk must be standard, padded base64 of its own slice (split at any
    multiple of 3 bytes). Raises SnapshotError naming the chunk that is not."""
    parts = []
    for index, chunk in enumerate(chunks):
        try:
            parts.append(base64.b64decode(chunk, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise SnapshotError(f"chunk {index} of the snapshot is not base64 ({exc})") from None
    return b"".join(parts)

"""`StudioGuard`: the studio is for the developer at this machine, not for the web pages they open.

An ASGI middleware in front of the whole app. Every request: its `Host` must be one of the
allowed names (loopback names and the bound address, plus any the developer adds), which stops
DNS rebinding. Every `/api/` call: it carries the per-launch token (the `X-Studio-Token` header,
which a cross-origin page cannot send without a CORS preflight this app never answers), an
`Origin`, when present, must be this page's own, and a POST must be `Content-Type:
application/json` with a body no larger than the limit, refused from its `Content-Length` before
it is read (and counted as it streams when there is none). GETs only read.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

__all__ = ["StudioGuard", "TOKEN_HEADER", "MAX_BODY_BYTES", "LOOPBACK_HOSTS", "new_token"]

TOKEN_HEADER = "x-studio-token"
MAX_BODY_BYTES = 256 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_name(value: str) -> str:
    """The host part of a `Host` header or a URL's netloc: `[::1]:8765` -> `::1`."""
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class StudioGuard:
    def __init__(self, app: Callable[..., Awaitable[None]], *, token: str, allowed_hosts: set[str],
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = {h.lower() for h in allowed_hosts} | LOOPBACK_HOSTS
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _error(send, *refusal)
            return
        if scope["method"] == "POST":
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                await _error(send, 413, "too_large", f"the request body is over {self.max_body_bytes} bytes")
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        host = headers.get("host", "")
        if host_name(host).lower() not in self.allowed_hosts:
            return 400, "bad_host", (f"Host {host!r} is not this studio's address (allowed: "
                                     f"{', '.join(sorted(self.allowed_hosts))}; add one with --allowed-host)")
        if not scope["path"].startswith("/api/"):
            return None
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return 403, "bad_origin", f"Origin {origin!r} is not this studio's page; only its own page may call it"
        if not secrets.compare_digest(headers.get(TOKEN_HEADER, "").encode(), self.token.encode()):
            return 403, "bad_token", ("this call does not carry the studio's token: open the address "
                                      "`npc-engine studio` printed (it ends in ?token=...)")
        if scope["method"] == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return 415, "bad_content_type", f"the body must be Content-Type: application/json, not {content_type!r}"
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return 413, "too_large", f"the request body is {length} bytes; at most {self.max_body_bytes}"
        return None


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, read here so a chunked one is counted as it streams; None past `max_bytes`."""
    parts, num_bytes = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away; the app sees an empty body and its reply goes nowhere
        num_bytes += len(message.get("body", b""))
        if num_bytes > max_bytes:
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits as the server's would."""
    is_sent = False

    async def replay() -> dict[str, Any]:
        nonlocal is_sent
        if is_sent:
            return await receive()
        is_sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return replay


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

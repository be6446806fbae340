"""`npc-engine studio` as a user runs it: a subprocess on a free loopback port, and JSON calls to
its API over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def studio(connect: str | None, *extra_args: str) -> Iterator[str]:
    """Run the studio against `connect` (None: `extra_args` say which server); yields the page's
    address as printed (with its token)."""
    target = ["--connect", connect] if connect is not None else []
    process = subprocess.Popen([sys.executable, "-m", "npc_engine.cli", "studio", *target, "--port", "0", *extra_args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if match is None:
            process.kill()
            raise AssertionError(f"the studio did not start: {line!r} {process.stderr.read()!r}")
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def call(url: str, path: str, body: Any = None, timeout_s: float = 120.0, *,
         headers: dict[str, str] | None = None, raw_body: bytes | None = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON) of GET `path`, or POST with a JSON `body` (or `raw_body`), with
    the token from the studio's printed `url` unless `headers` says otherwise."""
    parts = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(parts.query).get("token", [""])[0]
    data = raw_body if raw_body is not None else None if body is None else json.dumps(body).encode()
    sent_headers = {"content-type": "application/json", "x-studio-token": token, **(headers or {})}
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}{path}", data=data,
                                     headers={k: v for k, v in sent_headers.items() if v is not None})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, _decoded(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decoded(error.read())


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # Starlette's own plain-text answers (405, 404)
        return body.decode(errors="replace")

"""`npc-engine studio` as a user runs it: a subprocess on a free loopback port, and JSON calls to
its API over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def studio(connect: str, *extra_args: str) -> Iterator[str]:
    """Run the studio against `connect`; yields the page's base URL."""
    process = subprocess.Popen([sys.executable, "-m", "npc_engine.cli", "studio", "--connect", connect,
                                "--port", "0", *extra_args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://[^ ]+/)", line)
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


def call(base_url: str, path: str, body: Any = None, timeout_s: float = 120.0) -> tuple[int, Any]:
    """(HTTP status, decoded JSON) of GET `path`, or POST with a JSON `body`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url.rstrip("/") + path, data=data,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())

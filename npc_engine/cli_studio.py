"""`npc-engine studio`: the web inspector (npc_engine/studio) in front of a running server."""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError, NpcEngineError

__all__ = ["add_studio_command", "check_studio_host", "endpoint_from_status_file"]

DEFAULT_STUDIO_PORT = 8765
MAX_STATUS_FILE_BYTES = 64 * 1024


def add_studio_command(commands: Any) -> None:
    studio = commands.add_parser("studio", help="a local web page to watch NPCs think, inspect state and try templates")
    studio.add_argument("--connect", default=None,
                        help="the server (serve, or a cluster gateway) to inspect (default: tcp://127.0.0.1:5555)")
    studio.add_argument("--status-file", type=Path, default=None,
                        help="inspect the server that wrote this file (`serve --status-file`, as a game's "
                             "launcher starts it on a free port); waits up to --wait-s for it to appear")
    studio.add_argument("--wait-s", type=float, default=60.0,
                        help="how long --status-file may take to appear (default: 60)")
    studio.add_argument("--port", type=int, default=DEFAULT_STUDIO_PORT,
                        help=f"the page's HTTP port (default: {DEFAULT_STUDIO_PORT}; 0: any free port)")
    studio.add_argument("--host", default="127.0.0.1", help="the page's address (default: loopback only)")
    studio.add_argument("--allow-remote", action="store_true",
                        help="let --host be a non-loopback address: anyone who reaches it can read and change "
                             "every character")
    studio.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another name the page may be opened under (its Host header); loopback names and "
                             "--host are always allowed. Repeatable")
    studio.add_argument("--curve-keys", type=Path, default=None,
                        help="client keys (folder from `npc-engine curve-keys`) for a server off loopback")
    studio.set_defaults(handler=run_studio)


def check_studio_host(host: str, *, is_remote_allowed: bool) -> None:
    """Refuse a page reachable from other machines unless asked for: the studio has no login."""
    try:
        is_loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback and not is_remote_allowed:
        raise ConfigError(f"studio: --host {host} is not a loopback address; the page has no login, so anyone "
                          "who reaches it could read and change every character. Pass --allow-remote to bind it "
                          "anyway")


def endpoint_from_status_file(path: Path, *, wait_s: float) -> str:
    """The endpoint a running `serve --status-file` wrote (waiting up to `wait_s` for the file).
    Raises ConfigError naming the file when it never appears or is not a server's status."""
    deadline = time.monotonic() + max(0.0, wait_s)
    is_announced = False
    while not path.is_file():
        if time.monotonic() >= deadline:
            raise ConfigError(f"studio: no status file at {path} after {wait_s:.0f} s: start the game (or "
                              "`npc-engine serve --status-file` with this path) first")
        if not is_announced:
            print(f"npc-engine studio: waiting for the server to write {path} ...", file=sys.stderr, flush=True)
            is_announced = True
        time.sleep(0.2)
    try:
        if path.stat().st_size > MAX_STATUS_FILE_BYTES:  # a status file is a few lines
            raise ConfigError(f"studio: {path} is over {MAX_STATUS_FILE_BYTES} bytes; not a server's status file")
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"studio: cannot read the status file {path}: {exc}") from None
    endpoint = status.get("endpoint") if isinstance(status, dict) else None
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://") or len(endpoint) > 256:
        raise ConfigError(f"studio: {path} is not a server's status file (no \"endpoint\" like tcp://HOST:PORT)")
    return endpoint


def run_studio(args: argparse.Namespace) -> int:
    from .server.security import is_loopback  # the same rule the server applies to its own bind
    check_studio_host(args.host, is_remote_allowed=args.allow_remote)
    if args.status_file is not None and args.connect is not None:
        raise ConfigError("studio: pass --connect or --status-file, not both")
    if args.status_file is not None:
        args.connect = endpoint_from_status_file(args.status_file, wait_s=args.wait_s)
        print(f"npc-engine studio: {args.status_file} names {args.connect}", file=sys.stderr, flush=True)
    args.connect = args.connect or "tcp://127.0.0.1:5555"
    if not is_loopback(args.connect) and args.curve_keys is None:
        raise ConfigError(f"studio: {args.connect} is not on loopback, so the server speaks CurveZMQ only: pass "
                          "--curve-keys with the client keys a game would use")
    try:
        import uvicorn
        from .studio import create_app
        from .studio.guard import new_token
    except ImportError as exc:
        raise ConfigError(f"npc-engine studio needs its web libraries ({exc.name}): "
                          "pip install 'npc-voice-engine[studio]'") from None
    from .client import Client
    client = Client(args.connect, timeout_s=60.0, curve_keys=args.curve_keys)
    try:
        try:
            hello = client.hello("npc-engine-studio")
        except NpcEngineError as exc:
            print(f"npc-engine studio: cannot reach the server at {args.connect}: {exc}", file=sys.stderr)
            return 1
        if "observe" not in hello.capabilities:
            print(f"npc-engine studio: the server at {args.connect} speaks protocol {hello.protocol_version}, "
                  "without `observe`: the live feed stays empty (upgrade the server)", file=sys.stderr)
        # Listen here, so a --port of 0 is known when the address is printed and a taken port is a
        # clear error.
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((args.host, args.port))
            listener.listen(128)  # connections wait in the backlog until uvicorn accepts them
        except OSError as exc:
            listener.close()
            raise ConfigError(f"studio: cannot listen on {args.host}:{args.port}: {exc}") from None
        host, port = listener.getsockname()[:2]
        token = new_token()  # per launch: only whoever sees this line can use the page
        shown_host = f"[{host}]" if ":" in host else host
        print(f"npc-engine studio: http://{shown_host}:{port}/?token={token} (inspecting {args.connect})", flush=True)
        app = create_app(client, token=token, allowed_hosts={args.host, *args.allowed_host})
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
    finally:
        client.close()
    return 0

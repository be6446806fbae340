"""`npc-engine serve`: its flags and its life (the rest of the command line is in cli.py).

The first line it prints to stdout is the launcher's contract: `npc-engine serving on ENDPOINT
(...)`, flushed once the socket is bound; with `--port 0` the endpoint names the port picked.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .cli_common import add_backend_flags, model_path, runner_note
from .errors import BindError, ConfigError

__all__ = ["DEFAULT_SERVE_BIND", "add_serve_command", "run_serve"]

DEFAULT_SERVE_BIND = "tcp://127.0.0.1:5555"


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve the engine over ZeroMQ (see schemas/PROTOCOL.md)")
    serve.add_argument("--bind", default=DEFAULT_SERVE_BIND, help="ZeroMQ endpoint (default: loopback)")
    serve.add_argument("--port", type=int, default=None,
                       help="loopback port, 0 for any free one (the first stdout line names the endpoint)")
    serve.add_argument("--parent-pid", type=int, default=None,
                       help="stop cleanly when this process (the game that started the server) is gone")
    serve.add_argument("--exit-on-stdin-eof", action="store_true",
                       help="stop cleanly when stdin reaches end of file (the launcher's pipe closed)")
    serve.add_argument("--status-file", type=Path, default=None,
                       help="write the endpoint as JSON here once serving (removed on exit)")
    serve.add_argument("--model", help="DiffusionGemma checkpoint folder (default: the built-in model)")
    serve.add_argument("--db", help="state database file (default: under your user data folder)")
    serve.add_argument("--templates", action="append", default=[], help="folder of template JSON files (repeatable)")
    serve.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if present)")
    serve.add_argument("--dtype", default=None, help="float32, bfloat16, float16")
    serve.add_argument("--frame-budget-ms", type=float, default=None, help="device ms per frame (default: none)")
    serve.add_argument("--target-fps", type=float, default=60.0)
    serve.add_argument("--max-message-bytes", type=int, default=1 << 20)
    serve.add_argument("--max-outstanding", type=int, default=64, help="outstanding requests per client")
    serve.add_argument("--min-event-interval-ms", type=int, default=1000,
                       help="least time between two event replies of one character; events sooner are "
                            "refused (rate_limited), events while one is answered share its reply")
    serve.add_argument("--curve-keys", type=Path, default=None, help="folder from `npc-engine curve-keys`")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CURVE")
    add_backend_flags(serve)
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .characters import Store
    from .engine import Engine, EngineConfig
    from .protocol import PROTOCOL_VERSION, Limits
    from .server import Server, check_bind
    from .server.lifetime import Lifetime, remove_status_file, write_status_file

    if args.port is not None:
        if args.bind != DEFAULT_SERVE_BIND:
            raise ConfigError("give --bind or --port, not both (--port N is --bind tcp://127.0.0.1:N)")
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be 0 (any free port) to 65535, got {args.port}")
        args.bind = f"tcp://127.0.0.1:{args.port}"
    if args.parent_pid is not None and args.parent_pid < 1:
        raise ConfigError(f"--parent-pid must be a process id (>= 1), got {args.parent_pid}")
    check_bind(args.bind, curve_keys=args.curve_keys, is_insecure=args.insecure)  # before loading a model
    model_dir = model_path(args.model, args.backend)
    config = EngineConfig(frame_budget_ms=args.frame_budget_ms, target_fps=args.target_fps)
    engine = Engine.from_pretrained(model_dir, device=args.device, dtype=args.dtype, config=config,
                                    backend=args.backend, strict=args.strict, num_threads=args.threads,
                                    runner=args.runner)
    for folder in args.templates:
        files = sorted(Path(folder).glob("*.json"))
        if not files:
            print(f"npc-engine: warning: no *.json templates in {folder}", file=sys.stderr)
        for path in files:
            engine.register_template(path)
    store = Store(args.db) if args.db else Store()
    if args.min_event_interval_ms < 0:
        raise ConfigError(f"--min-event-interval-ms must be >= 0, got {args.min_event_interval_ms}")
    limits = Limits(max_message_bytes=args.max_message_bytes, hard_message_bytes=4 * args.max_message_bytes,
                    max_outstanding_per_client=args.max_outstanding, min_event_interval_ms=args.min_event_interval_ms)
    server = Server(engine, store, bind=args.bind, limits=limits, curve_keys=args.curve_keys,
                    is_insecure=args.insecure)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
    except BindError as exc:  # the port is taken, or the address is not ours
        engine.close()
        store.close()
        print(f"npc-engine: error: {exc}; choose another --bind address or port", file=sys.stderr)
        return 2
    if args.status_file:  # before the first line: a launcher that saw the line finds the file
        try:
            write_status_file(args.status_file, {"endpoint": server.endpoint, "pid": os.getpid(),
                                                 "protocol_version": PROTOCOL_VERSION, "state": str(store.path)})
        except OSError as exc:
            server.stop()
            engine.close()
            store.close()
            raise ConfigError(f"cannot write --status-file {args.status_file}: {exc}") from exc
    print(f"npc-engine serving on {server.endpoint} (protocol {PROTOCOL_VERSION}; "
          f"model {engine.backend.path} on {args.backend}/{engine.backend.device}{runner_note(engine)}; "
          f"state {store.path}; templates {sorted(engine.templates) or 'none'})", flush=True)
    Lifetime(stop, parent_pid=args.parent_pid, exit_on_stdin_eof=args.exit_on_stdin_eof).start()
    try:
        stop.wait()
    finally:
        if args.status_file:
            remove_status_file(args.status_file)
        server.stop()
        engine.close()
        store.close()
    return 0

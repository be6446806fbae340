"""`npc-engine serve` in a subprocess: the real protocol path, as a game would use it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from ..errors import NpcEngineError

__all__ = ["ServerProcess", "ServerStartError", "free_port", "is_port_taken"]


class ServerStartError(NpcEngineError):
    """The server subprocess did not come up; the message carries the end of its output."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_port_taken(port: int) -> bool:
    """Whether the server could not bind `port`. As ZeroMQ's listener does on POSIX, the probe
    reuses the address, so a port a killed server just left (its connections in TIME_WAIT) is free."""
    with socket.socket() as probe:
        if sys.platform != "win32":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


class ServerProcess:
    """Starts `npc-engine serve` on loopback and waits until it listens; `stop()` ends it."""

    def __init__(self, *, port: int = 0, model: str | Path | None = None, db: str | Path | None = None,
                 templates: list[str | Path] | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        if port and is_port_taken(port):
            raise ServerStartError(f"port {port} is already taken on 127.0.0.1; pick another with --port "
                                   "(or --port 0 for any free one)")
        self.port = port  # 0: the server picks a free one and names it on its first line
        self.endpoint = f"tcp://127.0.0.1:{port}" if port else ""
        # --parent-pid: the server ends with this process, however this process ends.
        self.args = [sys.executable, "-m", "npc_engine.cli", "serve", "--port", str(port),
                     "--parent-pid", str(os.getpid())]
        if model is not None:
            self.args += ["--model", str(model)]
        if db is not None:
            self.args += ["--db", str(db)]
        for folder in templates or []:
            self.args += ["--templates", str(folder)]
        self.args += extra_args or []
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[str] | None = None
        self._stderr_tail: deque[str] = deque(maxlen=30)

    def start(self, timeout_s: float = 180.0) -> "ServerProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.process = process
        ready = threading.Event()
        first_line: list[str] = []

        def read_stdout() -> None:
            for line in process.stdout or ():
                if not first_line:
                    first_line.append(line)
                    ready.set()

        def read_stderr() -> None:
            for line in process.stderr or ():
                self._stderr_tail.append(line.rstrip())

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        waited = 0.0
        while not ready.wait(0.2):
            waited += 0.2
            if process.poll() is not None or waited > timeout_s:
                self.stop()
                tail = "\n".join(self._stderr_tail) or "(no output)"
                raise ServerStartError(f"npc-engine serve did not start:\n{tail}")
        if not first_line[0].startswith("npc-engine serving on "):
            self.stop()
            raise ServerStartError(f"unexpected first line from the server: {first_line[0].strip()}")
        self.endpoint = first_line[0].split()[3]
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

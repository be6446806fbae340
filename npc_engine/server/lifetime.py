"""What ends `npc-engine serve` besides a signal, so a server a game started never outlives it.

- `--parent-pid PID`: the launcher (the game) passes its own id; when that process is gone (it
  quit, crashed or was killed) the server stops cleanly within `POLL_S` plus its own shutdown.
- `--exit-on-stdin-eof`: the launcher keeps a pipe to the server's stdin open; the operating
  system closes it when the launcher dies, however it dies.
- `--status-file PATH`: once serving, the endpoint (and pid, protocol) as JSON, written
  atomically, removed on exit; for launchers that cannot read the first stdout line.

A stop goes through the same path as SIGTERM: outstanding says are cancelled, state writes of
finished replies complete, the store is closed. Nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["POLL_S", "Lifetime", "is_process_alive", "remove_status_file", "write_status_file"]

log = logging.getLogger("npc_engine.server")

POLL_S = 0.2


def is_process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, dead but not yet reaped, counts as gone)."""
    if sys.platform == "win32":
        return _is_alive_windows(pid)
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the existence check
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) said it exists
    return state not in ("Z", "X")


def _is_alive_windows(pid: int) -> bool:
    import ctypes

    synchronize, wait_timeout = 0x00100000, 0x00000102
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
    finally:
        kernel32.CloseHandle(handle)


class Lifetime:
    """Sets `stop` when the parent process is gone or stdin reaches EOF (whichever is asked)."""

    def __init__(self, stop: threading.Event, *, parent_pid: int | None = None,
                 exit_on_stdin_eof: bool = False) -> None:
        self.stop = stop
        self.parent_pid = parent_pid
        self.exit_on_stdin_eof = exit_on_stdin_eof
        self.reason: str | None = None

    def start(self) -> "Lifetime":
        if self.parent_pid is not None:
            threading.Thread(target=self._watch_parent, name="npc-serve-parent", daemon=True).start()
        if self.exit_on_stdin_eof:
            threading.Thread(target=self._watch_stdin, name="npc-serve-stdin", daemon=True).start()
        return self

    def _end(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            log.info("stopping: %s", reason)
            self.stop.set()

    def _watch_parent(self) -> None:
        while not self.stop.wait(POLL_S):
            if not is_process_alive(self.parent_pid):
                self._end(f"the parent process {self.parent_pid} is gone")
                return

    def _watch_stdin(self) -> None:
        stream = sys.stdin.buffer if sys.stdin is not None else None
        try:
            while stream is not None and stream.read(4096):
                pass  # a launcher may write anything; only the end of the stream matters
        except (OSError, ValueError):
            pass  # stdin closed under us: the same as EOF
        self._end("stdin reached end of file")


def write_status_file(path: Path, status: dict[str, Any]) -> None:
    """`status` as JSON at `path`, atomically: a reader sees the whole file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)


def remove_status_file(path: Path) -> None:
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass

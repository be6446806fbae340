"""A self-pipe that lets any thread wake a socket's IO thread out of `zmq.Poller.poll`.

Used by both ends of the wire: the server's and the client's IO threads poll their socket and
this pipe's read end; other threads queue work and call `wake()`.
"""

from __future__ import annotations

import os

__all__ = ["WakePipe"]


class WakePipe:
    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)

    def wake(self) -> None:
        try:
            os.write(self._write_fd, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake is already pending) or closed (shutting down)

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self._write_fd)

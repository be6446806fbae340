"""The ZeroMQ server: sockets, IO thread, request routing. No model code lives here."""

from .security import check_bind, is_loopback, write_curve_keys
from .server import DEFAULT_BIND, Server

__all__ = ["DEFAULT_BIND", "Server", "check_bind", "is_loopback", "write_curve_keys"]

"""Who may connect: loopback by default; CurveZMQ (zmq.auth) for any other interface.

Key folder layout (`npc-engine curve-keys DIR` writes it):
    DIR/server.key_secret, DIR/server.key   the server's certificate (secret and public)
    DIR/clients/*.key                       public certificates of the clients allowed in
    DIR/client.key_secret, DIR/client.key   one client certificate to hand to a game build
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ..errors import ConfigError

__all__ = ["is_loopback", "check_bind", "enable_curve", "write_curve_keys"]


def is_loopback(endpoint: str) -> bool:
    """True for tcp://127.x.x.x / [::1] / localhost and for ipc:// and inproc:// endpoints."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or ":" not in rest:
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name, a host name
        return False


def check_bind(endpoint: str, *, curve_keys: Path | None, is_insecure: bool) -> None:
    if not is_loopback(endpoint) and curve_keys is None and not is_insecure:
        raise ConfigError(
            f"refusing to bind {endpoint} without encryption: it is reachable from other machines. Pass "
            "--curve-keys DIR (create one with `npc-engine curve-keys DIR`) or, on a trusted network, --insecure")


def enable_curve(socket: zmq.Socket, context: zmq.Context, keys_dir: Path) -> ThreadAuthenticator:
    """Make `socket` a CURVE server that admits only the clients whose keys are in keys_dir/clients."""
    secret_file, clients = keys_dir / "server.key_secret", keys_dir / "clients"
    if not secret_file.is_file():
        raise ConfigError(f"no server certificate at {secret_file} (create one with `npc-engine curve-keys`)")
    if not clients.is_dir():
        raise ConfigError(f"no folder of allowed client keys at {clients}")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the server certificate {secret_file}: {exc}") from exc
    if secret is None:
        raise ConfigError(f"{secret_file} holds no secret key")
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(clients))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


def write_curve_keys(keys_dir: Path) -> Path:
    """Create a server certificate and one allowed client certificate under `keys_dir`."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / "clients").mkdir(exist_ok=True)
    zmq.auth.create_certificates(keys_dir, "server")
    client_public, _ = zmq.auth.create_certificates(keys_dir, "client")
    shutil.copy(client_public, keys_dir / "clients" / "client.key")
    return keys_dir

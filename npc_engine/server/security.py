"""Who may connect: loopback by default; CurveZMQ (zmq.auth) for any other interface; and
always through ZAP, so libzmq refuses peers that speak the old unversioned ZMTP 1.0 (a web page's
HTTP POST can otherwise be parsed as 1.0 frames and run a request).

Key folder layout (`npc-engine curve-keys DIR` writes it):
    DIR/server.key_secret, DIR/server.key   the server's certificate (secret and public)
    DIR/clients/*.key                       public certificates of the clients allowed in
    DIR/client.key_secret, DIR/client.key   one client certificate to hand to a game build
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import tempfile
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ..errors import ConfigError

__all__ = ["is_loopback", "tcp_host_port", "check_bind", "enable_zap", "write_curve_keys", "ZAP_DOMAIN"]

ZAP_DOMAIN = "npc-engine"

log = logging.getLogger("npc_engine.server")


def tcp_host_port(endpoint: str) -> tuple[str, str] | None:
    """(host without brackets, port text) of a tcp:// endpoint; None for any other scheme or form."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp" or ":" not in rest:
        return None
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), port


def is_loopback(endpoint: str) -> bool:
    """True for tcp://127.x.x.x / [::1] / localhost and for ipc:// and inproc:// endpoints."""
    if endpoint.partition("://")[0] in ("ipc", "inproc"):
        return True
    address = tcp_host_port(endpoint)
    if address is None:
        return False
    host = address[0]
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


def enable_zap(socket: zmq.Socket, context: zmq.Context, curve_keys: Path | None) -> ThreadAuthenticator:
    """Put `socket` behind a ZAP authenticator (call before bind). With a ZAP domain set, libzmq
    refuses ZMTP 1.0 and 2.0 peers outright; NULL peers are admitted as before (the bind decides who
    can reach them), and with `curve_keys` the socket is a CURVE server that admits only the clients
    whose public keys are in curve_keys/clients."""
    public = secret = None
    if curve_keys is not None:
        public, secret = _load_server_keys(curve_keys)
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    if curve_keys is not None:
        authenticator.configure_curve(domain=ZAP_DOMAIN, location=str(curve_keys / "clients"))
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True
    socket.zap_domain = ZAP_DOMAIN.encode()
    return authenticator


def _load_server_keys(keys_dir: Path) -> tuple[bytes, bytes]:
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
    if os.name == "posix" and secret_file.stat().st_mode & 0o077:
        log.warning("%s is readable by other users (mode %o): chmod 600 it; anyone who reads it can pose as "
                    "this server", secret_file, secret_file.stat().st_mode & 0o777)
    return public, secret


def write_curve_keys(keys_dir: Path) -> Path:
    """Create a server certificate and one allowed client certificate under `keys_dir`.

    Secret key files are readable by their owner only (0600), written in a private folder and moved
    into place, so no other user can read them even for a moment."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / "clients").mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=keys_dir))  # mode 0700
    try:
        zmq.auth.create_certificates(staging, "server")
        zmq.auth.create_certificates(staging, "client")
        for path in staging.iterdir():
            os.chmod(path, 0o600 if path.name.endswith(".key_secret") else 0o644)
            os.replace(path, keys_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.copy(keys_dir / "client.key", keys_dir / "clients" / "client.key")
    return keys_dir

"""CURVE keys for a daemon that listens beyond this machine, kept in SFUMATO_HOME/keys.

    keys/server.key, keys/server.key_secret   the daemon's key pair
    keys/clients/NAME.key                     public keys of the clients allowed in

A client key folder (made by `sfumato keys client NAME`) holds `client.key_secret`, its
public half `client.key`, and `server.key`, the daemon's public key: copy it to the client's
machine and point SFUMATO_CURVE at it. Files are ZeroMQ's own certificate format.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

import zmq.auth
from sfumato.bridge.endpoints import SERVER_PUBLIC_FILE
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOW_TO = (
    "create keys with `sfumato keys server`, then one folder per client machine with "
    "`sfumato keys client NAME` (copy it there and set SFUMATO_CURVE to it); "
    "`sfumato keys list` shows what is allowed"
)


def keys_dir(home: Path) -> Path:
    return home / "keys"


def allowed_dir(home: Path) -> Path:
    return keys_dir(home) / "clients"


def is_loopback(endpoint: str) -> bool:
    """Whether `endpoint` can only be reached from this machine (ipc, inproc, loopback TCP).
    A wildcard, an interface name or a host name counts as reachable from elsewhere."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_server_keys(home: Path, force: bool = False) -> Path:
    folder = keys_dir(home)
    public = folder / "server.key"
    if public.exists() and not force:
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{public} exists; pass --force to replace it "
                           "(every client folder made before then stops working)")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    zmq.auth.create_certificates(folder, "server")
    (folder / "server.key_secret").chmod(0o600)
    return public


def server_keys(home: Path) -> tuple[bytes, bytes]:
    """The daemon's (public, secret) keys; a typed error saying how to make them if absent."""
    path = keys_dir(home) / "server.key_secret"
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError):
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"no daemon key pair in {path.parent}: "
                           f"{HOW_TO}") from None
    if secret is None:
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"{path} holds no secret key: {HOW_TO}")
    return public, secret


def create_client(home: Path, name: str, out: Path) -> Path:
    """A key folder for a new client machine, already allowed in."""
    _check_name(name)
    server_public = keys_dir(home) / "server.key"
    if not server_public.exists():
        raise SfumatoError(ErrorCode.AUTH_FAILED, "make the daemon's keys first with "
                           "`sfumato keys server`")
    if out.exists() and any(out.iterdir()):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"{out} is not empty; pick a new folder")
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    public, secret = zmq.auth.create_certificates(out, "client")
    Path(secret).chmod(0o600)
    shutil.copyfile(server_public, out / SERVER_PUBLIC_FILE)
    allow_client(home, name, Path(public))
    return out


def allow_client(home: Path, name: str, public_key_file: Path) -> Path:
    _check_name(name)
    try:
        public, _ = zmq.auth.load_certificate(public_key_file)
    except (OSError, ValueError) as exc:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{public_key_file} is not a ZeroMQ public key file: {exc}") from None
    folder = allowed_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.key"
    # only the public half is kept: a secret key pasted here by mistake is not copied
    target.write_text(
        "#   sfumato: a client allowed to use this daemon\n"
        f"metadata\n    name = \"{name}\"\ncurve\n    public-key = \"{public.decode()}\"\n"
    )
    return target


def revoke_client(home: Path, name: str) -> None:
    _check_name(name)
    target = allowed_dir(home) / f"{name}.key"
    if not target.exists():
        raise SfumatoError(ErrorCode.NOT_FOUND, f"no allowed client named {name!r}")
    target.unlink()


def allowed_clients(home: Path) -> dict[str, bytes]:
    """Allowed client names and their public keys."""
    found: dict[str, bytes] = {}
    for path in sorted(allowed_dir(home).glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError):
            continue
        found[path.stem] = public
    return found


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"client name {name!r}: use letters, digits, "
                           "'.', '-' and '_' (it names a file)")

"""Where the daemon is and how to prove who we are to it: the endpoint, the home its keys are
in, the shared signing key and CURVE key folders. Standard library only (the CURVE key files
are read by transport.py), so that the plug-ins can load all of this in a Python without
pyzmq.

Every TCP endpoint needs CURVE. A client of this user finds its keys in SFUMATO_HOME/keys
(made by the daemon on its first start, readable by this user only): `server.key`, the
daemon's public key, which the client checks the daemon against, and `local.key_secret`, the
key pair every program of this user presents. A client on another machine uses a folder made
by `sfumato keys client NAME`, named by SFUMATO_CURVE."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SfumatoError
from .protocol import ErrorCode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5655"
SERVER_PUBLIC_FILE = "server.key"  # in a client key folder: the daemon's public key
CLIENT_SECRET_FILE = "client.key_secret"  # in a client key folder: this client's key pair
LOCAL_SECRET_FILE = "local.key_secret"  # in SFUMATO_HOME/keys: this user's programs' key pair
NO_CURVE = "off"  # SFUMATO_CURVE=off: plain TCP, for a daemon with curve_on_loopback = false


def default_home() -> Path:
    """SFUMATO_HOME, else $XDG_DATA_HOME/sfumato, else ~/.local/share/sfumato: the daemon,
    the command line and the plug-ins of one user all find the same keys here."""
    env = os.environ.get("SFUMATO_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sfumato"


def keys_dir(home: Path) -> Path:
    return home / "keys"


def needs_curve(endpoint: str) -> bool:
    """Every TCP endpoint (loopback included: any local user can connect to it, or bind it
    first); ipc:// is guarded by its socket file's permissions, inproc:// never leaves the
    process."""
    return endpoint.startswith("tcp://")


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


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The endpoint to use: the argument, else SFUMATO_ENDPOINT, else loopback TCP."""
    return endpoint or os.environ.get("SFUMATO_ENDPOINT") or DEFAULT_ENDPOINT


def key_from_env() -> bytes | None:
    """The shared signing key from SFUMATO_KEY, or None when frames go unsigned."""
    key = os.environ.get("SFUMATO_KEY")
    return key.encode() if key else None


class KeyFileError(SfumatoError):
    """A CURVE key folder that is missing a file or holds an unreadable one."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.AUTH_FAILED) -> None:
        super().__init__(code, message)


@dataclass(frozen=True)
class CurveKeys:
    """What a client needs to reach a daemon that requires CURVE (Z85-encoded keys)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes


class HandshakeFailed(SfumatoError):
    """The CURVE handshake failed. `why`: "refused" (the daemon proved its key but does not
    know ours), "impostor" (the peer could not prove it holds the daemon's secret key), or
    "silent" (the peer accepted the connection and said nothing: a stopped daemon, or a
    program that is not one)."""

    def __init__(self, why: str) -> None:
        super().__init__(ErrorCode.AUTH_FAILED, f"the CURVE handshake failed ({why})")
        self.why = why

"""The daemon's same-machine door: besides its CURVE TCP endpoint, a daemon on this machine
also listens on an ipc:// socket in /tmp/sfumato-UID, a folder only this user can enter.
This user's programs that hold the daemon's public key use it instead of loopback TCP, and
skip the encryption that loopback TCP needs (any local user can reach a TCP port; only this
user can reach a socket in that folder, and the daemon checks each connection's uid too).

The socket's name comes from the daemon's public key and port, so a client finds the door of
the daemon it would otherwise reach over TCP, and no other daemon's. Standard library only:
the plug-ins load it in a Python without pyzmq. SFUMATO_LOCAL_IPC=off keeps clients on TCP.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .endpoints import is_loopback

LOCAL_IPC_ENV = "SFUMATO_LOCAL_IPC"
BASE_ENV = "SFUMATO_DOOR_BASE"  # tests: a folder of their own instead of /tmp


def door_folder() -> Path:
    # not $TMPDIR: the daemon and an editor started from elsewhere must agree
    return Path(os.environ.get(BASE_ENV) or "/tmp") / f"sfumato-{os.getuid()}"


def door_endpoint(endpoint: str, server_public: bytes) -> str | None:
    """The ipc:// door of the daemon with `server_public` serving TCP `endpoint`; None for
    endpoints that are not TCP with a fixed port."""
    scheme, _, rest = endpoint.partition("://")
    port = rest.rsplit(":", 1)[-1]
    if scheme != "tcp" or not port.isdigit() or port == "0":
        return None
    digest = hashlib.sha256(server_public + b"|" + port.encode()).hexdigest()[:24]
    return f"ipc://{door_folder() / digest}.sock"


def make_door_folder() -> bool:
    """The daemon's side: /tmp/sfumato-UID made 0700 if missing; False when it exists but is
    not a private folder of this user (someone made it first: serve on TCP alone)."""
    folder = door_folder()
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return False
    return _private(folder)


def remove_door(door: str) -> None:
    """Take a door's socket file away (the daemon, before binding it and once it stops)."""
    path = door[len("ipc://"):]
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def reachable_door(endpoint: str, server_public: bytes) -> str | None:
    """The client's side: the door to use instead of `endpoint`, or None (stay on TCP) when
    `endpoint` is not this machine's, the folder is not this user's private one, or no socket
    of this user is there."""
    if os.environ.get(LOCAL_IPC_ENV, "").lower() in ("off", "0", "false", "no"):
        return None
    if not (endpoint.startswith("tcp://") and is_loopback(endpoint)):
        return None
    door = door_endpoint(endpoint, server_public)
    if door is None or not _private(door_folder()):
        return None
    try:
        info = os.lstat(door[len("ipc://"):])
    except OSError:
        return None
    return door if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid() else None


def peer_uid(peer_address: str) -> int | None:
    """The uid in ZeroMQ's "Peer-Address" of an ipc connection ("HOST:UID:GID:PID", from
    SO_PEERCRED); None when the address carries no credentials (TCP, other platforms)."""
    parts = peer_address.rsplit(":", 3)
    if len(parts) != 4 or ":" in parts[0] or not all(part.isdigit() for part in parts[1:]):
        return None
    return int(parts[1])


def _private(folder: Path) -> bool:
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o077)

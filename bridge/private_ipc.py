"""An ipc:// endpoint only this user can reach or take: a socket file (not an abstract
@name, which every local user can connect to or bind first) in a folder no one else can
write, so no other user can put their own socket at that path; the daemon makes the socket
file itself readable and writable by its user only, so no other user can connect. Checked by
the daemon before it binds and by the client before it connects. Standard library only."""

from __future__ import annotations

import os
import stat

from .errors import SfumatoError
from .protocol import ErrorCode

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
HOW_TO = "use ipc:// with a path in a folder only you can write, e.g. $XDG_RUNTIME_DIR/sfumato.sock"


def ipc_path(endpoint: str) -> str | None:
    """The socket path an ipc:// endpoint names, or None for any other endpoint."""
    return endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else None


def check_private_ipc(endpoint: str) -> None:
    """Raise AUTH_FAILED, saying what to change, when another local user could reach or take
    `endpoint`; nothing for endpoints that are not ipc://."""
    path = ipc_path(endpoint)
    if path is None:
        return
    if path.startswith("@") or not path:
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"{endpoint} is an abstract socket: any user "
                           f"on this machine can reach it or take its name first; {HOW_TO}")
    folder = os.path.dirname(os.path.abspath(path))
    _check_folder(endpoint, folder, own=True)
    parent = os.path.dirname(folder)
    while parent != folder:  # an ancestor others could write (unless sticky) lets them swap it
        folder, parent = parent, os.path.dirname(parent)
        _check_folder(endpoint, folder, own=False)
    _check_socket(endpoint, path)


def _check_folder(endpoint: str, folder: str, own: bool) -> None:
    try:
        info = os.stat(folder)
    except OSError as exc:
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"cannot check the folder of {endpoint} "
                           f"({folder}: {exc.strerror}); {HOW_TO}") from None
    mine = info.st_uid in (os.getuid(), 0)
    others_write = info.st_mode & _OTHERS_WRITE
    if own and (not mine or others_write):
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"{folder} can be written by other users, "
                           f"who could put their own socket at {endpoint}; {HOW_TO}")
    if not own and (not mine or others_write) and not info.st_mode & stat.S_ISVTX:
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"{folder}, above the socket of {endpoint}, "
                           f"can be changed by other users; {HOW_TO}")


def _check_socket(endpoint: str, path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return  # not bound yet: in a folder only this user writes, no one else can bind it
    except OSError as exc:
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"cannot check {path} ({exc.strerror})") \
            from None
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"{path} is not a socket of yours: another "
                           f"program holds {endpoint}; stop it, or {HOW_TO}")


def make_private(endpoint: str) -> None:
    """After the daemon bound an ipc:// path: only its user may connect (connecting to a
    socket file needs write permission on it)."""
    path = ipc_path(endpoint)
    if path is not None:
        os.chmod(path, 0o600)

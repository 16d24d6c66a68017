"""CURVE keys, kept in SFUMATO_HOME/keys (a folder only this user can enter; every file 0600).

    keys/server.key, keys/server.key_secret   the daemon's key pair
    keys/local.key, keys/local.key_secret     the key pair this user's own programs present
    keys/clients/NAME.key                     public keys of other machines' clients

The daemon makes its pair and the local pair on its first start (`ensure_local_keys`), so the
command line and the plug-ins of the same user connect with no set-up step, and a program
that cannot read these files (another local user) can neither connect nor pose as the daemon.
A client key folder (made by `sfumato keys client NAME`) holds `client.key_secret`, its
public half `client.key`, and `server.key`, the daemon's public key: copy it to the client's
machine and point SFUMATO_CURVE at it. Files are ZeroMQ's own certificate format.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zmq
import zmq.auth
from sfumato.bridge.endpoints import (
    LOCAL_SECRET_FILE,
    SERVER_PUBLIC_FILE,
    keys_dir,
)
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.errors import SfumatoError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOW_TO = (
    "create keys with `sfumato keys server`, then one folder per client machine with "
    "`sfumato keys client NAME` (copy it there and set SFUMATO_CURVE to it); "
    "`sfumato keys list` shows what is allowed"
)


LOCAL_NAME = "local"  # how `sfumato keys list` shows this user's own programs


def allowed_dir(home: Path) -> Path:
    return keys_dir(home) / "clients"


def create_server_keys(home: Path, force: bool = False) -> Path:
    """The daemon's key pair (and the local one); with `force`, a new daemon pair, after
    which client folders made before stop working."""
    public = keys_dir(home) / SERVER_PUBLIC_FILE
    with _keys_lock(home) as folder:
        if force or not (folder / "server.key_secret").exists():
            _write_pair(folder, "server")
        if not (folder / LOCAL_SECRET_FILE).exists():
            _write_pair(folder, LOCAL_NAME)
    return public


def ensure_local_keys(home: Path) -> None:
    """Make the daemon's and this user's key pairs unless both are there. Safe against a
    second process doing the same at once (a lock), and no file is ever readable by another
    user, even for a moment (made 0600 in a 0700 folder, then renamed into place)."""
    folder = keys_dir(home)
    if (folder / "server.key_secret").exists() and (folder / LOCAL_SECRET_FILE).exists():
        return
    create_server_keys(home)


@contextmanager
def _keys_lock(home: Path) -> Iterator[Path]:
    folder = keys_dir(home)
    home.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SfumatoError(ErrorCode.AUTH_FAILED, f"{folder} is not a folder of yours; remove "
                           "it (or set SFUMATO_HOME to a folder of your own)")
    os.chmod(folder, 0o700)  # an older sfumato may have left it open
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        os.close(fd)


def _write_pair(folder: Path, name: str) -> None:
    """`name`.key and `name`.key_secret, each written whole under a temporary name with mode
    0600 from its creation, then renamed over any older one (the secret last)."""
    public, secret = zmq.curve_keypair()
    for suffix, text in ((".key", _certificate(public, None)),
                         (".key_secret", _certificate(public, secret))):
        draft = folder / f".{name}{suffix}.{secrets.token_hex(6)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(draft, folder / f"{name}{suffix}")


def _certificate(public: bytes, secret: bytes | None) -> str:
    """ZeroMQ's certificate format (what zmq.auth.load_certificate reads)."""
    lines = ["#   sfumato CURVE key" + (" pair: keep it secret" if secret else ""),
             "metadata", "curve", f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return "\n".join(lines) + "\n"


def local_public(home: Path) -> bytes | None:
    """The public key this user's own programs present, or None before the first start."""
    try:
        public, _ = zmq.auth.load_certificate(keys_dir(home) / "local.key")
    except (OSError, ValueError):
        return None
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
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    out.chmod(0o700)
    _write_pair(out, "client")
    server_key = os.open(out / SERVER_PUBLIC_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(server_key, "wb") as copy:
        copy.write(server_public.read_bytes())
    allow_client(home, name, out / "client.key")
    return out


def allow_client(home: Path, name: str, public_key_file: Path) -> Path:
    _check_name(name)
    try:
        public, _ = zmq.auth.load_certificate(public_key_file)
    except (OSError, ValueError) as exc:
        raise SfumatoError(ErrorCode.BAD_PARAMS,
                           f"{public_key_file} is not a ZeroMQ public key file: {exc}") from None
    with _keys_lock(home):
        folder = allowed_dir(home)
        folder.mkdir(exist_ok=True, mode=0o700)
        target = folder / f"{name}.key"
        # only the public half is kept: a secret key pasted here by mistake is not copied
        draft = folder / f".{name}.{secrets.token_hex(6)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("#   sfumato: a client allowed to use this daemon\n"
                      f"metadata\n    name = \"{name}\"\ncurve\n"
                      f"    public-key = \"{public.decode()}\"\n")
        os.replace(draft, target)
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
    if not _NAME.match(name) or name == LOCAL_NAME:
        raise SfumatoError(ErrorCode.BAD_PARAMS, f"client name {name!r}: use letters, digits, "
                           "'.', '-' and '_' (it names a file); "
                           f"{LOCAL_NAME!r} is this user's own programs")

"""Who may talk to the daemon. Every TCP endpoint is CURVE: encrypted, the daemon proves it
holds its secret key, and only known client keys get an answer (the rest are dropped during
the handshake): this user's own programs (keys/local.key, made on first start) and the
clients allowed in SFUMATO_HOME/keys/clients. An ipc://
endpoint is guarded by its socket file (0600) instead; inproc:// never leaves the process.

The key a client proved is its identity (ZeroMQ's "User-Id" on each of its messages, the
Z85 public key): fairness and queue caps count by it, not by the id a client names."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import zmq
from sfumato.bridge.endpoints import is_loopback, needs_curve
from sfumato.bridge.local_ipc import (
    door_endpoint,
    door_folder,
    make_door_folder,
    peer_uid,
    remove_door,
)
from sfumato.bridge.private_ipc import make_private
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.daemon.keys import (
    HOW_TO,
    allowed_clients,
    allowed_dir,
    ensure_local_keys,
    local_public,
    server_keys,
)
from sfumato.core.errors import SfumatoError
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger("sfumato.auth")


class _AllowedKeys:
    """pyzmq's credentials provider: called on the authenticator's thread for each CURVE
    handshake; the set is replaced whole, never changed in place."""

    def __init__(self) -> None:
        self.keys: frozenset[bytes] = frozenset()

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class ClientAuth:
    """CURVE for every TCP socket (unless `curve_on_loopback` is off for a loopback one)."""

    def __init__(self, home: Path, endpoint: str, curve_on_loopback: bool = True) -> None:
        self.home = home
        self.remote = not is_loopback(endpoint)
        self.required = needs_curve(endpoint) and (self.remote or curve_on_loopback)
        self._authenticator: ThreadAuthenticator | None = None
        self._allowed = _AllowedKeys()
        self._seen: tuple[tuple[str, float], ...] = ()
        self.local_key = b""  # this user's programs' public key, once the keys exist

    def open_door(self, sock: zmq.Socket, endpoint: str) -> str | None:
        """Bind the same-machine ipc door (local_ipc.py) of a loopback daemon: before the
        CURVE options are set, which apply to every endpoint bound after them. None when
        there is no door: not loopback TCP with a fixed port, or /tmp/sfumato-UID taken."""
        if not self.required or self.remote:
            return None
        ensure_local_keys(self.home)
        door = door_endpoint(endpoint, server_keys(self.home)[0])
        if door is None:
            return None
        if not make_door_folder():
            log.warning("%s is not a folder only this user can enter: serving on TCP alone",
                        door_folder())
            return None
        remove_door(door)  # a crashed daemon's socket file, in a folder only we write
        try:
            sock.bind(door)
        except zmq.ZMQError as exc:
            log.warning("no same-machine door at %s (%s): serving on TCP alone", door, exc)
            return None
        make_private(door)
        return door

    def secure(self, context: zmq.Context, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE server before it binds, or refuse to go on without keys."""
        if not self.required:
            return
        if not zmq.has("curve"):
            raise SfumatoError(ErrorCode.AUTH_FAILED, "this pyzmq has no CURVE support "
                               "(libsodium), which every TCP endpoint needs: install pyzmq's "
                               "wheel from PyPI, or serve on an ipc:// endpoint")
        if self.remote:
            server_keys(self.home)  # beyond loopback: keys made on purpose, `keys server`
            if not allowed_clients(self.home):
                raise SfumatoError(ErrorCode.AUTH_FAILED, "this daemon would listen beyond "
                                   f"this machine, but no client key is allowed yet: {HOW_TO}")
        ensure_local_keys(self.home)
        public, secret = server_keys(self.home)
        self.local_key = local_public(self.home) or b""
        self._authenticator = ThreadAuthenticator(context, log=log)
        self._authenticator.start()
        self._load_allowed()
        self._authenticator.configure_curve_callback(domain="*",
                                                     credentials_provider=self._allowed)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)

    def refresh(self) -> None:
        """Pick up `sfumato keys client/allow/revoke` without a restart."""
        if self._authenticator is not None and self._stamp() != self._seen:
            self._load_allowed()

    def stop(self) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def _load_allowed(self) -> None:
        self._seen = self._stamp()
        local = local_public(self.home)
        remote = allowed_clients(self.home)  # on loopback too: e.g. through an ssh tunnel
        self._allowed.keys = frozenset([*remote.values(), *([local] if local else [])])
        log.info("CURVE clients allowed: this user's programs, %s",
                 ", ".join(remote) or "no other machine")

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        try:
            files = [*allowed_dir(self.home).glob("*.key"), self.home / "keys" / "local.key"]
            return tuple(sorted((p.name, p.stat().st_mtime) for p in files if p.exists()))
        except OSError:
            return ()


def proven_identity(frame: zmq.Frame, local_key: bytes = b"") -> bytes | None:
    """Who sent `frame`: the CURVE key (Z85) it proved in its handshake; `local_key` (this
    user's programs) for a connection through the same-machine door from this user's uid;
    None from another uid (refused); b"" with neither (an ipc:// or inproc:// endpoint, or
    `curve_on_loopback = false`)."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        user = None
    if isinstance(user, str) and user:
        return user.encode()
    try:
        uid = peer_uid(frame.get("Peer-Address"))
    except zmq.ZMQError:
        uid = None
    if uid is None:
        return b""
    return local_key if uid == os.getuid() else None

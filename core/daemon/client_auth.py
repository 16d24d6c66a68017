"""Who may talk to the daemon. Every TCP endpoint is CURVE: encrypted, the daemon proves it
holds its secret key, and only known client keys get an answer (the rest are dropped during
the handshake): this user's own programs (keys/local.key, made on first start) and the
clients allowed in SFUMATO_HOME/keys/clients. An ipc://
endpoint is guarded by its socket file (0600) instead; inproc:// never leaves the process.

The key a client proved is its identity (ZeroMQ's "User-Id" on each of its messages, the
Z85 public key): fairness and queue caps count by it, not by the id a client names."""

from __future__ import annotations

import logging
from pathlib import Path

import zmq
from sfumato.bridge.endpoints import needs_curve
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.daemon.keys import (
    HOW_TO,
    allowed_clients,
    allowed_dir,
    ensure_local_keys,
    is_loopback,
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


def proven_identity(frame: zmq.Frame) -> bytes:
    """The CURVE key (Z85) the sender of `frame` proved in its handshake; b"" on a socket
    without CURVE (ipc, inproc, or `curve_on_loopback = false`)."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return b""
    return user.encode() if isinstance(user, str) else b""

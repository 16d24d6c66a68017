"""Who may talk to the daemon. Loopback and ipc endpoints are open to this machine's users;
any other endpoint needs CURVE: encrypted, and only clients whose public keys are in
SFUMATO_HOME/keys/clients get an answer (the rest are dropped during the handshake)."""

from __future__ import annotations

import logging
from pathlib import Path

import zmq
from sfumato.bridge.protocol import ErrorCode
from sfumato.core.daemon.keys import HOW_TO, allowed_clients, allowed_dir, is_loopback, server_keys
from sfumato.core.errors import SfumatoError
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger("sfumato.auth")


class ClientAuth:
    """CURVE for a socket bound beyond loopback; nothing at all otherwise."""

    def __init__(self, home: Path, endpoint: str) -> None:
        self.home = home
        self.required = not is_loopback(endpoint)
        self._authenticator: ThreadAuthenticator | None = None
        self._seen: tuple[tuple[str, float], ...] = ()

    def secure(self, context: zmq.Context, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE server before it binds, or refuse to go on without keys."""
        if not self.required:
            return
        if not zmq.has("curve"):
            raise SfumatoError(ErrorCode.AUTH_FAILED, "this daemon would listen beyond this "
                               "machine, but this pyzmq has no CURVE support (libsodium): "
                               "install pyzmq's wheel from PyPI, or bind to 127.0.0.1")
        public, secret = server_keys(self.home)
        if not allowed_clients(self.home):
            raise SfumatoError(ErrorCode.AUTH_FAILED, "this daemon would listen beyond this "
                               f"machine, but no client key is allowed yet: {HOW_TO}")
        self._authenticator = ThreadAuthenticator(context, log=log)
        self._authenticator.start()
        self._load_allowed(self._authenticator)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)

    def refresh(self) -> None:
        """Pick up `sfumato keys client/allow/revoke` without a restart."""
        if self._authenticator is not None and self._stamp() != self._seen:
            self._load_allowed(self._authenticator)

    def stop(self) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def _load_allowed(self, authenticator: ThreadAuthenticator) -> None:
        self._seen = self._stamp()
        authenticator.configure_curve(domain="*", location=str(allowed_dir(self.home)))
        log.info("CURVE clients allowed: %s", ", ".join(allowed_clients(self.home)) or "none")

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        try:
            return tuple(sorted((p.name, p.stat().st_mtime)
                                for p in allowed_dir(self.home).glob("*.key")))
        except OSError:
            return ()

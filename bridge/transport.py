"""The client's socket: a ZeroMQ DEALER. The only bridge module that imports zmq."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from .endpoints import CLIENT_SECRET_FILE, SERVER_PUBLIC_FILE, CurveKeys, KeyFileError
from .raster import Buffer

LINGER_MS = 100  # unsent messages (a last cancel) get this long; a dead daemon never blocks


def load_client_keys(folder: str | Path) -> CurveKeys:
    """Read a folder made by `sfumato keys client NAME`: the daemon's public key and this
    client's key pair."""
    folder = Path(folder).expanduser()
    try:
        server_public, _ = zmq.auth.load_certificate(folder / SERVER_PUBLIC_FILE)
        client_public, client_secret = zmq.auth.load_certificate(folder / CLIENT_SECRET_FILE)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the CURVE keys in {folder}: {exc}; make them on the "
                           "daemon's machine with `sfumato keys client NAME`") from None
    if client_secret is None:
        raise KeyFileError(f"{folder / CLIENT_SECRET_FILE} holds no secret key")
    return CurveKeys(server_public, client_public, client_secret)


def curve_from_env() -> CurveKeys | None:
    """Keys from the folder named by SFUMATO_CURVE, or None for a loopback/ipc daemon."""
    folder = os.environ.get("SFUMATO_CURVE")
    return load_client_keys(folder) if folder else None


class DealerTransport:
    """One DEALER socket to the daemon. `reopen()` drops queued messages and reconnects with
    the same routing id, so the daemon still knows whose jobs are whose."""

    def __init__(
        self,
        endpoint: str,
        context: zmq.Context[Any] | None = None,
        *,
        routing_id: bytes | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.routing_id = routing_id
        self.curve = curve
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[Any] | None = None
        self.reopen()

    def reopen(self) -> None:
        self.close()
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        # queue only to a live connection, so "no daemon" shows up as a send that cannot go
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if self.routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        if self.curve is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve.server_public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.client_public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.client_secret)
        sock.connect(self.endpoint)
        self._socket = sock

    def send(self, frames: Sequence[Buffer], timeout_s: float) -> bool:
        """Queue a frame set without copying pixel buffers; False when it cannot go out."""
        sock = self._require()
        if not sock.poll(int(timeout_s * 1000), zmq.POLLOUT):
            return False
        try:
            sock.send_multipart(list(frames), copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:  # the connection went between the poll and the send
            return False
        return True

    def recv(self, timeout_s: float) -> list[memoryview] | None:
        """The next frame set, or None after `timeout_s` with nothing to read. Never blocks
        longer: a multipart message is delivered whole, so after POLLIN all of it is here."""
        sock = self._require()
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        try:
            parts = sock.recv_multipart(copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        return [part.buffer for part in parts]

    @property
    def linger_ms(self) -> int:
        return int(self._require().getsockopt(zmq.LINGER))

    def close(self) -> None:
        """Returns at once, whatever the daemon is doing: zmq closes in the background and
        gives up on unsent messages after LINGER_MS."""
        if self._socket is not None:
            self._socket.close(linger=LINGER_MS)
            self._socket = None

    def _require(self) -> zmq.Socket[Any]:
        if self._socket is None:
            raise RuntimeError("transport is closed")
        return self._socket

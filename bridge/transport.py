"""The client's socket: a ZeroMQ DEALER. The only bridge module that imports zmq."""

from __future__ import annotations

import os
from collections.abc import Sequence

import zmq

from .raster import Buffer

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5655"


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The endpoint to use: the argument, else SFUMATO_ENDPOINT, else loopback TCP."""
    return endpoint or os.environ.get("SFUMATO_ENDPOINT") or DEFAULT_ENDPOINT


def key_from_env() -> bytes | None:
    """The shared signing key from SFUMATO_KEY, or None when frames go unsigned."""
    key = os.environ.get("SFUMATO_KEY")
    return key.encode() if key else None


class DealerTransport:
    """One DEALER socket to the daemon. `reopen()` drops queued messages and reconnects."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self.reopen()

    def reopen(self) -> None:
        self.close()
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)  # a dead daemon must never block the host on exit
        # queue only to a live connection, so "no daemon" shows up as a send that cannot go
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.connect(self.endpoint)
        self._socket = sock

    def send(self, frames: Sequence[Buffer], timeout_s: float) -> bool:
        """Queue a frame set without copying pixel buffers; False when it cannot go out."""
        sock = self._require()
        if not sock.poll(int(timeout_s * 1000), zmq.POLLOUT):
            return False
        sock.send_multipart(list(frames), copy=False, flags=zmq.NOBLOCK)
        return True

    def recv(self, timeout_s: float) -> list[memoryview] | None:
        """The next frame set, or None after `timeout_s` with nothing to read."""
        sock = self._require()
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        parts = sock.recv_multipart(copy=False)
        return [part.buffer for part in parts]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _require(self) -> zmq.Socket:
        if self._socket is None:
            raise RuntimeError("transport is closed")
        return self._socket
